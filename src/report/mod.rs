//! Renderers: text, JSON, Markdown and HTML (with inline SVG charts), and
//! pypss's advisor, which every report shows.

pub mod advisor;
pub mod charts;
pub mod html;
pub mod json;
pub mod markdown;
pub mod model;
pub mod text;

pub use model::{build, Detail, Report};

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
        OutputFormat::Html => html::render(r, "PyPSS Stability Report"),
        OutputFormat::Markdown => markdown::render(r),
    }
}
