//! The diagnosis as Markdown, self-contained HTML (inline CSS and SVG, no
//! scripts, no fetches; every trace-derived string escaped) or JSON.

use std::fmt::Write;

use plotters::prelude::*;

use super::incident::{Diagnosis, Narrative, Side};
use maud::html;

use crate::report::html::{inline_svg, page};
use crate::report::markdown::escape as md;
use crate::timefmt::{format_duration, format_time};

fn headline(d: &Diagnosis) -> String {
    let s = &d.subject;
    match &s.id {
        Some(id) => format!("Incident {id} — {}", s.service),
        None => format!("Stability report — {}", s.service),
    }
}

fn compare_rows(d: &Diagnosis) -> Vec<(String, String, String)> {
    let f = |s: &Side| {
        vec![
            s.pss.to_string(),
            s.traces.to_string(),
            format!("{:.2}%", s.error_rate * 100.0),
            format!("{:.1} ms", s.latency.p50 * 1e3),
            format!("{:.1} ms", s.latency.p95 * 1e3),
            format!("{:.1} ms", s.latency.p99 * 1e3),
            format!("{:.1} ms", s.wait_time.mean * 1e3),
            format!("{:.1} MB", s.memory.p50 / 1e6),
            format!("{:.1} MB", s.memory.max / 1e6),
        ]
        .into_iter()
        .chain(s.sub_scores.to_array().map(|v| format!("{v:.2}")))
        .collect::<Vec<_>>()
    };
    let names = [
        "PSS",
        "traces",
        "error rate",
        "latency p50",
        "latency p95",
        "latency p99",
        "wait time (mean)",
        "memory (median)",
        "memory (max)",
        "timing stability",
        "memory stability",
        "error volatility",
        "branching entropy",
        "concurrency chaos",
    ];
    let a = f(&d.during);
    let b = d.before.as_ref().map(f);
    names
        .iter()
        .enumerate()
        .map(|(k, n)| (n.to_string(), a[k].clone(), b.as_ref().map_or("-".into(), |b| b[k].clone())))
        .collect()
}

/// Markdown for a review document or a ticket.
pub fn markdown(d: &Diagnosis) -> String {
    let mut o = String::new();
    let s = &d.subject;
    let _ = writeln!(o, "# {}\n", md(&headline(d)));
    if !s.title.is_empty() {
        let _ = writeln!(
            o,
            "**{}**{}\n",
            md(&s.title),
            if s.severity.is_empty() { String::new() } else { format!(" ({})", md(&s.severity)) }
        );
    }
    let _ = writeln!(
        o,
        "{} → {} ({}). Baseline: {}.\n",
        format_time(s.start),
        format_time(s.end),
        crate::timefmt::human_duration(s.end - s.start),
        d.baseline.as_ref().map_or("none available".to_string(), |b| md(&b.description))
    );
    let _ = writeln!(o, "## Summary\n\n{}\n", md(&d.advice.summary));
    for f in &d.findings {
        let _ = writeln!(o, "- {}", md(f));
    }
    if let Some(r) = &d.regression {
        let _ = writeln!(o, "- {}", md(r));
    }
    let _ = writeln!(o, "\n## During vs baseline\n\n| metric | during | baseline |\n|---|---:|---:|");
    for (n, a, b) in compare_rows(d) {
        let _ = writeln!(o, "| {n} | {a} | {b} |");
    }
    match &d.onset {
        Some(o2) => {
            let _ = writeln!(
                o,
                "\n## Onset\n\nFirst departure at {} ({}), {} the declared start.",
                format_time(o2.at),
                o2.by,
                o2.lead()
            );
        }
        None if !d.timeline.is_empty() => {
            let _ = writeln!(
                o,
                "\n## Onset\n\nNo clear onset: nothing departed from the baseline and stayed away into it (looked back {}).",
                crate::timefmt::human_duration(d.subject.start - d.onset_from)
            );
        }
        None => {}
    }
    let _ = writeln!(o, "\n## Timeline ({} windows)\n", format_duration(d.window_seconds));
    let _ = writeln!(o, "| window | PSS | TS | MS | EV | BE | CC | traces | detector | |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for p in &d.timeline {
        let [a, b, c, e, f] = p.sub_scores.to_array();
        let _ = writeln!(
            o,
            "| {} | {:.0} | {a:.2} | {b:.2} | {c:.2} | {e:.2} | {f:.2} | {} | {} | {}{} |",
            format_time(p.start),
            p.pss,
            p.traces,
            p.detector_score.map_or("-".into(), |v| format!("{v:.3}")),
            [p.in_subject.then_some("incident"), p.too_small.then_some("too few traces to alarm")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
            if p.flagged { " ⚑" } else { "" }
        );
    }
    if let Some(det) = &d.detector {
        let _ = writeln!(o, "\nDetector: {}.", md(det));
    }
    for u in &d.unavailable {
        let _ = writeln!(o, "\n{} unavailable: {}.", md(&u.step), md(&u.reason));
    }
    if !d.patterns.is_empty() {
        let _ = writeln!(o, "\n## Patterns\n");
        for p in &d.patterns {
            let _ = writeln!(
                o,
                "- **{}** {} — {} windows ({} → {}), {} in incidents{}",
                if p.id == 0 { "Unclustered:".to_string() } else { format!("Pattern {}:", p.id) },
                md(&p.description),
                p.windows.len(),
                format_time(p.windows.iter().copied().fold(f64::INFINITY, f64::min)),
                format_time(p.windows.iter().copied().fold(f64::NEG_INFINITY, f64::max) + d.window_seconds),
                p.in_incidents,
                if p.incidents.is_empty() { String::new() } else { format!(" ({})", md(&p.incidents.join(", "))) }
            );
        }
    }
    let _ = writeln!(o, "\n## Modules, worst first\n\n| module | PSS | baseline | traces | errors | weakest |\n|---|---:|---:|---:|---:|---|");
    for m in &d.modules {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} {:.2} |",
            md(crate::domain::module_label(&m.module)),
            m.pss,
            m.baseline_pss.map_or("-".into(), |v| v.to_string()),
            m.traces,
            m.errors,
            m.weakest.0,
            m.weakest.1
        );
    }
    if !d.during.exceptions.is_empty() {
        let _ = writeln!(o, "\n## Exceptions\n\n| type | count | example |\n|---|---:|---|");
        for e in &d.during.exceptions {
            let _ = writeln!(o, "| {} | {} | {} |", md(&e.exception_type), e.count, md(&e.example_message));
        }
    }
    if !d.anomalous_traces.is_empty() {
        let _ = writeln!(o, "\n## Most anomalous traces\n\nThe 100 highest-scoring traces by function: the worst example of each and how many of the 100 are that function's.\n\n| time | function | traces | duration | wait | error | score |\n|---|---|---:|---:|---:|---|---:|");
        for t in &d.anomalous_traces {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {:.4} s | {:.4} s | {} | {:.3} |",
                format_time(t.at),
                md(&t.function),
                t.count,
                t.duration,
                t.wait_time,
                if t.error { "yes" } else { "" },
                t.score
            );
        }
    }
    let _ = writeln!(o, "\n## Rule-based diagnosis\n\n{}\n", md(&d.advice.summary));
    for x in &d.advice.diagnosis {
        let _ = writeln!(o, "- {}", md(x));
    }
    if !d.advice.advice.is_empty() {
        let _ = writeln!(o, "\nRecommendations:\n");
        for x in &d.advice.advice {
            let _ = writeln!(o, "- {}", md(x));
        }
    }
    if let Some(src) = &d.source {
        let _ = writeln!(
            o,
            "\n## Slowest function\n\n`{}` ({:.4} s) at {}:{}",
            md(&src.function),
            src.duration,
            md(&src.filename),
            src.lineno
        );
        match &src.code {
            Some(c) => {
                let _ = writeln!(o, "\n```python\n{}\n```", c.replace("```", "ʼʼʼ"));
            }
            None => {
                let _ = writeln!(o, "\n({})", md(&src.note));
            }
        }
    }
    match &d.narrative {
        Some(Narrative::Written(r)) => {
            let _ = writeln!(o, "\n## LLM narrative ({} via {:?})\n\n{}", md(&r.model), r.provider, r.text);
        }
        Some(Narrative::Failed(why)) => {
            let _ = writeln!(o, "\n## LLM narrative\n\nThe LLM part failed: {}", md(why));
        }
        None => {}
    }
    if d.skipped_traces > 0 {
        let _ = writeln!(o, "\n{} trace(s) in the period could not be scored and were skipped.", d.skipped_traces);
    }
    o
}

/// The clock-time axis of a timeline spanning `span` seconds from `t0`: the
/// unit of x (seconds, minutes or hours) and an origin at a round time
/// (minute, hour, day), so ticks at nice numbers of the unit fall on round
/// clock times.
fn clock_axis(t0: f64, span: f64) -> (f64, f64) {
    let (unit, align) = if span <= 900.0 {
        (1.0, 60.0)
    } else if span <= 36_000.0 {
        (60.0, 3600.0)
    } else {
        (3600.0, 86_400.0)
    };
    (unit, (t0 / align).floor() * align)
}

/// The timeline chart: PSS and the five sub-scores per window on a UTC
/// clock-time axis, the subject shaded and labelled, the baseline shaded
/// and labelled where it falls on the chart, detector-flagged windows
/// marked, the legend beside the plot (never over the data).
pub fn timeline_svg(d: &Diagnosis) -> Option<String> {
    let t = &d.timeline;
    if t.len() < 2 {
        return None;
    }
    let t0 = t[0].start;
    let t1 = t[t.len() - 1].start + d.window_seconds;
    let (unit, origin) = clock_axis(t0, t1 - t0);
    let x = |v: f64| (v - origin) / unit;
    let clock = move |v: &f64| {
        let at = origin + v * unit;
        let secs = at.rem_euclid(86_400.0).round() as u64;
        if unit == 1.0 {
            format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
        } else {
            format!("{:02}:{:02}", secs / 3600, secs / 60 % 60)
        }
    };
    let day = format_time(t0).chars().take(10).collect::<String>();
    let mut svg = String::new();
    let res: Result<(), Box<dyn std::error::Error>> = (|| {
        let root = SVGBackend::with_string(&mut svg, (900, 320)).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot, side) = root.split_horizontally(770);
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .caption(format!("Scores per {} window", format_duration(d.window_seconds)), ("sans-serif", 15))
            .x_label_area_size(34)
            .y_label_area_size(44)
            .build_cartesian_2d(x(t0)..x(t1), 0.0..110.0)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(245, 245, 245))
            .x_label_formatter(&clock)
            .x_desc(format!("time (UTC), {day}"))
            .y_desc("score (sub-scores ×100)")
            .draw()?;
        let label = ("sans-serif", 12).into_font().color(&RGBColor(90, 90, 90));
        if let Some(b) = &d.baseline {
            for &(ba, bb) in &b.ranges {
                let (a, z) = (ba.max(t0), bb.min(t1));
                if z > a {
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x(a), 0.0), (x(z), 110.0)],
                        RGBColor(120, 120, 120).mix(0.08).filled(),
                    )))?;
                    chart.draw_series(std::iter::once(Text::new("baseline", (x(a), 109.0), label.clone())))?;
                }
            }
        }
        let (a, b) = (d.subject.start.max(t0), d.subject.end.min(t1));
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x(a), 0.0), (x(b), 110.0)],
            RGBColor(234, 67, 53).mix(0.12).filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(d.subject.kind.to_string(), (x(a), 109.0), label.clone())))?;
        let colors = [
            RGBColor(66, 133, 244),
            RGBColor(52, 168, 83),
            RGBColor(234, 67, 53),
            RGBColor(171, 71, 188),
            RGBColor(251, 140, 0),
        ];
        let names = ["timing", "memory", "errors", "branching", "concurrency"];
        for (k, c) in colors.iter().enumerate() {
            chart.draw_series(LineSeries::new(
                t.iter().map(|p| (x(p.start), p.sub_scores.to_array()[k] * 100.0)),
                c.mix(0.6).stroke_width(1),
            ))?;
        }
        chart.draw_series(LineSeries::new(t.iter().map(|p| (x(p.start), p.pss)), BLACK.stroke_width(2)))?;
        chart.draw_series(
            t.iter().filter(|p| p.flagged).map(|p| Circle::new((x(p.start), p.pss), 4, RGBColor(234, 67, 53).filled())),
        )?;
        // The legend, beside the plot.
        let font = ("sans-serif", 12).into_font();
        let mut y = 40;
        side.draw(&PathElement::new([(4, y), (22, y)], BLACK.stroke_width(2)))?;
        side.draw(&Text::new("PSS", (28, y - 6), font.clone()))?;
        for (c, name) in colors.iter().zip(names) {
            y += 20;
            side.draw(&PathElement::new([(4, y), (22, y)], c.stroke_width(2)))?;
            side.draw(&Text::new(name, (28, y - 6), font.clone()))?;
        }
        y += 20;
        side.draw(&Circle::new((13, y), 4, RGBColor(234, 67, 53).filled()))?;
        side.draw(&Text::new("detector flag", (28, y - 6), font.clone()))?;
        root.present()?;
        Ok(())
    })();
    res.ok().map(|_| svg)
}

/// The advisor's summary in words (its level in bold), no emoji.
fn summary_html(summary: &str) -> maud::Markup {
    let (level, text) = crate::report::advisor::summary_in_words(summary);
    maud::html! { @if !level.is_empty() { strong { (level) ": " } } (text) }
}

/// Self-contained HTML. Built with maud: every string is escaped unless
/// marked as markup (only the SVG pss draws itself is).
pub fn html(d: &Diagnosis) -> String {
    let title = headline(d);
    let s = &d.subject;
    let css = ".shade{background:#fdecea} .timeline svg{width:100%;height:auto} \
               pre{background:#f8f9fa;padding:10px;overflow:auto;font-size:13px}";
    let small = d.timeline.iter().filter(|p| p.too_small).count();
    let body = html! {
        h1 { (title) }
        p.muted {
            (s.title) @if !s.severity.is_empty() { " (" (s.severity) ")" }
            " · " (format_time(s.start)) " → " (format_time(s.end)) " (" (crate::timefmt::human_duration(s.end - s.start)) ")"
            " · baseline: " (d.baseline.as_ref().map_or("none available", |b| b.description.as_str()))
        }
        div.card {
            h2 { "Summary" }
            p { (summary_html(&d.advice.summary)) }
            ul { @for f in d.findings.iter().chain(d.regression.iter()) { li { (f) } } }
        }
        @if let Some(svg) = timeline_svg(d) {
            div.card.timeline {
                h2 { "Timeline" }
                (inline_svg(&svg))
                p.muted {
                    "Shaded: the " (s.kind) ". Red dots: windows the detector flagged ("
                    (d.detector.as_deref().unwrap_or("no detector")) ")."
                    @if small > 0 { " " (small) " of the " (d.timeline.len()) " windows had too few traces to alarm." }
                }
            }
        }
        @for u in &d.unavailable {
            div.card { p.muted { (u.step) " unavailable: " (u.reason) "." } }
        }
        div.card {
            h2 { "During vs baseline" }
            table {
                tr { th { "metric" } th { "during" } th { "baseline" } }
                @for (n, a, b) in compare_rows(d) { tr { td { (n) } td { (a) } td { (b) } } }
            }
        }
        @if !d.patterns.is_empty() {
            div.card {
                h2 { "Patterns" }
                table {
                    tr { th { "pattern" } th { "windows" } th { "in incidents" } }
                    @for p in &d.patterns {
                        tr {
                            td { @if p.id == 0 { "Unclustered:" } @else { b { (p.id) } } " " (p.description) }
                            td { (p.windows.len()) }
                            td { (p.in_incidents) " " (p.incidents.join(", ")) }
                        }
                    }
                }
            }
        }
        div.card {
            h2 { "Modules, worst first" }
            table {
                tr { th { "module" } th { "PSS" } th { "baseline" } th { "traces" } th { "errors" } th { "weakest" } }
                @for m in &d.modules {
                    tr {
                        td { (crate::domain::module_label(&m.module)) } td { (m.pss) }
                        td { (m.baseline_pss.map_or("-".into(), |v| v.to_string())) }
                        td { (m.traces) } td { (m.errors) } td { (m.weakest.0) " " (format!("{:.2}", m.weakest.1)) }
                    }
                }
            }
        }
        @if !d.during.exceptions.is_empty() {
            div.card {
                h2 { "Exceptions" }
                table {
                    tr { th { "type / example" } th { "count" } }
                    @for e in &d.during.exceptions {
                        tr { td { b { (e.exception_type) } br; span.muted { (e.example_message) } } td { (e.count) } }
                    }
                }
            }
        }
        @if !d.anomalous_traces.is_empty() {
            div.card {
                h2 { "Most anomalous traces" }
                table {
                    tr { th { "function" } th { "traces" } th { "worst at" } th { "duration" } th { "wait" } th { "score" } }
                    @for t in &d.anomalous_traces {
                        tr {
                            td { (t.function) @if t.error { " (error)" } }
                            td { (t.count) }
                            td { (format_time(t.at)) }
                            td { (format!("{:.4} s", t.duration)) } td { (format!("{:.4} s", t.wait_time)) }
                            td { (format!("{:.3}", t.score)) }
                        }
                    }
                }
            }
        }
        div.card {
            h2 { "Rule-based diagnosis" }
            p { (summary_html(&d.advice.summary)) }
            ul { @for x in &d.advice.diagnosis { li { (x) } } }
            @if !d.advice.advice.is_empty() {
                p { "Recommendations:" }
                ul { @for x in &d.advice.advice { li { (x) } } }
            }
        }
        @if let Some(src) = &d.source {
            div.card {
                h2 { "Slowest function" }
                p { code { (src.function) } " (" (format!("{:.4}", src.duration)) " s) at " (src.filename) ":" (src.lineno) }
                @match &src.code {
                    Some(c) => pre { (c) },
                    None => p.muted { (src.note) },
                }
            }
        }
        @match &d.narrative {
            Some(Narrative::Written(r)) => div.card {
                h2 { "LLM narrative (" (r.model) " via " (format!("{:?}", r.provider)) ")" }
                pre style="white-space:pre-wrap" { (r.text) }
            },
            Some(Narrative::Failed(why)) => div.card { h2 { "LLM narrative" } p { "The LLM part failed: " (why) } },
            None => {},
        }
        p.muted { "pss " (env!("CARGO_PKG_VERSION")) " · " (d.skipped_traces) " trace(s) skipped" }
    };
    page(&title, css, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::diagnose::incident::Unavailable;
    use crate::diagnose::trace_file::diagnose_files;

    /// A diagnosis of a trace file whose names are hostile, with a failed step.
    fn hostile() -> (tempfile::TempDir, Diagnosis) {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.json");
        let traces: Vec<String> = (0..40)
            .map(|i| {
                format!(
                    r#"{{"name":"f<img src=x>","module":"m|<script>x</script>","duration":{},"memory":100,"timestamp":{},"filename":"app.py","lineno":1}}"#,
                    0.01 + (i % 5) as f64 * 0.01,
                    1000 + i
                )
            })
            .collect();
        std::fs::write(&f, format!("[{}]", traces.join(","))).unwrap();
        let source = crate::diagnose::source::SourcePolicy::under(Some(dir.path().to_path_buf()));
        let mut d = diagnose_files(&[f.display().to_string()], &Config::default(), &source).unwrap();
        d.unavailable.push(Unavailable { step: "Trace detector".into(), reason: "too <few> traces".into() });
        (dir, d)
    }

    #[test]
    fn html_escapes_names_and_shows_a_failed_step() {
        let (_d, d) = hostile();
        let html = html(&d);
        assert!(!html.contains("<script>x") && !html.contains("<img"), "unescaped trace strings");
        assert!(html.contains("Trace detector unavailable: too &lt;few&gt; traces."), "the failed step is shown");
        assert!(!html.contains("<script"), "no scripts");
    }

    #[test]
    fn markdown_escapes_names_and_shows_a_failed_step() {
        let (_d, d) = hostile();
        let md = markdown(&d);
        assert!(md.contains("m\\|\\<script\\>x\\</script\\>"), "{md}");
        assert!(md.contains("Trace detector unavailable: too \\<few\\> traces."), "{md}");
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["unavailable"][0]["step"], "Trace detector");
    }
}
