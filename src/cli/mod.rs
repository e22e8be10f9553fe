//! The command line: clap definitions, one module per command, printing and
//! exit codes. The library below never prints; this is the only place that
//! decides what a person sees and which code the process exits with.
//!
//! Exit codes (decided here, nowhere else): 0 success; 1 a threshold or
//! regression check failed; 2 usage or input error; 74 an output could not
//! be written (disk full, no permission: not the input's fault); 75 another
//! run holds the lock.

pub(crate) mod alarms;
pub(crate) mod alerts;
pub(crate) mod analyze;
pub(crate) mod board;
pub(crate) mod detect;
pub(crate) mod diagnose;
pub(crate) mod history;
pub(crate) mod serve;
pub(crate) mod simulate;
pub(crate) mod tune;

use std::io::{self, Write};

use clap::{Parser, Subcommand};

/// Exit code: usage or input error.
pub const EXIT_INPUT: i32 = 2;
/// Exit code: an output file or folder could not be written (sysexits' EX_IOERR).
pub const EXIT_OUTPUT: i32 = 74;
/// Exit code: another run holds the lock.
pub const EXIT_LOCKED: i32 = 75;

/// A failure that ends the command, with its exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    /// Usage or input error (exit 2).
    pub fn input(message: impl Into<String>) -> Self {
        Failure { code: EXIT_INPUT, message: message.into() }
    }
    /// An output could not be written (exit 74).
    pub fn output(message: impl Into<String>) -> Self {
        Failure { code: EXIT_OUTPUT, message: message.into() }
    }
    /// A check failed (exit 1).
    pub fn check(message: impl Into<String>) -> Self {
        Failure { code: 1, message: message.into() }
    }
}

impl From<crate::trace::ReadError> for Failure {
    fn from(e: crate::trace::ReadError) -> Self {
        Failure::input(e.to_string())
    }
}

impl From<crate::config::ConfigError> for Failure {
    fn from(e: crate::config::ConfigError) -> Self {
        Failure::input(e.to_string())
    }
}

/// Result of a command.
pub type CmdResult = Result<(), Failure>;

#[derive(Parser, Debug)]
#[command(
    name = "pss",
    version,
    about = "Program Stability Score: score the run-time stability of a program from its pypss traces",
    long_about = "pss reads the traces pypss writes (JSON, JSON Lines, CSV, Parquet, gzip) and gives the \
same 0-100 Program Stability Score as pypss 1.3.1, much faster.\n\n\
Exit codes: 0 success, 1 a threshold check failed (--fail-if-below), 2 usage or input error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Score trace files: PSS, the five sub-scores, per-module breakdown and advice.
    Analyze(analyze::AnalyzeArgs),
    /// Store trace files in a history database and recompute their windows.
    Ingest(history::IngestArgs),
    /// Labeled incidents: import, add, list, rm.
    Incidents(history::IncidentsArgs),
    /// Past run scores (pypss's history table).
    History(history::HistoryArgs),
    /// The labeled window table of a service, as a table or CSV / Parquet.
    Windows(history::WindowsArgs),
    /// Delete history older than a given age.
    Prune(history::PruneArgs),
    /// Replay stored windows through an alarm policy: the episodes that would have paged.
    Alarms(alarms::AlarmsArgs),
    /// Notifications: list what was sent, test every channel, silence a service.
    Alerts(alerts::AlertsArgs),
    /// Anomaly detectors: train, score, and a causal streaming detector for metric series.
    Detect(detect::DetectArgs),
    /// pypss's ml-detect: flag anomalous traces of a target file against a baseline file.
    MlDetect(detect::MlDetectArgs),
    /// A document for an incident review: evidence, rule-based diagnosis, optional LLM narrative.
    Diagnose(diagnose::DiagnoseArgs),
    /// The same document for any period of a service (not an incident).
    Report(diagnose::ReportArgs),
    /// Collection service: gRPC (pypss's protocol), HTTP, Redis and files into the history, with /metrics.
    Serve(Box<serve::ServeArgs>),
    /// A live web dashboard over trace files or a history database.
    Board(board::BoardArgs),
    /// pypss's tune: tune pypss's parameters on a healthy baseline file (pss-tune tunes on labeled history).
    Tune(tune::PypssTuneArgs),
    /// Write a simulated labeled history: traces of a few services with injected incidents.
    Simulate(simulate::SimulateArgs),
}

/// The custom metrics the configuration names; a `plugins` entry pss cannot
/// run is named in a warning (the score leaves it out).
pub(crate) fn custom_metrics(cfg: &crate::config::Config) -> crate::score::custom::CustomMetrics {
    let (m, unresolved) = crate::score::custom::CustomMetrics::from_config(cfg);
    if !unresolved.is_empty() {
        warn(&format!(
            "{}: plugins {} name no metric pss has: pss cannot run Python plugin modules. Name pypss's built-in \
             metrics by code (plugins = [\"IO\", \"DB\"]) or declare yours in [[pss.metrics]]; these are not part \
             of the score",
            cfg.source,
            unresolved.join(", ")
        ));
    }
    m
}

/// The line that names incidents no alarm could have caught (every window
/// over them too small to score, or none), which the incident counts leave out.
pub fn unscorable_note(ids: &[String]) -> String {
    format!(
        "Not counted: {} incident{} ({}) — no window with at least min_window_traces application traces \
         overlaps {}, so no alarm could catch {}; to score quiet periods, lower min_window_traces or widen \
         --window and re-ingest.",
        ids.len(),
        if ids.len() == 1 { "" } else { "s" },
        ids.join(", "),
        if ids.len() == 1 { "it" } else { "them" },
        if ids.len() == 1 { "it" } else { "them" },
    )
}

/// Writes to stdout; a closed pipe (`pss ... | head`) ends quietly.
pub fn print(s: &str) -> CmdResult {
    let mut out = io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Failure { code: 0, message: String::new() }),
        Err(e) => Err(Failure::input(format!("cannot write to standard output: {e}"))),
    }
}

/// The bearer token from a `--token-file` (warned about when others can read it).
pub(crate) fn token_from_file(file: &Option<std::path::PathBuf>) -> Result<Option<String>, Failure> {
    let Some(p) = file else { return Ok(None) };
    if let Some(why) = crate::serve::token_file_exposure(p) {
        warn(&why);
    }
    let t = std::fs::read_to_string(p).map_err(|e| Failure::input(format!("{}: {e}", p.display())))?;
    let t = t.trim().to_string();
    if t.is_empty() {
        return Err(Failure::input(format!("{}: the token file is empty", p.display())));
    }
    Ok(Some(t))
}

/// A warning on stderr.
pub fn warn(s: &str) {
    let _ = writeln!(io::stderr(), "warning: {s}");
}

/// Parses arguments, runs the command, and returns the exit code.
pub fn run_pss<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let res = match cli.command {
        Command::Analyze(a) => analyze::run(a),
        Command::Ingest(a) => history::ingest(a),
        Command::Incidents(a) => history::incidents(a),
        Command::History(a) => history::history(a),
        Command::Windows(a) => history::windows(a),
        Command::Prune(a) => history::prune(a),
        Command::Simulate(a) => simulate::run(a),
        Command::Alarms(a) => alarms::run_alarms(a),
        Command::Alerts(a) => alerts::run_alerts(a),
        Command::Detect(a) => detect::run(a),
        Command::MlDetect(a) => detect::ml_detect(a),
        Command::Diagnose(a) => diagnose::run(a),
        Command::Report(a) => diagnose::report(a),
        Command::Serve(a) => serve::run_serve(*a),
        Command::Tune(a) => tune::run_pypss_tune(a),
        Command::Board(a) => board::run(a),
    };
    finish(res)
}

/// Parses arguments of `pss-tune`, runs it, and returns the exit code.
pub fn run_pss_tune<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::Parser;
    match tune::TuneArgs::try_parse_from(args) {
        Ok(a) => finish(tune::run(a)),
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            code
        }
    }
}

/// A duration flag (`60s`, `5m`, `1.5h`, `1d`, `1w`); `positive` refuses 0.
pub fn duration_arg(flag: &str, s: &str, positive: bool) -> Result<f64, Failure> {
    crate::config::parse_duration(s)
        .filter(|d| !positive || *d > 0.0)
        .ok_or_else(|| Failure::input(format!("--{flag} '{s}': expected a duration like 60s, 5m, 1.5h or 1d")))
}

/// `--window` for commands that write windows: the flag's value, else the
/// configuration's `window` (default 60 s).
pub fn window_arg(v: &Option<String>, cfg: &crate::config::Config) -> Result<f64, Failure> {
    Ok(window_choice(v, cfg)?.unwrap_or(cfg.window_seconds))
}

/// `--window` for commands that read windows: the flag's value, else the
/// configuration's `window` when it sets one, else `None` (the library then
/// uses the one length the history holds).
pub fn window_choice(v: &Option<String>, cfg: &crate::config::Config) -> Result<Option<f64>, Failure> {
    match v {
        Some(s) => duration_arg("window", s, true).map(Some),
        None => Ok(cfg.window_configured.then_some(cfg.window_seconds)),
    }
}

/// The window length a reading command uses: [`window_choice`], else the
/// one length the history holds for `services`, else the configured default.
pub fn read_window(
    v: &Option<String>,
    cfg: &crate::config::Config,
    store: &dyn crate::store::Store,
    services: &[String],
) -> Result<f64, Failure> {
    Ok(crate::store::window_length(store, window_choice(v, cfg)?, services, cfg.window_seconds)?)
}

/// `--from`/`--to` style times.
pub fn history_time_arg(name: &str, v: &Option<String>) -> Result<Option<f64>, Failure> {
    v.as_ref()
        .map(|s| {
            crate::timefmt::parse_time(s)
                .ok_or_else(|| Failure::input(format!("--{name} '{s}': expected RFC 3339 or epoch seconds")))
        })
        .transpose()
}

/// Prints a failure and turns the result into an exit code.
pub fn finish(res: CmdResult) -> i32 {
    match res {
        Ok(()) => 0,
        Err(f) => {
            if !f.message.is_empty() {
                let prefix = if f.code == 1 { "" } else { "error: " };
                let _ = writeln!(io::stderr(), "{prefix}{}", f.message);
            }
            f.code
        }
    }
}

/// A progress bar on a terminal, nothing otherwise.
pub(crate) fn progress(len: usize, template: &str) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len as u64);
    b.set_style(
        indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}
