//! Markdown report, for pasting into an incident document.

use std::fmt::Write;

use super::model::Report;
use super::text::{ellipsize, title_key};
use crate::score::GroupBy;

/// Escapes text from traces for a Markdown table cell or line.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' => {
                out.push('\\');
                out.push(ch);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Renders the Markdown report.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Program Stability Score: {}/100\n", r.score.pss);
    let _ = writeln!(o, "> {}\n", r.advice.summary);
    o.push_str("| Sub-score | Value |\n|---|---:|\n");
    for (key, _, v) in r.score.breakdown.entries() {
        let _ = writeln!(o, "| {} | {:.2} |", title_key(key), v);
    }
    for m in &r.score.custom {
        let _ = writeln!(o, "| {} ({}, weight {}) | {:.2} |", escape(&m.name), escape(&m.code), m.weight, m.rounded());
    }
    o.push_str("\n## Observations\n\n");
    if r.advice.diagnosis.is_empty() {
        o.push_str("_None._\n");
    }
    for d in &r.advice.diagnosis {
        let _ = writeln!(o, "- {d}");
    }
    o.push_str("\n## Recommendations\n\n");
    if r.advice.advice.is_empty() {
        o.push_str("_None._\n");
    }
    for a in &r.advice.advice {
        let _ = writeln!(o, "- {a}");
    }
    if !r.groups.is_empty() {
        let label = if r.group_by == GroupBy::Module { "Module" } else { "Function" };
        let _ = writeln!(o, "\n## By {} (worst first)\n", label.to_lowercase());
        let _ = writeln!(o, "| {label} | PSS | TS | MS | EV | BE | CC | Traces | Errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for g in &r.groups {
            let b = &g.score.breakdown;
            let _ = writeln!(
                o,
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
                escape(&ellipsize(crate::domain::module_label(&g.key), 60)),
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
    o.push_str("\n## Latency and memory\n\n| | mean | p50 | p95 | p99 | max |\n|---|---:|---:|---:|---:|---:|\n");
    for (name, s) in [("latency (s)", &r.latency), ("wait time (s)", &r.wait_time), ("memory", &r.memory)] {
        let _ = writeln!(o, "| {name} | {:.6} | {:.6} | {:.6} | {:.6} | {:.6} |", s.mean, s.p50, s.p95, s.p99, s.max);
    }
    if !r.exceptions.is_empty() {
        o.push_str("\n## Top exceptions\n\n| Type | Count | Example message |\n|---|---:|---|\n");
        for e in &r.exceptions {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                escape(&e.exception_type),
                e.count,
                escape(&ellipsize(&e.example_message, 120))
            );
        }
    }
    let _ = writeln!(
        o,
        "\n---\n{} traces ({} system), {} errors, {} skipped{}. Config: {}.",
        r.traces + r.system_traces,
        r.system_traces,
        r.errors,
        r.skipped.total(),
        if r.skipped.total() > 0 { format!(" ({})", r.skipped.describe()) } else { String::new() },
        escape(&r.config_source)
    );
    if let Some(n) = r.unmeasured.describe(r.traces) {
        let _ = writeln!(o, "\n> {}", escape(&n));
    }
    o
}
