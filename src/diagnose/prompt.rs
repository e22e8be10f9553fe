//! The LLM prompt: the diagnosis's numbers (never raw trace dumps), in
//! sections by importance, cut to a character budget by dropping whole
//! sections from the least important up. The order of dropping is: source
//! code, the window timeline, anomalous traces, exception messages, modules
//! beyond the five worst, patterns beyond the first three; what remains is
//! cut at the budget with a marker. The prompt says what was left out.

use super::incident::Diagnosis;
use crate::timefmt::format_time;

/// The system message: the reviewer's role and what to write.
pub const SYSTEM: &str = "You are a senior site reliability engineer writing the diagnosis section of an incident \
review. Use only the evidence given (scores, distributions, onset, detector findings, patterns, modules, exceptions). \
Give: (1) two or three root-cause hypotheses, most likely first, each tied to the specific numbers that support it \
and saying what would refute it; (2) concrete next steps (what to check, in which module, with which query or \
experiment); (3) one sentence on detection: how early the signals moved compared with when the incident was declared. \
Be brief and precise; do not invent metrics that are not given.";

fn side(name: &str, s: &super::incident::Side) -> String {
    let [ts, ms, ev, be, cc] = s.sub_scores.to_array();
    format!(
        "- {name}: {} traces, PSS {}, timing {ts:.2}, memory {ms:.2}, errors {ev:.2}, branching {be:.2}, concurrency {cc:.2}; \
latency p50 {:.4}s p95 {:.4}s p99 {:.4}s; error rate {:.2}%; wait mean {:.4}s p99 {:.4}s; memory median {:.1} MB max {:.1} MB\n",
        s.traces,
        s.pss,
        s.latency.p50,
        s.latency.p95,
        s.latency.p99,
        s.error_rate * 100.0,
        s.wait_time.mean,
        s.wait_time.p99,
        s.memory.p50 / 1e6,
        s.memory.max / 1e6
    )
}

/// Builds the prompt for `d` within `budget` characters.
pub fn build_prompt(d: &Diagnosis, budget: usize) -> String {
    let sub = &d.subject;
    // (importance: lower is dropped first, name, text)
    let mut sections: Vec<(u8, &str, String)> = Vec::new();
    let mut head = format!(
        "{} {}{} of service '{}': {} → {} ({}){}.\n",
        sub.kind,
        sub.id.as_deref().unwrap_or(""),
        if sub.title.is_empty() { String::new() } else { format!(" \"{}\"", sub.title) },
        sub.service,
        format_time(sub.start),
        format_time(sub.end),
        crate::timefmt::human_duration(sub.end - sub.start),
        if sub.severity.is_empty() { String::new() } else { format!(", severity {}", sub.severity) }
    );
    head += &side("during", &d.during);
    match (&d.baseline, &d.before) {
        (Some(b), Some(s)) => head += &side(&format!("baseline ({})", b.description), s),
        _ => head += "- baseline: none available\n",
    }
    if let Some(o) = &d.onset {
        head += &format!("- onset: {} by {}, {} the declared start\n", format_time(o.at), o.by, o.lead());
    }
    if let Some(r) = &d.regression {
        head += &format!("- regression: {r}\n");
    }
    sections.push((9, "summary", head));
    let mut rules = format!("Rule-based diagnosis: {}\n", d.advice.summary);
    for x in d.advice.diagnosis.iter().chain(&d.findings) {
        rules += &format!("- {x}\n");
    }
    sections.push((8, "rule-based diagnosis", rules));
    if !d.patterns.is_empty() {
        let mut first = String::from("Anomaly patterns (detector-flagged windows grouped):\n");
        let mut rest = String::new();
        for (k, p) in d.patterns.iter().enumerate() {
            let line = format!(
                "- pattern {}: {} — {} windows, {} in incidents\n",
                p.id,
                p.description,
                p.windows.len(),
                p.in_incidents
            );
            if k < 3 {
                first += &line;
            } else {
                rest += &line;
            }
        }
        sections.push((7, "patterns", first));
        if !rest.is_empty() {
            sections.push((2, "more patterns", rest));
        }
    }
    if !d.modules.is_empty() {
        let row = |m: &super::incident::ModuleRow| {
            format!(
                "- {}: PSS {} (baseline {}), {} traces, {} errors, weakest {} {:.2}\n",
                m.module,
                m.pss,
                m.baseline_pss.map_or("-".into(), |v| v.to_string()),
                m.traces,
                m.errors,
                m.weakest.0,
                m.weakest.1
            )
        };
        let worst: String = d.modules.iter().take(5).map(row).collect();
        sections.push((6, "worst modules", format!("Modules, worst first:\n{worst}")));
        if d.modules.len() > 5 {
            sections.push((3, "other modules", d.modules.iter().skip(5).map(row).collect()));
        }
    }
    if !d.during.exceptions.is_empty() {
        let types: Vec<String> =
            d.during.exceptions.iter().map(|e| format!("{} ×{}", e.exception_type, e.count)).collect();
        sections.push((6, "exception types", format!("Exceptions: {}\n", types.join(", "))));
        let msgs: String = d
            .during
            .exceptions
            .iter()
            .filter(|e| !e.example_message.is_empty())
            .map(|e| format!("- {}: {}\n", e.exception_type, e.example_message.chars().take(200).collect::<String>()))
            .collect();
        if !msgs.is_empty() {
            sections.push((4, "exception messages", format!("Example messages:\n{msgs}")));
        }
    }
    if !d.anomalous_traces.is_empty() {
        let t: String = d
            .anomalous_traces
            .iter()
            .take(5)
            .map(|t| {
                format!(
                    "- {} ({} of the 100 most anomalous traces; worst at {}): duration {:.4}s, wait {:.4}s{}, score {:.2}\n",
                    t.function,
                    t.count,
                    format_time(t.at),
                    t.duration,
                    t.wait_time,
                    if t.error { ", error" } else { "" },
                    t.score
                )
            })
            .collect();
        sections.push((3, "anomalous traces", format!("Most anomalous traces (against the baseline):\n{t}")));
    }
    let tl: Vec<String> = d
        .timeline
        .iter()
        .filter(|p| p.in_subject || d.onset.as_ref().is_some_and(|o| p.start >= o.at && p.start < d.subject.end))
        .map(|p| format!("{} PSS {:.0}{}", format_time(p.start), p.pss, if p.flagged { " *" } else { "" }))
        .collect();
    if !tl.is_empty() {
        sections.push((2, "window timeline", format!("Windows (* = detector flag): {}\n", tl.join("; "))));
    }
    if let Some(s) = &d.source {
        if let Some(code) = &s.code {
            sections.push((
                1,
                "source code",
                format!(
                    "Slowest function {} ({:.4}s), {}:{}:\n```\n{}\n```\n",
                    s.function, s.duration, s.filename, s.lineno, code
                ),
            ));
        }
    }
    let total = |s: &[(u8, &str, String)]| s.iter().map(|x| x.2.len()).sum::<usize>();
    let mut dropped = Vec::new();
    while total(&sections) > budget {
        let Some((k, _)) =
            sections.iter().enumerate().filter(|(_, s)| s.0 < 8).min_by_key(|(k, s)| (s.0, usize::MAX - k))
        else {
            break;
        };
        dropped.push(sections.remove(k).1);
    }
    let mut out: String = sections.iter().map(|s| s.2.as_str()).collect::<Vec<_>>().join("\n");
    if !dropped.is_empty() {
        out += &format!("\n(Omitted for length: {}.)\n", dropped.join(", "));
    }
    if out.len() > budget {
        let mut cut = budget.saturating_sub(40);
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out += "\n[truncated to the prompt budget]\n";
    }
    out
}
