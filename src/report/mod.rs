//! Renderers: text, JSON, Markdown and HTML (with inline SVG charts).

pub mod charts;
pub mod html;
pub mod json;
pub mod markdown;
pub mod model;
pub mod text;

pub use model::{build, Report};

/// Output formats of `pss analyze`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Html,
    Markdown,
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
