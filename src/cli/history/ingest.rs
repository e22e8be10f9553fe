//! `pss ingest`: trace files into the history.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use super::open;
use crate::cli::{print, read_window, CmdResult, Failure};
use crate::config::Config;
use crate::ingest::{ingest_source, IngestOptions};
use crate::timefmt::format_duration;
use crate::trace::Source;

#[derive(Args, Debug)]
#[command(after_help = "Re-ingesting the same file adds nothing (traces are deduplicated on trace_id, or on \
content where there is none). A file that cannot be read is rolled back whole; the others are kept.")]
pub struct IngestArgs {
    /// Trace files (any format `pss analyze` reads; `-` for stdin).
    #[arg(required = true)]
    pub files: Vec<String>,
    /// History database (created if missing).
    #[arg(long, value_name = "DB")]
    pub history: PathBuf,
    /// Service the traces belong to.
    #[arg(long)]
    pub service: String,
    /// Window length (default: config `window`, else the one length the history holds, else 60s).
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,
    /// Configuration file (scores windows with its parameters).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs `pss ingest`.
pub fn ingest(a: IngestArgs) -> CmdResult {
    let cfg = Config::discover(a.config.as_deref())?;
    let mut store = open(&a.history)?;
    // Asked for once: a history that holds one window length keeps it.
    let window = read_window(&a.window, &cfg, &*store, std::slice::from_ref(&a.service))?;
    let opts = IngestOptions {
        service: a.service.clone(),
        window_seconds: window,
        min_window_traces: cfg.min_window_traces,
        params: cfg.score.clone(),
        unknown_module: cfg.unknown_module.clone(),
        custom: crate::cli::custom_metrics(&cfg),
    };
    let mut failed = Vec::new();
    for f in &a.files {
        let bar = if std::io::stderr().is_terminal() {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} {pos} traces ({per_sec})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b.set_message(format!("ingesting {f}:"));
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        let res = ingest_source(&mut *store, &Source::from_arg(f), &opts, &|n| bar.set_position(n));
        bar.finish_and_clear();
        match res {
            Ok(r) => {
                let mut line = format!(
                    "{}: {} inserted, {} duplicates, {} windows updated",
                    r.source, r.inserted, r.duplicates, r.windows
                );
                if r.skipped.total() > 0 {
                    line += &format!(", {} skipped ({})", r.skipped.total(), r.skipped.describe());
                }
                if r.no_timestamp > 0 {
                    line += &format!(", {} without timestamp (stored, in no window)", r.no_timestamp);
                }
                print(&(line + "\n"))?;
            }
            Err(e) => {
                eprintln!("error: {e} (nothing of this file was stored)");
                failed.push(f.clone());
            }
        }
    }
    if let Some(age) = cfg.retention_seconds {
        let r = store.prune(crate::timefmt::now() - age)?;
        if r.traces + r.windows + r.history > 0 {
            print(&format!(
                "retention ({}): pruned {} traces, {} windows, {} history rows\n",
                format_duration(age),
                r.traces,
                r.windows,
                r.history
            ))?;
        }
    }
    if !failed.is_empty() {
        return Err(Failure::input(format!(
            "{} of {} files failed: {}",
            failed.len(),
            a.files.len(),
            failed.join(", ")
        )));
    }
    Ok(())
}
