//! `pss windows`: the labeled window table, printed or exported; `pss prune`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::open;
use crate::cli::{duration_arg, history_time_arg, print, read_window, warn, CmdResult, Failure};
use crate::config::Config;
use crate::export::{windows_frame, write_frame, FrameFormat};
use crate::timefmt::format_time;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WindowExport {
    Csv,
    Parquet,
}

#[derive(Args, Debug)]
pub struct WindowsArgs {
    #[arg(long, value_name = "DB")]
    pub history: PathBuf,
    #[arg(long)]
    pub service: String,
    /// One module's windows (default: the service as a whole).
    #[arg(long)]
    pub module: Option<String>,
    /// From (RFC 3339 or epoch seconds).
    #[arg(long)]
    pub from: Option<String>,
    /// To (RFC 3339 or epoch seconds).
    #[arg(long)]
    pub to: Option<String>,
    /// Window length (default: config `window`, else the one length the history holds, else 60s).
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,
    /// Write the labeled window table as CSV or Parquet (needs --output).
    #[arg(long, value_enum, requires = "output")]
    pub export: Option<WindowExport>,
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs `pss windows`: the labeled window table.
pub fn windows(a: WindowsArgs) -> CmdResult {
    let cfg = Config::discover(a.config.as_deref())?;
    let store = open(&a.history)?;
    let w = read_window(&a.window, &cfg, &*store, std::slice::from_ref(&a.service))?;
    let rows = store.windows(
        &a.service,
        a.module.as_deref(),
        w,
        history_time_arg("from", &a.from)?,
        history_time_arg("to", &a.to)?,
    )?;
    if rows.is_empty() {
        warn(&format!("no {w}s windows for service '{}' in {}", a.service, a.history.display()));
    }
    if let (Some(fmt), Some(out)) = (a.export, &a.output) {
        let format = match fmt {
            WindowExport::Csv => FrameFormat::Csv,
            WindowExport::Parquet => FrameFormat::Parquet,
        };
        let mut df = windows_frame(&rows).map_err(|e| Failure::input(e.to_string()))?;
        write_frame(&mut df, out, format).map_err(|e| Failure::output(e.to_string()))?;
        return print(&format!("wrote {} windows to {}\n", rows.len(), out.display()));
    }
    let mut out = format!(
        "{:<21} {:>7} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>9}  {}\n",
        "START", "TRACES", "ERRORS", "PSS", "TS", "MS", "EV", "BE", "CC", "P95 (s)", "INCIDENT"
    );
    for r in &rows {
        let w = &r.window;
        let [ts, ms, ev, be, cc] = w.sub.to_array();
        out += &format!(
            "{:<21} {:>7} {:>6} {:>5} {ts:>5.2} {ms:>5.2} {ev:>5.2} {be:>5.2} {cc:>5.2} {:>9.4}  {}{}\n",
            format_time(w.start),
            w.traces,
            w.errors,
            w.pss,
            w.features.lat_p95,
            r.incident.as_deref().unwrap_or(""),
            if w.too_small { " (too small)" } else { "" }
        );
    }
    print(&out)
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    #[arg(long, value_name = "DB")]
    pub history: PathBuf,
    /// Delete traces, windows and run history older than this (e.g. 90d).
    #[arg(long, value_name = "DURATION")]
    pub older_than: String,
}

/// Runs `pss prune`.
pub fn prune(a: PruneArgs) -> CmdResult {
    let age = duration_arg("older-than", &a.older_than, false)?;
    let mut store = open(&a.history)?;
    let r = store.prune(crate::timefmt::now() - age)?;
    print(&format!("pruned {} traces, {} windows, {} history rows\n", r.traces, r.windows, r.history))
}
