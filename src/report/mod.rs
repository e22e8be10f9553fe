//! Renderers: text, JSON, Markdown and HTML (with inline SVG charts), and
//! pypss's advisor, which every report shows.

pub mod advisor;
pub(crate) mod charts;
pub mod html;
pub mod json;
pub mod markdown;
pub mod model;
pub mod text;

pub use model::{build, build_with, Detail, Report};

/// Output formats of `pss analyze`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Html,
    Markdown,
}

impl OutputFormat {
    /// What a report in this format shows beyond the scores.
    pub fn detail(self) -> Detail {
        match self {
            OutputFormat::Text => Detail { summaries: false, charts: false },
            OutputFormat::Json | OutputFormat::Markdown => Detail { summaries: true, charts: false },
            OutputFormat::Html => Detail { summaries: true, charts: true },
        }
    }
}

/// Renders a report in a format.
pub fn render(r: &Report, f: OutputFormat) -> String {
    match f {
        OutputFormat::Text => text::render(r),
        OutputFormat::Json => json::render(r),
        OutputFormat::Html => html::render(r, &r.title),
        OutputFormat::Markdown => markdown::render(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::score::GroupBy;
    use crate::trace::{read_bytes, ColumnOptions, TraceColumns};

    /// A report of traces whose module and function names are hostile.
    fn hostile_report(detail: Detail) -> Report {
        let traces: Vec<String> = (0..60)
            .map(|i| {
                format!(
                    r#"{{"name":"f<img src=x onerror=alert({i})>","module":"m|<script>x</script>","duration":{},"memory":{},"error":{},"exception_type":"E<b>","timestamp":{}}}"#,
                    0.01 + (i % 7) as f64 * 0.01,
                    1000 + i * 3,
                    i % 9 == 0,
                    1000.0 + i as f64
                )
            })
            .collect();
        let keep = ColumnOptions { timestamps: true, names: true, memory_diff: false };
        let mut c = TraceColumns::with_options("unknown", keep);
        read_bytes("t", format!("[{}]", traces.join(",")).as_bytes(), &mut c).unwrap();
        build(&c, &[], &Config::default(), GroupBy::Module, detail)
    }

    #[test]
    fn html_escapes_every_trace_string_and_fetches_nothing() {
        let html = render(&hostile_report(OutputFormat::Html.detail()), OutputFormat::Html);
        assert!(!html.contains("<script>x") && !html.contains("<img") && !html.contains("E<b>"), "unescaped");
        assert!(html.contains("&lt;script&gt;"), "the module is shown, escaped");
        // Nothing fetched: no src/href to a URL (the SVG's xmlns is a name, not a fetch).
        for attr in ["src=\"http", "href=\"http", "url(http", "<script", "<link"] {
            assert!(!html.contains(attr), "{attr}");
        }
    }

    #[test]
    fn markdown_escapes_table_cells() {
        let md = render(&hostile_report(OutputFormat::Markdown.detail()), OutputFormat::Markdown);
        assert!(md.contains("m\\|\\<script\\>x\\</script\\>"), "{md}");
    }

    #[test]
    fn json_starts_with_pypss_keys() {
        let json = render(&hostile_report(OutputFormat::Json.detail()), OutputFormat::Json);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys[..2], ["pss", "breakdown"]);
        assert!(v["modules"].get("m|<script>x</script>").is_some(), "JSON keeps the raw string: {}", v["modules"]);
    }

    #[test]
    fn the_advisor_follows_pypss_thresholds() {
        let r = hostile_report(OutputFormat::Text.detail());
        let a = advisor::advise(&r.score, &Config::default().advisor);
        assert!(!a.summary.is_empty());
        let text = render(&r, OutputFormat::Text);
        assert!(text.contains(&a.summary), "the text report shows the advisor");
    }
}
