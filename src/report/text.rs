//! Plain-text report: pypss's `render_report_text` layout (score, breakdown,
//! advisor), then pss's additions: breakdown by module, skipped traces.

use std::fmt::Write;

use super::model::Report;
use crate::report::advisor;
use crate::score::GroupBy;

/// pypss's title-casing of a breakdown key (`timing_stability` → `Timing Stability`).
pub fn title_key(key: &str) -> String {
    if key.len() <= 3 {
        return key.to_uppercase();
    }
    key.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + &c.as_str().to_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Cuts a string to `n` characters, marking the cut.
pub fn ellipsize(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
    }
}

/// Renders the text report.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    out.push_str("Python Program Stability Score (PSS) Report\n");
    out.push_str("===========================================\n");
    let _ = writeln!(out, "PSS: {}/100", r.score.pss);
    out.push_str("\nBreakdown:\n");
    for (key, _, v) in r.score.breakdown.entries() {
        let _ = writeln!(out, "  - {}: {:.2}", title_key(key), v);
    }
    for m in &r.score.custom {
        let _ = writeln!(out, "  - {}: {:.2}", title_key(&m.code), m.rounded());
    }
    out.push_str(&advisor::render_text(&r.advice));

    if !r.groups.is_empty() {
        let label = match r.group_by {
            GroupBy::Module => "Module",
            GroupBy::Name => "Function",
        };
        let _ = writeln!(out, "\n📦 {label} Stability Breakdown (worst first)");
        let w = r.groups.iter().map(|g| g.key.chars().count().min(40)).max().unwrap_or(6).max(label.len());
        let _ = writeln!(
            out,
            "  {:<w$}  {:>5}  {:>5} {:>5} {:>5} {:>5} {:>5}  {:>8}  {:>6}",
            label, "PSS", "TS", "MS", "EV", "BE", "CC", "traces", "errors"
        );
        for g in &r.groups {
            let b = &g.score.breakdown;
            let _ = writeln!(
                out,
                "  {:<w$}  {:>5}  {:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>5.2}  {:>8}  {:>6}",
                ellipsize(crate::domain::module_label(&g.key), 40),
                g.score.pss,
                b.timing_stability,
                b.memory_stability,
                b.error_volatility,
                b.branching_entropy,
                b.concurrency_chaos,
                g.traces,
                g.errors
            );
        }
    }
    let _ =
        writeln!(out, "\nTraces: {} ({} system), errors: {}", r.traces + r.system_traces, r.system_traces, r.errors);
    if r.skipped.total() > 0 {
        let _ = writeln!(out, "Skipped: {} traces ({})", r.skipped.total(), r.skipped.describe());
    } else {
        out.push_str("Skipped: 0 traces\n");
    }
    if let Some(n) = r.unmeasured.describe(r.traces) {
        let _ = writeln!(out, "{n}");
    }
    out
}
