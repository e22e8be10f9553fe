//! `pss-tune`: the nightly job. Bayesian optimization of the score's weights
//! and thresholds against labeled incidents in the history database.

use crate::cli::progress;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use super::{print, CmdResult, Failure, EXIT_LOCKED};
use crate::config::Config;
use crate::tune::baseline::{BaselineError, BaselineJob, ConfigStyle};
use crate::tune::nightly::{NightlyError, NightlyJob};
use crate::tune::space::Space;
use crate::tune::{Objective, TuneParams};

mod render;

/// `--objective` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectiveArg {
    /// Window F1 of alarms against labeled windows.
    F1,
    /// Incident recall with a false-alarms-per-day penalty (--fa-weight).
    Incident,
    /// Average precision of the PSS as a ranking of labeled windows.
    AucPr,
    /// pypss 1.3.1's own loss with its fault injector, on --baseline FILE (no labels needed).
    Pypss,
}

#[derive(Parser, Debug)]
#[command(
    name = "pss-tune",
    version,
    about = "Tune the Program Stability Score against labeled incidents (the nightly job)",
    long_about = "Searches pypss's weights, sensitivities and thresholds, the per-metric alert thresholds and \
alert_threshold_pss by Bayesian optimization (Gaussian process, expected improvement), so that an alarm \
(PSS below alert_threshold_pss, or a sub-score below its alert threshold) means an incident. Trains on the \
earlier part of the history, validates on the later part, and compares with the defaults and with random \
search of the same budget.\n\nWrites the tuned config (loadable by `pss analyze --config` and by pypss), a \
model card, a convergence plot and a PR curve, and records the run in the database.",
    after_help = "Exit codes: 0 success; 2 usage or input error (no windows, no incidents, bad arguments); \
74 an output file could not be written; 75 another pss-tune run holds the lock on this database.\n\nExample (cron):\n  \
pss-tune --history /var/lib/pss/history.db --service checkout --window 5m --promote-if-better"
)]
pub struct TuneArgs {
    /// History database (from `pss ingest` and `pss incidents import`).
    #[arg(long, value_name = "DB", required_unless_present = "baseline")]
    pub history: Option<PathBuf>,
    /// Healthy trace file for --objective pypss (as `pypss tune --baseline`).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<String>,
    /// Service to tune (repeatable; default: every service in the database).
    #[arg(long)]
    pub service: Vec<String>,
    /// Only windows from this time (RFC 3339 or epoch seconds).
    #[arg(long)]
    pub from: Option<String>,
    /// Only windows before this time.
    #[arg(long)]
    pub to: Option<String>,
    /// Window length to tune on (as ingested; default: config `window`, else
    /// the one length the history holds, else 60s).
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,
    /// Fraction of the time range, the latest part, held out for validation.
    #[arg(long, default_value_t = 0.3)]
    pub validation: f64,
    /// An alarm this long before an incident's start still catches it.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub lead: String,
    /// What to maximize on the training part.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::F1)]
    pub objective: ObjectiveArg,
    /// For --objective incident: cost of one false alarm per day.
    #[arg(long, default_value_t = 0.02)]
    pub fa_weight: f64,
    /// Evaluations (initial design included): half for the score's
    /// parameters (each tried with every PSS-only cut), half for the
    /// thresholds. 200 take ~2 s on 2,600 windows and ~15 s on 60,000;
    /// with 50 the search often ends behind random search.
    #[arg(long, default_value_t = 200)]
    pub iterations: usize,
    /// Random seed: the same seed and data give the same result.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Where to write the tuned config (default: models/<service>/pss-tuned.toml);
    /// the model card and plots go beside it.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace the existing tuned config only when the new one scores better on
    /// the same validation windows (else write `<name>.candidate.toml`).
    #[arg(long)]
    pub promote_if_better: bool,
    /// Do not train the window detectors (by default each service's extended
    /// isolation forest is retrained on the training part and promoted to
    /// models/<service>/window-detector.json when it beats the active one on
    /// validation AUC-PR).
    #[arg(long)]
    pub no_detectors: bool,
    /// The alarm policy's page budget: the most false-alarm episodes per
    /// service-day it may page on the training part. The persistence and the
    /// detector rule are chosen to catch the most incidents within it.
    #[arg(long, default_value_t = 5.0, value_name = "PER_DAY")]
    pub page_budget: f64,
    /// Folder for detector files.
    #[arg(long, default_value = "models", value_name = "DIR")]
    pub models_dir: PathBuf,
    /// Configuration file (`[pss.tune_bounds]` sets search bounds).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl From<NightlyError> for Failure {
    fn from(e: NightlyError) -> Self {
        match e {
            NightlyError::Locked { .. } => Failure { code: EXIT_LOCKED, message: e.to_string() },
            NightlyError::Output { .. } => Failure::output(e.to_string()),
            _ => Failure::input(e.to_string()),
        }
    }
}

impl From<BaselineError> for Failure {
    fn from(e: BaselineError) -> Self {
        match e {
            BaselineError::Output { .. } => Failure::output(e.to_string()),
            _ => Failure::input(e.to_string()),
        }
    }
}

/// `pss tune`: pypss's `tune`, unchanged flags and defaults.
#[derive(clap::Args, Debug)]
#[command(after_help = "pypss's tuning: Bayesian optimization of pypss's ten parameters against pypss's own loss \
on the baseline and four faults injected into it (latency jitter, a memory leak, error bursts, thread starvation). \
Writes the whole configuration as `pypss tune` does (every pypss key, in pypss's order). For tuning against labeled \
incidents in a history, see pss-tune --history.")]
pub struct PypssTuneArgs {
    /// The baseline (healthy) trace file.
    #[arg(long, value_name = "FILE")]
    pub baseline: String,
    /// Where to save the optimized configuration.
    #[arg(long, default_value = "pypss_tuned.toml", value_name = "FILE")]
    pub output: PathBuf,
    /// Optimization iterations.
    #[arg(long, default_value_t = 50)]
    pub iterations: usize,
    /// Seed (pypss's optimizer is unseeded; pss's is always seeded).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs `pss tune`.
pub fn run_pypss_tune(a: PypssTuneArgs) -> CmdResult {
    let cfg = Config::discover(a.config.as_deref())?;
    let job = BaselineJob {
        baseline: a.baseline.clone(),
        iterations: a.iterations,
        seed: a.seed,
        output: Some(a.output.clone()),
        style: ConfigStyle::PypssFull,
    };
    run_baseline(&job, &cfg)
}

/// Tunes against pypss's loss on a baseline, with a progress bar, and renders.
fn run_baseline(job: &BaselineJob, cfg: &Config) -> CmdResult {
    let bar = progress(job.iterations, "{bar:40} {pos}/{len} evaluations");
    let r = crate::tune::baseline::run(job, cfg, &mut |_, _| bar.inc(1))?;
    bar.finish_and_clear();
    print(&render::baseline(&r))
}

/// Runs `pss-tune`: parse, call the nightly job, render.
pub fn run(a: TuneArgs) -> CmdResult {
    let cfg = Config::discover(a.config.as_deref())?;
    if a.objective == ObjectiveArg::Pypss {
        let baseline = a
            .baseline
            .clone()
            .ok_or_else(|| Failure::input("--objective pypss needs --baseline FILE (a healthy trace file)"))?;
        let job = BaselineJob {
            baseline,
            iterations: a.iterations,
            seed: a.seed,
            output: a.output.clone(),
            style: ConfigStyle::Pss,
        };
        return run_baseline(&job, &cfg);
    }
    if a.baseline.is_some() {
        return Err(Failure::input("--baseline goes with --objective pypss"));
    }
    let history = a.history.clone().ok_or_else(|| Failure::input("--history DB is required"))?;
    let objective = match a.objective {
        ObjectiveArg::F1 => Objective::F1,
        ObjectiveArg::AucPr => Objective::AucPr,
        ObjectiveArg::Incident => Objective::Incident { fa_weight: a.fa_weight },
        ObjectiveArg::Pypss => unreachable!("handled above"),
    };
    let job = NightlyJob {
        history,
        services: a.service.clone(),
        from: super::history_time_arg("from", &a.from)?,
        to: super::history_time_arg("to", &a.to)?,
        window_seconds: super::window_choice(&a.window, &cfg)?,
        params: TuneParams {
            objective,
            iterations: a.iterations,
            seed: a.seed,
            validation: a.validation,
            lead_seconds: super::duration_arg("lead", &a.lead, false)?,
            space: Space::default(),
        },
        output: a.output.clone(),
        promote_if_better: a.promote_if_better,
        detectors_dir: (!a.no_detectors).then(|| a.models_dir.clone()),
        page_budget: a.page_budget,
    };
    if !(a.page_budget >= 0.0 && a.page_budget.is_finite()) {
        return Err(Failure::input(format!(
            "--page-budget {} must be a non-negative number of episodes per day",
            a.page_budget
        )));
    }
    let bar = progress(a.iterations, "{bar:40} {pos}/{len} evaluations, best {msg}");
    let mut best = f64::NEG_INFINITY;
    let report = crate::tune::nightly::run(&job, &cfg, &mut |_, v| {
        best = best.max(v);
        bar.set_message(format!("{best:.3}"));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    print(&render::nightly(&report, &job))
}
