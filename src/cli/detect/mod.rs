//! `pss detect` and `pss ml-detect`: arguments here; each action parses,
//! calls the library (`crate::detect`) and renders, in a file of its own.

mod eval;
mod series;
mod train;

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CmdResult, Failure};
use crate::detect::model::{DetectorModel, Level};

pub use series::ml_detect;

#[derive(Args, Debug)]
pub struct DetectArgs {
    #[command(subcommand)]
    pub action: DetectAction,
}

#[derive(Subcommand, Debug)]
pub enum DetectAction {
    /// Score a metric series (CSV of timestamp,value) point by point, causally.
    #[command(after_help = "Each point's score uses only the points before it: run on the first k rows, \
a file gets exactly the scores those rows get in the whole file. Points before enough history score 0.")]
    Series(SeriesArgs),
    /// Group a service's anomalous windows into patterns and describe each in words.
    #[command(after_help = "Windows are scored by --model (a window-level detector from `pss detect train`) or, \
without one, by an extended isolation forest trained on the same windows; the flagged ones are clustered with \
DBSCAN on robust z-scores against the normal windows, and each pattern is described by its most abnormal \
features, the module where the leading one is strongest, and the incidents it overlaps.")]
    Patterns(PatternsArgs),
    /// Train an isolation forest on a service's history (windows or traces) and save it.
    Train(TrainArgs),
    /// Score traces or windows with a saved detector.
    Score(ScoreArgs),
    /// Evaluate detectors: against labeled incidents (--history) or on a NAB corpus (--nab).
    #[command(after_help = "--history: the default-config PSS alarm, isolation forests (standard and extended, \
one per service) and a supervised random forest, on one time-ordered split (the latest --validation share held out), \
with precision, recall, F1, AUC-PR, incident recall and false alarms per day.\n\
--nab: the streaming series detector over a NAB-layout corpus, with NAB's three profile scores and, per series, \
its windows detected, false alarms and share of the raw score at the standard profile's threshold.")]
    Eval(EvalArgs),
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A NAB-layout folder: data/<category>/<series>.csv and combined_windows.json.
    #[arg(long, value_name = "DIR", required_unless_present = "history", conflicts_with = "history")]
    pub nab: Option<PathBuf>,
    /// A history database with windows and labeled incidents.
    #[arg(long, value_name = "DB")]
    pub history: Option<PathBuf>,
    /// Only this service (default: every service with windows).
    #[arg(long)]
    pub service: Option<String>,
    /// Window length (as ingested; default: the one length the history holds, else 60s).
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,
    /// Share of the time range held out for validation (the latest part).
    #[arg(long, default_value_t = 0.3)]
    pub validation: f64,
    /// An alarm up to this long before an incident's start catches it.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub lead: String,
    /// Isolation forests' expected share of anomalies (their alarm threshold).
    #[arg(long, default_value_t = 0.05)]
    pub contamination: f64,
    #[arg(long, value_enum, default_value_t = EvalFormat::Text)]
    pub format: EvalFormat,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// With --nab: choose the detector's parameters (among a few candidates)
    /// and threshold on all categories but one, score the one left out, for
    /// each category; reports the held-out mean beside the in-sample score.
    #[arg(long)]
    pub leave_one_category_out: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalFormat {
    Text,
    Json,
}

/// Which part of a service's history a command reads.
#[derive(Args, Debug)]
pub struct ServiceHistory {
    #[arg(long, value_name = "DB")]
    pub history: PathBuf,
    #[arg(long)]
    pub service: String,
    /// Window length (as ingested, windows only; default: the one length the
    /// history holds, else 60s).
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub to: Option<String>,
}

#[derive(Args, Debug)]
pub struct PatternsArgs {
    #[command(flatten)]
    pub source: ServiceHistory,
    /// A window-level detector file (default: train one on these windows).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Share of windows flagged when training here.
    #[arg(long, default_value_t = 0.05)]
    pub contamination: f64,
    #[arg(long, value_enum, default_value_t = EvalFormat::Text)]
    pub format: EvalFormat,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// With --nab: choose the detector's parameters (among a few candidates)
    /// and threshold on all categories but one, score the one left out, for
    /// each category; reports the held-out mean beside the in-sample score.
    #[arg(long)]
    pub leave_one_category_out: bool,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub source: ServiceHistory,
    /// What to learn: windows (stored features) or single traces (pypss's four features).
    #[arg(long, value_enum, default_value_t = Level::Window)]
    pub level: Level,
    /// Random hyperplane cuts (extended isolation forest).
    #[arg(long)]
    pub extended: bool,
    #[arg(long, default_value_t = 100)]
    pub n_estimators: usize,
    #[arg(long, default_value_t = 256)]
    pub max_samples: usize,
    /// Expected share of anomalies: sets the flagging threshold.
    #[arg(long, default_value_t = 0.05)]
    pub contamination: f64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Output file (default: models/<service>/<detector>-<level>-v<N>.json).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoreFormat {
    Text,
    Json,
    Csv,
}

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// A detector file from `pss detect train`.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// Traces to score (trace-level models).
    #[arg(long, value_name = "FILE", conflicts_with = "history")]
    pub trace_file: Option<String>,
    /// History to score (windows or traces of the model's service).
    #[arg(long, value_name = "DB")]
    pub history: Option<PathBuf>,
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long, value_enum, default_value_t = ScoreFormat::Text)]
    pub format: ScoreFormat,
    /// In text format, show this many highest scores.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
}

#[derive(Args, Debug)]
pub struct SeriesArgs {
    /// CSV file with a header row.
    pub file: PathBuf,
    #[arg(long, default_value = "timestamp")]
    pub timestamp_col: String,
    #[arg(long, default_value = "value")]
    pub value_col: String,
    /// Output CSV: timestamp,value,anomaly_score, one row per input row, in input order.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// Views averaged into the score: shingle lengths, `s` adding the
    /// differences from one period earlier when the series repeats.
    #[arg(long, default_value = "4s,1s,1,2s", value_name = "LIST")]
    pub views: String,
    /// Past points the forests learn from.
    #[arg(long, default_value_t = 2048)]
    pub window: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Runs `pss detect ...`.
pub fn run(a: DetectArgs) -> CmdResult {
    match a.action {
        DetectAction::Series(s) => series::series(s),
        DetectAction::Train(t) => train::train(t),
        DetectAction::Patterns(p) => train::patterns(p),
        DetectAction::Score(s) => train::score(s),
        DetectAction::Eval(e) => eval::eval(e),
    }
}

/// Reads a saved detector file (see [`DetectorModel::load`]).
fn load_model(path: &std::path::Path) -> Result<DetectorModel, Failure> {
    DetectorModel::load(path).map_err(|e| Failure::input(e.to_string()))
}

#[derive(Args, Debug)]
pub struct MlDetectArgs {
    /// JSON trace file with baseline (normal) behaviour.
    #[arg(long)]
    pub baseline_file: String,
    /// JSON trace file to detect anomalies in.
    #[arg(long)]
    pub target_file: String,
    /// Proportion of outliers in the baseline.
    #[arg(long, default_value_t = 0.1)]
    pub contamination: f64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub random_state: u64,
}

impl From<crate::detect::train::DetectError> for Failure {
    fn from(e: crate::detect::train::DetectError) -> Self {
        match e {
            crate::detect::train::DetectError::Output { .. } => Failure::output(e.to_string()),
            _ => Failure::input(e.to_string()),
        }
    }
}
