//! A self-contained HTML report: inline CSS and SVG, no scripts, no network
//! fetches. Every string that comes from traces or paths is escaped.

use std::fmt::Write;

use super::charts;
use super::model::Report;
use super::text::{ellipsize, title_key};
use crate::score::GroupBy;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn color(v: f64) -> &'static str {
    if v >= 0.85 {
        "#34A853"
    } else if v >= 0.6 {
        "#FBBC04"
    } else {
        "#EA4335"
    }
}

pub(crate) const CSS: &str = r#"
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f5f6f8;color:#202124}
main{max-width:1040px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #dadce0;padding-bottom:4px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:16px 20px;margin-bottom:16px}
.top{display:flex;gap:24px;align-items:center;flex-wrap:wrap}
.score{font-size:64px;font-weight:700;line-height:1}
.score small{font-size:20px;color:#5f6368;font-weight:400}
.summary{font-size:16px;max-width:560px}
.bars{display:grid;grid-template-columns:180px 1fr 48px;gap:6px 12px;align-items:center}
.bar{background:#e8eaed;border-radius:4px;height:14px;overflow:hidden}.bar>div{height:100%}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:5px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left;white-space:normal;word-break:break-all}
th{background:#f1f3f4;font-weight:600}
.charts{display:grid;grid-template-columns:1fr;gap:12px}
.charts svg{width:100%;height:auto;max-width:640px}
.muted{color:#5f6368;font-size:13px}
ul{margin:6px 0 6px 20px;padding:0}
"#;

/// Renders the HTML report.
pub fn render(r: &Report, title: &str) -> String {
    let mut o = String::new();
    let pss = r.score.pss;
    let pss_color = color(pss as f64 / 100.0);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <title>{}</title><style>{CSS}</style></head><body><main>",
        escape(title)
    );
    let _ = write!(
        o,
        "<h1>{}</h1><p class=\"muted\">{} traces ({} system) · {} errors · {} skipped · config: {}</p>",
        escape(title),
        r.traces + r.system_traces,
        r.system_traces,
        r.errors,
        r.skipped.total(),
        escape(&r.config_source)
    );
    let _ = write!(
        o,
        "<div class=\"card top\"><div class=\"score\" style=\"color:{pss_color}\">{pss}<small>/100</small></div>\
         <div class=\"summary\">{}</div></div>",
        // The advisor's leading emoji adds nothing next to the coloured score.
        escape(r.advice.summary.trim_start_matches(|c: char| !c.is_ascii_alphanumeric()))
    );
    o.push_str("<div class=\"card\"><h2>Breakdown</h2><div class=\"bars\">");
    for (key, code, v) in r.score.breakdown.entries() {
        let pct = (v.clamp(0.0, 1.0) * 100.0).round();
        let _ = write!(
            o,
            "<div>{} ({})</div><div class=\"bar\"><div style=\"width:{pct}%;background:{}\"></div></div><div>{v:.2}</div>",
            title_key(key),
            code.to_uppercase(),
            color(v)
        );
    }
    o.push_str("</div></div>");

    o.push_str("<div class=\"card\"><h2>Diagnosis</h2><strong>Observations</strong><ul>");
    if r.advice.diagnosis.is_empty() {
        o.push_str("<li>None.</li>");
    }
    for d in &r.advice.diagnosis {
        let _ = write!(o, "<li>{}</li>", escape(d));
    }
    o.push_str("</ul><strong>Recommendations</strong><ul>");
    if r.advice.advice.is_empty() {
        o.push_str("<li>None.</li>");
    }
    for a in &r.advice.advice {
        let _ = write!(o, "<li>{}</li>", escape(a));
    }
    o.push_str("</ul></div>");

    let svgs: Vec<String> = [charts::latency_histogram(r), charts::error_timeline(r), charts::memory_over_time(r)]
        .into_iter()
        .flatten()
        .collect();
    if !svgs.is_empty() {
        o.push_str("<div class=\"card\"><h2>Charts</h2><div class=\"charts\">");
        for s in svgs {
            // Strip the XML prolog plotters may emit; the SVG is inline.
            let s = s.trim_start_matches(|c| c != '<');
            let s = if s.starts_with("<?xml") { s.split_once("?>").map(|x| x.1).unwrap_or(s) } else { s };
            o.push_str(s);
        }
        o.push_str("</div></div>");
    }

    if !r.groups.is_empty() {
        let label = if r.group_by == GroupBy::Module { "Module" } else { "Function" };
        let _ = write!(o, "<div class=\"card\"><h2>By {} (worst first)</h2><table><tr><th>{label}</th><th>PSS</th><th>TS</th><th>MS</th><th>EV</th><th>BE</th><th>CC</th><th>Traces</th><th>Errors</th></tr>", label.to_lowercase());
        for g in &r.groups {
            let b = &g.score.breakdown;
            let _ = write!(
                o,
                "<tr><td>{}</td><td style=\"color:{}\"><b>{}</b></td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>",
                escape(&ellipsize(&g.key, 120)),
                color(g.score.pss as f64 / 100.0),
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
        o.push_str("</table></div>");
    }

    o.push_str("<div class=\"card\"><h2>Distributions</h2><table><tr><th></th><th>mean</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>");
    for (name, s) in [("latency (s)", &r.latency), ("wait time (s)", &r.wait_time)] {
        let _ = write!(
            o,
            "<tr><td>{name}</td><td>{:.6}</td><td>{:.6}</td><td>{:.6}</td><td>{:.6}</td><td>{:.6}</td></tr>",
            s.mean, s.p50, s.p95, s.p99, s.max
        );
    }
    let m = &r.memory;
    let _ = write!(
        o,
        "<tr><td>memory</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table></div>",
        charts::human(m.mean),
        charts::human(m.p50),
        charts::human(m.p95),
        charts::human(m.p99),
        charts::human(m.max)
    );

    if !r.exceptions.is_empty() {
        o.push_str("<div class=\"card\"><h2>Top exceptions</h2><table><tr><th>Type</th><th>Count</th><th style=\"text-align:left\">Example message</th></tr>");
        for e in &r.exceptions {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td style=\"text-align:left;white-space:normal\">{}</td></tr>",
                escape(&e.exception_type),
                e.count,
                escape(&ellipsize(&e.example_message, 200))
            );
        }
        o.push_str("</table></div>");
    }
    let _ = write!(o, "<p class=\"muted\">");
    if r.skipped.total() > 0 {
        let _ = write!(o, "Skipped {} traces: {}. ", r.skipped.total(), escape(&r.skipped.describe()));
    }
    for (path, fmt, _) in &r.files {
        let _ = write!(o, "Read {} ({}). ", escape(path), escape(fmt));
    }
    let _ = writeln!(o, "Generated by pss {}.</p></main></body></html>", env!("CARGO_PKG_VERSION"));
    o
}
