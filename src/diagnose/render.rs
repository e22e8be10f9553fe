//! The diagnosis as Markdown, self-contained HTML (inline CSS and SVG, no
//! scripts, no fetches; every trace-derived string escaped) or JSON.

use std::fmt::Write;

use plotters::prelude::*;

use super::incident::{Diagnosis, Narrative, Side};
use crate::report::html::{escape as h, CSS};
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
            format!("{:.2}", s.sub_scores[0]),
            format!("{:.2}", s.sub_scores[1]),
            format!("{:.2}", s.sub_scores[2]),
            format!("{:.2}", s.sub_scores[3]),
            format!("{:.2}", s.sub_scores[4]),
        ]
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
        format_duration(s.end - s.start),
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
    if let Some(o2) = &d.onset {
        let _ = writeln!(
            o,
            "\n## Onset\n\nFirst departure at {} ({}), {} the declared start.",
            format_time(o2.at),
            o2.by,
            o2.lead()
        );
    }
    let _ = writeln!(o, "\n## Timeline ({} windows)\n", format_duration(d.window_seconds));
    let _ = writeln!(o, "| window | PSS | TS | MS | EV | BE | CC | traces | detector | |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for p in &d.timeline {
        let [a, b, c, e, f] = p.sub_scores;
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
            md(&m.module),
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
        let _ = writeln!(o, "\n## Most anomalous traces\n\n| time | function | duration | wait | error | score |\n|---|---|---:|---:|---|---:|");
        for t in &d.anomalous_traces {
            let _ = writeln!(
                o,
                "| {} | {} | {:.4} s | {:.4} s | {} | {:.3} |",
                format_time(t.at),
                md(&t.function),
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

/// The timeline chart: PSS and the five sub-scores per window, the subject
/// shaded, detector-flagged windows marked.
pub fn timeline_svg(d: &Diagnosis) -> Option<String> {
    let t = &d.timeline;
    if t.len() < 2 {
        return None;
    }
    let t0 = t[0].start;
    let hours = |x: f64| (x - t0) / 3600.0;
    let x1 = hours(t[t.len() - 1].start + d.window_seconds);
    let mut svg = String::new();
    let res: Result<(), Box<dyn std::error::Error>> = (|| {
        let root = SVGBackend::with_string(&mut svg, (900, 320)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .caption(format!("Scores per {} window", format_duration(d.window_seconds)), ("sans-serif", 15))
            .x_label_area_size(34)
            .y_label_area_size(44)
            .build_cartesian_2d(0.0..x1, 0.0..105.0)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(245, 245, 245))
            .x_desc(format!("hours from {}", format_time(t0)))
            .y_desc("score (sub-scores ×100)")
            .draw()?;
        let (a, b) = (hours(d.subject.start).max(0.0), hours(d.subject.end).min(x1));
        chart.draw_series(std::iter::once(Rectangle::new(
            [(a, 0.0), (b, 105.0)],
            RGBColor(234, 67, 53).mix(0.12).filled(),
        )))?;
        let colors = [
            RGBColor(66, 133, 244),
            RGBColor(52, 168, 83),
            RGBColor(234, 67, 53),
            RGBColor(171, 71, 188),
            RGBColor(251, 140, 0),
        ];
        let names = ["timing", "memory", "errors", "branching", "concurrency"];
        for k in 0..5 {
            chart
                .draw_series(LineSeries::new(
                    t.iter().map(|p| (hours(p.start), p.sub_scores[k] * 100.0)),
                    colors[k].mix(0.6).stroke_width(1),
                ))?
                .label(names[k])
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colors[k]));
        }
        chart
            .draw_series(LineSeries::new(t.iter().map(|p| (hours(p.start), p.pss)), BLACK.stroke_width(2)))?
            .label("PSS")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], BLACK.stroke_width(2)));
        chart
            .draw_series(
                t.iter()
                    .filter(|p| p.flagged)
                    .map(|p| Circle::new((hours(p.start), p.pss), 4, RGBColor(234, 67, 53).filled())),
            )?
            .label("detector flag")
            .legend(|(x, y)| Circle::new((x + 7, y), 4, RGBColor(234, 67, 53).filled()));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .position(SeriesLabelPosition::LowerLeft)
            .draw()?;
        root.present()?;
        Ok(())
    })();
    res.ok().map(|_| svg)
}

/// One self-contained HTML file.
pub fn html(d: &Diagnosis) -> String {
    let mut o = String::new();
    let title = headline(d);
    let s = &d.subject;
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <title>{}</title><style>{CSS} .shade{{background:#fdecea}} .timeline svg{{width:100%;height:auto}} pre{{background:#f8f9fa;padding:10px;overflow:auto;font-size:13px}}</style></head><body><main>",
        h(&title)
    );
    let _ = write!(
        o,
        "<h1>{}</h1><p class=\"muted\">{}{} · {} → {} ({}) · baseline: {}</p>",
        h(&title),
        h(&s.title),
        if s.severity.is_empty() { String::new() } else { format!(" ({})", h(&s.severity)) },
        format_time(s.start),
        format_time(s.end),
        format_duration(s.end - s.start),
        h(&d.baseline.as_ref().map_or("none available".to_string(), |b| b.description.clone()))
    );
    let _ = write!(o, "<div class=\"card\"><h2>Summary</h2><p>{}</p><ul>", h(&d.advice.summary));
    for f in d.findings.iter().chain(d.regression.iter()) {
        let _ = write!(o, "<li>{}</li>", h(f));
    }
    let _ = write!(o, "</ul></div>");
    if let Some(svg) = timeline_svg(d) {
        let small = d.timeline.iter().filter(|p| p.too_small).count();
        let small = if small > 0 {
            format!(" {small} of the {} windows had too few traces to alarm.", d.timeline.len())
        } else {
            String::new()
        };
        let _ = write!(o, "<div class=\"card timeline\"><h2>Timeline</h2>{svg}<p class=\"muted\">Shaded: the {}. Red dots: windows the detector flagged ({}).{small}</p></div>", s.kind, h(d.detector.as_deref().unwrap_or("no detector")));
    }
    for u in &d.unavailable {
        let _ =
            write!(o, "<div class=\"card\"><p class=\"muted\">{} unavailable: {}.</p></div>", h(&u.step), h(&u.reason));
    }
    let _ = write!(o, "<div class=\"card\"><h2>During vs baseline</h2><table><tr><th>metric</th><th>during</th><th>baseline</th></tr>");
    for (n, a, b) in compare_rows(d) {
        let _ = write!(o, "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", h(&n), h(&a), h(&b));
    }
    let _ = write!(o, "</table></div>");
    if !d.patterns.is_empty() {
        let _ = write!(o, "<div class=\"card\"><h2>Patterns</h2><table><tr><th>pattern</th><th>windows</th><th>in incidents</th></tr>");
        for p in &d.patterns {
            let _ = write!(
                o,
                "<tr><td>{} {}</td><td>{}</td><td>{}</td></tr>",
                if p.id == 0 { "Unclustered:".to_string() } else { format!("<b>{}</b>", p.id) },
                h(&p.description),
                p.windows.len(),
                h(&format!("{} {}", p.in_incidents, p.incidents.join(", ")))
            );
        }
        let _ = write!(o, "</table></div>");
    }
    let _ = write!(o, "<div class=\"card\"><h2>Modules, worst first</h2><table><tr><th>module</th><th>PSS</th><th>baseline</th><th>traces</th><th>errors</th><th>weakest</th></tr>");
    for m in &d.modules {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {:.2}</td></tr>",
            h(&m.module),
            m.pss,
            m.baseline_pss.map_or("-".into(), |v| v.to_string()),
            m.traces,
            m.errors,
            h(&m.weakest.0),
            m.weakest.1
        );
    }
    let _ = write!(o, "</table></div>");
    if !d.during.exceptions.is_empty() {
        let _ =
            write!(o, "<div class=\"card\"><h2>Exceptions</h2><table><tr><th>type / example</th><th>count</th></tr>");
        for e in &d.during.exceptions {
            let _ = write!(
                o,
                "<tr><td><b>{}</b><br><span class=\"muted\">{}</span></td><td>{}</td></tr>",
                h(&e.exception_type),
                h(&e.example_message),
                e.count
            );
        }
        let _ = write!(o, "</table></div>");
    }
    if !d.anomalous_traces.is_empty() {
        let _ = write!(o, "<div class=\"card\"><h2>Most anomalous traces</h2><table><tr><th>function</th><th>time</th><th>duration</th><th>wait</th><th>score</th></tr>");
        for t in &d.anomalous_traces {
            let _ = write!(
                o,
                "<tr><td>{}{}</td><td>{}</td><td>{:.4} s</td><td>{:.4} s</td><td>{:.3}</td></tr>",
                h(&t.function),
                if t.error { " (error)" } else { "" },
                format_time(t.at),
                t.duration,
                t.wait_time,
                t.score
            );
        }
        let _ = write!(o, "</table></div>");
    }
    let _ = write!(o, "<div class=\"card\"><h2>Rule-based diagnosis</h2><p>{}</p><ul>", h(&d.advice.summary));
    for x in &d.advice.diagnosis {
        let _ = write!(o, "<li>{}</li>", h(x));
    }
    let _ = write!(o, "</ul>");
    if !d.advice.advice.is_empty() {
        let _ = write!(o, "<p>Recommendations:</p><ul>");
        for x in &d.advice.advice {
            let _ = write!(o, "<li>{}</li>", h(x));
        }
        let _ = write!(o, "</ul>");
    }
    let _ = write!(o, "</div>");
    if let Some(src) = &d.source {
        let _ = write!(
            o,
            "<div class=\"card\"><h2>Slowest function</h2><p><code>{}</code> ({:.4} s) at {}:{}</p>",
            h(&src.function),
            src.duration,
            h(&src.filename),
            src.lineno
        );
        match &src.code {
            Some(c) => {
                let _ = write!(o, "<pre>{}</pre>", h(c));
            }
            None => {
                let _ = write!(o, "<p class=\"muted\">{}</p>", h(&src.note));
            }
        }
        let _ = write!(o, "</div>");
    }
    match &d.narrative {
        Some(Narrative::Written(r)) => {
            let _ = write!(o, "<div class=\"card\"><h2>LLM narrative ({} via {:?})</h2><pre style=\"white-space:pre-wrap\">{}</pre></div>", h(&r.model), r.provider, h(&r.text));
        }
        Some(Narrative::Failed(why)) => {
            let _ = write!(o, "<div class=\"card\"><h2>LLM narrative</h2><p>The LLM part failed: {}</p></div>", h(why));
        }
        None => {}
    }
    let _ = writeln!(
        o,
        "<p class=\"muted\">pss {} · {} trace(s) skipped</p></main></body></html>",
        env!("CARGO_PKG_VERSION"),
        d.skipped_traces
    );
    o
}
