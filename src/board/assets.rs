//! The board's pages, embedded: it needs no network and no files at run
//! time (an air-gapped host gets the same board). uPlot is vendored
//! unchanged from its npm package with its licence (`assets/vendor/uplot/`).

pub const INDEX_HTML: &str = include_str!("assets/index.html");
pub const APP_JS: &str = include_str!("assets/app.js");
pub const APP_CSS: &str = include_str!("assets/app.css");
pub const UPLOT_JS: &str = include_str!("assets/vendor/uplot/uPlot.iife.min.js");
pub const UPLOT_CSS: &str = include_str!("assets/vendor/uplot/uPlot.min.css");
pub const UPLOT_LICENSE: &str = include_str!("assets/vendor/uplot/LICENSE");
pub const ICON_SVG: &str = include_str!("assets/icon.svg");
