//! `pss analyze`: score trace files and print or write a report.

use std::path::PathBuf;

use clap::Args;

use super::{print, warn, CmdResult, Failure};
use crate::config::Config;
use crate::report::{self, OutputFormat};
use crate::score::GroupBy;
use crate::trace::{read_all, ColumnOptions, Source};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  pss analyze traces.json\n  pss analyze logs/*.jsonl --format json --output report.json\n  \
zcat traces.json.gz | pss analyze - --fail-if-below 80\n  pss analyze traces.json --format html --output report.html"
)]
pub struct AnalyzeArgs {
    /// Trace files: JSON array, {"traces": [...]}, JSON Lines, CSV, Parquet, or gzip of these; `-` reads stdin.
    pub files: Vec<String>,
    /// A trace file (pypss's flag; may be repeated, combined with FILE arguments).
    #[arg(long = "trace-file", value_name = "FILE")]
    pub trace_file: Vec<String>,
    /// Configuration file with a [pss], [pypss] or [tool.pypss] table
    /// (default: ./pss.toml, ./pypss.toml or ./pyproject.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Report format [default: text; as pypss: JSON into --output, HTML with --html].
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
    /// pypss's flag: the HTML report (into --output), titled by `default_html_report_title`.
    #[arg(long, conflicts_with = "format")]
    pub html: bool,
    /// Write the report to FILE instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Break the score down by module or by function name.
    #[arg(long, value_enum, default_value_t = ByArg::Module)]
    pub by: ByArg,
    /// Exit with code 1 when the PSS is below N (a CI gate).
    #[arg(long, value_name = "N")]
    pub fail_if_below: Option<f64>,
    /// Store the score in the history database and warn when it dropped
    /// more than `regression_threshold_drop` below the recent average.
    #[arg(long)]
    pub store_history: bool,
    /// History database for --store-history (default: config `storage_uri`).
    #[arg(long, value_name = "DB")]
    pub history: Option<PathBuf>,
    /// Service name stored with the run (for `pss history --service`).
    #[arg(long)]
    pub service: Option<String>,
}

impl AnalyzeArgs {
    /// The report's format: `--format`, else pypss's choice — HTML with
    /// `--html`, JSON into `--output`, text otherwise.
    pub fn report_format(&self) -> OutputFormat {
        match (self.format, self.html, &self.output) {
            (Some(f), _, _) => f,
            (None, true, _) => OutputFormat::Html,
            (None, false, Some(_)) => OutputFormat::Json,
            (None, false, None) => OutputFormat::Text,
        }
    }

    /// pypss's invocation (an `--output` and no `--format`): the text report
    /// is printed too, and "Report saved to R", as pypss prints them.
    fn pypss_style(&self) -> bool {
        self.format.is_none() && self.output.is_some()
    }

    /// Whether the text report is what standard output shows (messages follow it).
    fn text_on_stdout(&self) -> bool {
        self.pypss_style() || (self.report_format() == OutputFormat::Text && self.output.is_none())
    }
}

/// `--by` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ByArg {
    Module,
    Name,
}

/// Runs `pss analyze`.
pub fn run(a: AnalyzeArgs) -> CmdResult {
    let mut names = a.files.clone();
    names.extend(a.trace_file.iter().cloned());
    if names.is_empty() {
        return Err(Failure::input(
            "no trace files given. Usage: pss analyze FILE... (or --trace-file FILE, or - for stdin)",
        ));
    }
    if names.iter().filter(|n| *n == "-").count() > 1 {
        return Err(Failure::input("standard input (-) can be read only once"));
    }
    let cfg = Config::discover(a.config.as_deref())?;
    if !cfg.unknown_keys.is_empty() {
        warn(&format!("{}: unknown configuration keys ignored: {}", cfg.source, cfg.unknown_keys.join(", ")));
    }
    let custom_metrics = super::custom_metrics(&cfg);
    let sources: Vec<Source> = names.iter().map(|n| Source::from_arg(n)).collect();
    let by = match a.by {
        ByArg::Module => GroupBy::Module,
        ByArg::Name => GroupBy::Name,
    };
    // Timestamps feed the charts only; names only the by-name breakdown.
    let format = a.report_format();
    // Custom metrics read names and memory_diff.
    let custom = !custom_metrics.is_empty();
    let keep = ColumnOptions {
        timestamps: format == OutputFormat::Html,
        names: by == GroupBy::Name || custom,
        memory_diff: custom,
    };
    let (cols, files) = read_all(&sources, &cfg.unknown_module, keep)?;
    let rep = report::build_with(&cols, &files, &cfg, &custom_metrics, by, format.detail());
    if rep.skipped.total() > 0 && !a.text_on_stdout() {
        warn(&format!("skipped {} traces: {}", rep.skipped.total(), rep.skipped.describe()));
    }
    let body = report::render(&rep, format);
    if a.pypss_style() {
        print(&report::render(&rep, OutputFormat::Text))?;
    }
    match &a.output {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Failure::output(format!("{}: cannot create directory: {e}", dir.display())))?;
            }
            std::fs::write(path, body)
                .map_err(|e| Failure::output(format!("{}: cannot write report: {e}", path.display())))?;
            if a.pypss_style() {
                print(&format!("Report saved to {}\n", path.display()))?;
            } else {
                print(&format!("PSS: {}/100 — report saved to {}\n", rep.score.pss, path.display()))?;
            }
        }
        None => print(&body)?,
    }
    let recent = if a.store_history { store_history(&a, &cfg, &rep, &names)? } else { Vec::new() };
    alerts(&a, &cfg, &rep, &recent)?;
    if let Some(n) = a.fail_if_below {
        if (rep.score.pss as f64) < n {
            return Err(Failure::check(format!("PSS {} is below threshold {n}. Failing.", rep.score.pss)));
        }
    }
    Ok(())
}

/// pypss's alerting at the end of `analyze`: its rules on the report (and,
/// unlike pypss, on its modules for module-pattern rules), `recent` the
/// stored runs' PSS for the regression rule.
fn alerts(a: &AnalyzeArgs, cfg: &Config, rep: &report::Report, recent: &[f64]) -> CmdResult {
    use crate::alert::rules::{ModuleView, ScoreView};
    let ac = crate::alert::AlertConfig::from_config(cfg).map_err(|e| Failure::input(e.to_string()))?;
    if !ac.enabled {
        return Ok(());
    }
    if !ac.has_channels() {
        super::warn("alerting is enabled but no channel is configured (alerts_slack_webhook, alerts_teams_webhook, alerts_generic_webhook, alerts_alertmanager_url)");
    }
    let report = ScoreView { pss: rep.score.pss as f64, breakdown: rep.score.breakdown };
    let modules: Vec<ModuleView> = rep
        .groups
        .iter()
        .map(|g| ModuleView {
            module: g.key.clone(),
            scores: ScoreView { pss: g.score.pss as f64, breakdown: g.score.breakdown },
        })
        .collect();
    // The cooldown state lives in the history database.
    let mut store = crate::store::open(&super::history::history_path(&a.history, cfg))?;
    let now = crate::timefmt::now();
    let n = crate::alert::notify(&ac, &mut *store, a.service.as_deref(), &report, recent, &modules, now)?;
    for d in n.deliveries.iter().filter(|d| d.error.is_some()) {
        super::warn(&format!(
            "alert to {} not delivered after {} attempts: {}",
            d.channel.name(),
            d.attempts,
            d.error.as_deref().unwrap_or("")
        ));
    }
    if !n.sent.is_empty() {
        let msg = format!("\n🔔 {} Alerts triggered and sent.", n.sent.len());
        if a.text_on_stdout() {
            print(&format!("{msg}\n"))?;
        } else {
            eprintln!("{msg}");
        }
    }
    Ok(())
}

/// pypss's `--store-history`: regression check against recent runs, then
/// save. Returns the recent runs' PSS (latest first) read before the save.
fn store_history(a: &AnalyzeArgs, cfg: &Config, rep: &report::Report, files: &[String]) -> Result<Vec<f64>, Failure> {
    use crate::domain::{check_regression, HistoryRow};
    if cfg.pushes_to_prometheus() && a.history.is_none() {
        // pypss's Prometheus backend: push, no history to compare with.
        let uri = cfg.storage_uri();
        let pushed = crate::store::pushgateway::push(&uri, rep.score.pss as f64, &rep.score.breakdown);
        let msg = match pushed {
            Ok(()) => format!("\n✅ PSS Score pushed to the Pushgateway at {uri} (job pypss)."),
            // pypss prints the failure and goes on; so does pss.
            Err(e) => format!("\n⚠️  Failed to store history: {e}"),
        };
        if a.text_on_stdout() {
            print(&format!("{msg}\n"))?;
        } else {
            eprintln!("{msg}");
        }
        return Ok(Vec::new());
    }
    let path = super::history::history_path(&a.history, cfg);
    let mut store = crate::store::open(&path)?;
    let limit = cfg.regression_history_limit();
    let drop = cfg.regression_threshold_drop();
    // pypss's SQLiteStorage prunes run history older than 90 days on save.
    store.prune_history(crate::timefmt::now() - 90.0 * 86400.0)?;
    let recent = store.history(limit, None, a.service.as_deref())?;
    let say = |s: &str| -> CmdResult {
        if a.text_on_stdout() {
            print(&format!("{s}\n"))
        } else {
            eprintln!("{s}");
            Ok(())
        }
    };
    if let Some(w) = check_regression(rep.score.pss as f64, &recent, limit, drop) {
        say(&format!("\n{w}"))?;
    }
    let b = &rep.score.breakdown;
    let mut meta = serde_json::json!({ "trace_file": files.first().cloned().unwrap_or_default() });
    if let Some(s) = &a.service {
        meta["service"] = s.clone().into();
    }
    // Custom metrics' scores (pypss's table has columns for the five only).
    if !rep.score.custom.is_empty() {
        meta["custom"] =
            rep.score.custom.iter().map(|m| (m.code.clone(), serde_json::Value::from(m.rounded()))).collect();
    }
    store.save_history(&HistoryRow {
        id: 0,
        timestamp: crate::timefmt::now(),
        pss: rep.score.pss as f64,
        sub: *b,
        meta,
    })?;
    say(&format!("\n✅ PSS Score stored in history ({}).", path.display()))?;
    Ok(recent.iter().map(|r| r.pss).collect())
}
