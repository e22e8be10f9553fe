//! History commands: `pss ingest`, `pss incidents`, `pss history`,
//! `pss windows`, `pss prune`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use polars::prelude::*;

use super::{duration_arg, print, warn, window_arg, CmdResult, Failure};
use crate::config::Config;
use crate::domain::Features;
use crate::domain::Incident;
use crate::store::incidents::{read_incidents, validate};
use crate::store::ingest::IngestOptions;
use crate::store::{ingest_source, SqliteStore, Store, StoreError};
use crate::timefmt::format_time;
use crate::trace::Source;

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::input(e.to_string())
    }
}

fn open(path: &Path) -> Result<SqliteStore, Failure> {
    Ok(SqliteStore::open(path)?)
}

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
    let window = window_arg(&a.window, &cfg)?;
    let mut store = open(&a.history)?;
    let opts = IngestOptions {
        service: a.service.clone(),
        window_seconds: window,
        min_window_traces: cfg.min_window_traces,
        params: cfg.score.clone(),
        unknown_module: cfg.unknown_module.clone(),
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
        let res = ingest_source(&mut store, &Source::from_arg(f), &opts, &|n| bar.set_position(n));
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
                crate::timefmt::format_duration(age),
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

#[derive(Args, Debug)]
pub struct IncidentsArgs {
    #[command(subcommand)]
    pub action: IncidentAction,
}

#[derive(Subcommand, Debug)]
pub enum IncidentAction {
    /// Import incidents from CSV (id,service,start,end,severity,title) or a JSON array; all or nothing.
    Import {
        file: PathBuf,
        #[arg(long, value_name = "DB")]
        history: PathBuf,
    },
    /// Add one incident.
    Add {
        #[arg(long, value_name = "DB")]
        history: PathBuf,
        #[arg(long)]
        id: String,
        #[arg(long)]
        service: String,
        /// Start (RFC 3339 or epoch seconds).
        #[arg(long)]
        start: String,
        /// End (RFC 3339 or epoch seconds).
        #[arg(long)]
        end: String,
        #[arg(long, default_value = "")]
        severity: String,
        #[arg(long, default_value = "")]
        title: String,
    },
    /// List incidents.
    List {
        #[arg(long, value_name = "DB")]
        history: PathBuf,
        #[arg(long)]
        service: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove an incident by id.
    Rm {
        id: String,
        #[arg(long, value_name = "DB")]
        history: PathBuf,
    },
}

/// Runs `pss incidents ...`.
pub fn incidents(a: IncidentsArgs) -> CmdResult {
    match a.action {
        IncidentAction::Import { file, history } => {
            let (new, places) = read_incidents(&file)?;
            let mut store = open(&history)?;
            let name = file.display().to_string();
            validate(&new, &store.incidents(None)?, &store.services()?, &|i| format!("{name}: {}", places[i]))?;
            store.add_incidents(&new)?;
            print(&format!("imported {} incidents from {name}\n", new.len()))
        }
        IncidentAction::Add { history, id, service, start, end, severity, title } => {
            let start = super::history_time_arg("start", &Some(start))?.unwrap_or_default();
            let end = super::history_time_arg("end", &Some(end))?.unwrap_or_default();
            let inc = Incident { id, service, start, end, severity, title };
            let mut store = open(&history)?;
            validate(std::slice::from_ref(&inc), &store.incidents(None)?, &store.services()?, &|_| "--id".into())?;
            store.add_incidents(std::slice::from_ref(&inc))?;
            print(&format!("added incident {}\n", inc.id))
        }
        IncidentAction::List { history, service, json } => {
            let store = open(&history)?;
            let list = store.incidents(service.as_deref())?;
            if json {
                return print(&(serde_json::to_string_pretty(&list).expect("serializable") + "\n"));
            }
            let mut out = format!(
                "{:<16} {:<14} {:<21} {:<21} {:>8}  {:<9} {}\n",
                "ID", "SERVICE", "START", "END", "MINUTES", "SEVERITY", "TITLE"
            );
            for i in &list {
                out += &format!(
                    "{:<16} {:<14} {:<21} {:<21} {:>8.1}  {:<9} {}\n",
                    i.id,
                    i.service,
                    format_time(i.start),
                    format_time(i.end),
                    (i.end - i.start) / 60.0,
                    i.severity,
                    i.title
                );
            }
            out += &format!("{} incidents\n", list.len());
            print(&out)
        }
        IncidentAction::Rm { id, history } => {
            let mut store = open(&history)?;
            if store.remove_incident(&id)? {
                print(&format!("removed incident {id}\n"))
            } else {
                Err(Failure::input(format!("no incident with id '{id}' in {}", history.display())))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryExport {
    Csv,
    Json,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// History database (default: config `storage_uri`, pypss's pypss_history.db).
    #[arg(long, value_name = "DB")]
    pub history: Option<PathBuf>,
    /// Number of runs to show.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Only the last N days.
    #[arg(long)]
    pub days: Option<f64>,
    /// Only runs stored for this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Export instead of a table.
    #[arg(long, value_enum)]
    pub export: Option<HistoryExport>,
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The history database from `--history` or the config's `storage_uri`.
pub fn history_path(arg: &Option<PathBuf>, cfg: &Config) -> PathBuf {
    arg.clone().unwrap_or_else(|| {
        PathBuf::from(cfg.other.get("storage_uri").and_then(|v| v.as_str()).unwrap_or("pypss_history.db"))
    })
}

/// Runs `pss history`: pypss's table and exports.
pub fn history(a: HistoryArgs) -> CmdResult {
    let cfg = Config::discover(a.config.as_deref())?;
    let path = history_path(&a.history, &cfg);
    if !path.exists() {
        return Err(Failure::input(format!("{}: no such history database", path.display())));
    }
    let store = open(&path)?;
    let since = a.days.map(|d| crate::timefmt::now() - d * 86400.0);
    let rows = store.history(a.limit, since, a.service.as_deref())?;
    match a.export {
        Some(HistoryExport::Json) => print(&(serde_json::to_string_pretty(&rows).expect("serializable") + "\n")),
        Some(HistoryExport::Csv) => {
            let mut out = String::from("id,timestamp,pss,ts,ms,ev,be,cc,meta\n");
            for r in &rows {
                let meta = r.meta.to_string().replace('"', "\"\"");
                out += &format!(
                    "{},{},{},{},{},{},{},{},\"{}\"\n",
                    r.id, r.timestamp, r.pss, r.ts, r.ms, r.ev, r.be, r.cc, meta
                );
            }
            print(&out)
        }
        None => {
            if rows.is_empty() {
                return print("No history found.\n");
            }
            let mut out = format!("\n📜 Historical PSS Trends (Last {} runs)\n", a.limit);
            out += &"=".repeat(60);
            out += &format!(
                "\n{:<20} | {:<5} | {:<4} | {:<4} | {:<4} | {:<4} | {:<4}\n",
                "Timestamp", "PSS", "TS", "MS", "EV", "BE", "CC"
            );
            out += &"-".repeat(60);
            out.push('\n');
            for r in &rows {
                out += &format!(
                    "{:<20} | {:<5} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2}\n",
                    format_time(r.timestamp).trim_end_matches('Z'),
                    r.pss as i64,
                    r.ts,
                    r.ms,
                    r.ev,
                    r.be,
                    r.cc
                );
            }
            out += &"=".repeat(60);
            out.push('\n');
            print(&out)
        }
    }
}

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
    let w = super::read_window(&a.window, &cfg, &store, std::slice::from_ref(&a.service))?;
    let rows = store.windows(
        &a.service,
        a.module.as_deref(),
        w,
        super::history_time_arg("from", &a.from)?,
        super::history_time_arg("to", &a.to)?,
    )?;
    if rows.is_empty() {
        warn(&format!("no {w}s windows for service '{}' in {}", a.service, a.history.display()));
    }
    if let (Some(fmt), Some(out)) = (a.export, &a.output) {
        let col_f = |f: &dyn Fn(&crate::domain::LabeledWindow) -> f64, name: &str| {
            Column::new(name.into(), rows.iter().map(f).collect::<Vec<f64>>())
        };
        let mut cols = vec![
            Column::new("service".into(), rows.iter().map(|r| r.window.service.clone()).collect::<Vec<_>>()),
            Column::new("module".into(), rows.iter().map(|r| r.window.module.clone()).collect::<Vec<_>>()),
            col_f(&|r| r.window.start, "start"),
            col_f(&|r| r.window.seconds, "seconds"),
            Column::new("traces".into(), rows.iter().map(|r| r.window.traces).collect::<Vec<u64>>()),
            Column::new("errors".into(), rows.iter().map(|r| r.window.errors).collect::<Vec<u64>>()),
            Column::new("too_small".into(), rows.iter().map(|r| r.window.too_small).collect::<Vec<bool>>()),
            col_f(&|r| r.window.pss, "pss"),
            col_f(&|r| r.window.ts, "ts"),
            col_f(&|r| r.window.ms, "ms"),
            col_f(&|r| r.window.ev, "ev"),
            col_f(&|r| r.window.be, "be"),
            col_f(&|r| r.window.cc, "cc"),
        ];
        for (k, name) in Features::NAMES.iter().enumerate() {
            cols.push(Column::new(
                (*name).into(),
                rows.iter().map(|r| r.window.features.values()[k]).collect::<Vec<f64>>(),
            ));
        }
        cols.push(Column::new("label".into(), rows.iter().map(|r| r.incident.is_some()).collect::<Vec<bool>>()));
        cols.push(Column::new(
            "incident".into(),
            rows.iter().map(|r| r.incident.clone()).collect::<Vec<Option<String>>>(),
        ));
        let mut df = DataFrame::new(rows.len(), cols).map_err(|e| Failure::input(e.to_string()))?;
        let f = std::fs::File::create(out).map_err(|e| Failure::output(format!("{}: {e}", out.display())))?;
        let res = match fmt {
            WindowExport::Csv => CsvWriter::new(f).finish(&mut df),
            WindowExport::Parquet => ParquetWriter::new(f).finish(&mut df).map(|_| ()),
        };
        res.map_err(|e| Failure::output(format!("{}: {e}", out.display())))?;
        return print(&format!("wrote {} windows to {}\n", rows.len(), out.display()));
    }
    let mut out = format!(
        "{:<21} {:>7} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>9}  {}\n",
        "START", "TRACES", "ERRORS", "PSS", "TS", "MS", "EV", "BE", "CC", "P95 (s)", "INCIDENT"
    );
    for r in &rows {
        let w = &r.window;
        out += &format!(
            "{:<21} {:>7} {:>6} {:>5} {:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>9.4}  {}{}\n",
            format_time(w.start),
            w.traces,
            w.errors,
            w.pss,
            w.ts,
            w.ms,
            w.ev,
            w.be,
            w.cc,
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
