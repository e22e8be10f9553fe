//! `pss detect`: anomaly detectors. So far: `pss detect series`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use polars::prelude::*;

use super::{print, CmdResult, Failure};
use crate::config::Config;
use crate::detect::iforest::{roc_auc, IsolationForestParams};
use crate::detect::model::{trace_features, window_features, DetectorModel, Level, TRACE_FEATURES};
use crate::detect::series::{score_series, SeriesParams};
use crate::domain::Features;
use crate::store::{RunRecord, SqliteStore, Store};

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

struct NabDir {
    nab: PathBuf,
    seed: u64,
}

/// Runs `pss detect ...`.
pub fn run(a: DetectArgs) -> CmdResult {
    match a.action {
        DetectAction::Series(s) => series(s),
        DetectAction::Train(t) => train(t),
        DetectAction::Patterns(p) => patterns(p),
        DetectAction::Score(s) => score(s),
        DetectAction::Eval(e) => eval(e),
    }
}

/// A series file's timestamps and values as written, and values parsed.
type SeriesColumns = (Vec<Option<String>>, Vec<Option<String>>, Vec<f64>);

/// Timestamps and values of a `timestamp,value` CSV.
fn read_series(file: &std::path::Path, ts_col: &str, val_col: &str) -> Result<SeriesColumns, Failure> {
    let name = file.display().to_string();
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0)) // text: timestamps are written back as they were
        .try_into_reader_with_file_path(Some(file.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| Failure::input(format!("{name}: {e}")))?;
    let col = |c: &str| -> Result<Vec<Option<String>>, Failure> {
        let s = df.column(c).map_err(|_| {
            Failure::input(format!(
                "{name}: no column '{c}' (columns: {})",
                df.get_column_names().iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let ca = s.as_materialized_series().str().map_err(|e| Failure::input(format!("{name}: {e}")))?;
        Ok((0..ca.len()).map(|i| ca.get(i).map(str::to_string)).collect())
    };
    let ts = col(ts_col)?;
    let raw = col(val_col)?;
    let mut values = Vec::with_capacity(raw.len());
    for (i, v) in raw.iter().enumerate() {
        let parsed = v.as_deref().and_then(|s| s.trim().parse::<f64>().ok()).filter(|x| x.is_finite());
        match parsed {
            Some(x) => values.push(x),
            None => {
                return Err(Failure::input(format!(
                    "{name}: line {}: {val_col} '{}' is not a finite number",
                    i + 2,
                    v.as_deref().unwrap_or("")
                )))
            }
        }
    }
    Ok((ts, raw, values))
}

/// Reads a saved detector file (see [`DetectorModel::load`]).
pub(crate) fn load_model(path: &std::path::Path) -> Result<DetectorModel, Failure> {
    DetectorModel::load(path).map_err(|e| Failure::input(e.to_string()))
}

fn patterns(a: PatternsArgs) -> CmdResult {
    use crate::detect::patterns::{service_patterns, PatternParams};
    let src = &a.source;
    let store = SqliteStore::open(&src.history)?;
    let w = super::read_window(&src.window, &Config::default(), &store, std::slice::from_ref(&src.service))?;
    let from = super::history_time_arg("from", &src.from)?;
    let to = super::history_time_arg("to", &src.to)?;
    let model = a.model.as_deref().map(load_model).transpose()?;
    if let Some(m) = &model {
        if m.level != Level::Window {
            return Err(Failure::input(format!(
                "{}: a trace-level model; patterns need a window-level one",
                a.model.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
            )));
        }
    }
    let forest = IsolationForestParams { contamination: Some(a.contamination), seed: a.seed, ..Default::default() };
    let sp = service_patterns(&store, &src.service, w, from, to, model.as_ref(), &forest, &PatternParams::default())
        .map_err(|e| Failure::input(format!("{}: {e}", src.history.display())))?;
    if a.format == EvalFormat::Json {
        return print(&(serde_json::to_string_pretty(&sp).expect("serializable") + "\n"));
    }
    let flagged = sp.scores.iter().filter(|s| s.2).count();
    let mut out = format!(
        "{flagged} of {} {} windows of '{}' flagged by {}\n",
        sp.scores.len(),
        crate::timefmt::format_duration(w),
        src.service,
        sp.detector
    );
    if sp.patterns.is_empty() {
        out += "no anomalous windows: no patterns\n";
    }
    for p in &sp.patterns {
        let first = p.windows.iter().copied().fold(f64::INFINITY, f64::min);
        let last = p.windows.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out += &format!(
            "\n{} {}\n  {} window(s), {} → {}; {} in incidents{}\n",
            if p.id == 0 { "Unclustered:".to_string() } else { format!("Pattern {}:", p.id) },
            p.description,
            p.windows.len(),
            crate::timefmt::format_time(first),
            crate::timefmt::format_time(last + w),
            p.in_incidents,
            if p.incidents.is_empty() { String::new() } else { format!(" ({})", p.incidents.join(", ")) }
        );
    }
    print(&out)
}

fn eval(a: EvalArgs) -> CmdResult {
    match (&a.nab, &a.history) {
        (Some(dir), _) => eval_nab(dir, a.seed, a.format),
        (None, Some(db)) => eval_history(db, &a),
        (None, None) => Err(Failure::input("give --history DB or --nab DIR")),
    }
}

fn eval_history(db: &std::path::Path, a: &EvalArgs) -> CmdResult {
    use crate::detect::evaluate::{evaluate_detectors, EvalParams};
    let store = SqliteStore::open(db)?;
    let w = super::read_window(&a.window, &Config::default(), &store, a.service.as_slice())?;
    let lead = super::duration_arg("lead", &a.lead, false)?;
    if !(a.validation > 0.0 && a.validation < 1.0) {
        return Err(Failure::input(format!("--validation {} must be between 0 and 1", a.validation)));
    }
    let services = match &a.service {
        Some(s) => vec![s.clone()],
        None => store.services()?,
    };
    let (mut windows, mut incidents) = (Vec::new(), Vec::new());
    for s in &services {
        windows.extend(store.windows(s, None, w, None, None)?);
        incidents.extend(store.incidents(Some(s))?);
    }
    if windows.is_empty() {
        return Err(Failure::input(format!(
            "no {} windows{} in {}: ingest with --window {} first, or pass the --window you ingested with",
            crate::timefmt::format_duration(w),
            a.service.as_deref().map(|s| format!(" for '{s}'")).unwrap_or_default(),
            db.display(),
            crate::timefmt::format_duration(w)
        )));
    }
    let mut p = EvalParams { validation: a.validation, lead_seconds: lead, ..EvalParams::default() };
    p.forest.contamination = Some(a.contamination);
    p.forest.seed = a.seed;
    p.supervised.seed = a.seed;
    let r = evaluate_detectors(&windows, &incidents, &p).map_err(|e| Failure::input(e.to_string()))?;
    if a.format == EvalFormat::Json {
        return print(&(serde_json::to_string_pretty(&r).expect("serializable") + "\n"));
    }
    let t = crate::timefmt::format_time;
    let mut out = format!(
        "Detectors against labeled incidents: {} ({} windows of {})\ntrain {} → {} ({} windows), validation → {} ({} windows)\n\n",
        r.services.join(", "),
        windows.len(),
        crate::timefmt::format_duration(w),
        t(r.range.0),
        t(r.split_at),
        r.train_windows,
        t(r.range.1),
        r.validation_windows
    );
    out += &format!(
        "{:<38} {:>9} {:>7} {:>6} {:>7} {:>9} {:>10} {:>9}\n",
        "validation", "precision", "recall", "F1", "AUC-PR", "incidents", "false/day", "train AP"
    );
    for d in &r.detectors {
        let v = &d.validation;
        match &d.skipped {
            Some(why) => out += &format!("{:<38} skipped: {why}\n", d.detector),
            None => {
                out += &format!(
                    "{:<38} {:>9.3} {:>7.3} {:>6.3} {:>7.3} {:>9} {:>10.1} {:>9.3}\n",
                    d.detector,
                    v.precision,
                    v.recall,
                    v.f1,
                    v.auc_pr,
                    format!("{}/{}", v.incidents_caught, v.incidents),
                    v.false_alarms_per_day,
                    d.train.auc_pr
                )
            }
        }
    }
    if !r.unscorable_incidents.is_empty() {
        out += &format!("\n{}\n", super::unscorable_note(&r.unscorable_incidents));
    }
    if let Some(base) = r.detectors.iter().find(|d| d.kind == "baseline") {
        let best = r
            .detectors
            .iter()
            .filter(|d| d.kind == "unsupervised")
            .max_by(|x, y| x.validation.auc_pr.total_cmp(&y.validation.auc_pr));
        if let Some(b) = best {
            out += &format!(
                "\nBest unsupervised window detector: {} — validation AUC-PR {:.3} vs {:.3} for the default PSS alarm ({}).\n",
                b.detector,
                b.validation.auc_pr,
                base.validation.auc_pr,
                if b.validation.auc_pr > base.validation.auc_pr { "better" } else { "not better" }
            );
        }
    }
    print(&out)
}

fn eval_nab(dir: &std::path::Path, seed: u64, format: EvalFormat) -> CmdResult {
    use crate::detect::nab::{per_series, score_corpus, Series, PROFILES};
    let a = NabDir { nab: dir.to_path_buf(), seed };
    let windows_path = a.nab.join("combined_windows.json");
    let windows: std::collections::BTreeMap<String, Vec<Vec<String>>> = serde_json::from_str(
        &std::fs::read_to_string(&windows_path)
            .map_err(|e| Failure::input(format!("{}: {e}", windows_path.display())))?,
    )
    .map_err(|e| Failure::input(format!("{}: {e}", windows_path.display())))?;
    let parse = |t: &str| chrono::NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%d %H:%M:%S%.f").ok();
    let p = SeriesParams { seed: a.seed, ..SeriesParams::default() };
    let mut corpus = Vec::new();
    for (rel, wins) in &windows {
        let file = a.nab.join("data").join(rel);
        if !file.is_file() {
            continue; // the labels cover NAB's full corpus; this folder may hold a subset
        }
        let (ts, _, values) = read_series(&file, "timestamp", "value")?;
        let times: Vec<Option<chrono::NaiveDateTime>> = ts.iter().map(|t| t.as_deref().and_then(parse)).collect();
        let mut idx = Vec::new();
        for w in wins {
            let (Some(s), Some(e)) = (w.first().and_then(|t| parse(t)), w.get(1).and_then(|t| parse(t))) else {
                return Err(Failure::input(format!("{}: {rel}: unreadable window {w:?}", windows_path.display())));
            };
            let first = times.iter().position(|t| t.is_some_and(|t| t >= s));
            let last = times.iter().rposition(|t| t.is_some_and(|t| t <= e));
            if let (Some(f), Some(l)) = (first, last) {
                if f <= l {
                    idx.push((f, l));
                }
            }
        }
        corpus.push(Series { name: rel.clone(), scores: score_series(&values, &p), windows: idx });
    }
    if corpus.is_empty() {
        return Err(Failure::input(format!(
            "{}: no series of combined_windows.json found under data/",
            a.nab.display()
        )));
    }
    let scores = score_corpus(&corpus);
    // Per series at the standard profile's corpus threshold, worst first.
    let mut rows = per_series(&corpus, scores[0].threshold, &PROFILES[0]);
    rows.sort_by(|a, b| a.raw.total_cmp(&b.raw).then_with(|| a.name.cmp(&b.name)));
    let windows = corpus.iter().map(|s| s.windows.len()).sum::<usize>();
    if format == EvalFormat::Json {
        let doc = serde_json::json!({
            "dir": a.nab.display().to_string(),
            "series": corpus.len(),
            "windows": windows,
            "seed": a.seed,
            "profiles": scores,
            "per_series": { "profile": PROFILES[0].name, "threshold": scores[0].threshold, "series": rows },
        });
        return print(&(serde_json::to_string_pretty(&doc).expect("serializable") + "\n"));
    }
    let mut out = format!(
        "NAB score of the streaming detector on {} series ({} windows) in {}\n\n{:<20} {:>10} {:>10}\n",
        corpus.len(),
        windows,
        a.nab.display(),
        "profile",
        "score",
        "threshold"
    );
    for s in &scores {
        out += &format!("{:<20} {:>10.1} {:>10.4}\n", s.profile, s.normalized, s.threshold);
    }
    out += "\n(0 = null detector, 100 = perfect; one threshold per profile over the corpus)\n";
    let w = rows.iter().map(|r| r.name.chars().count()).max().unwrap_or(6).max(6);
    out += &format!(
        "\nPer series at the standard threshold, worst first (raw = its share of the raw score; a missed window costs 1):\n{:<w$} {:>7} {:>8} {:>9} {:>13} {:>7}\n",
        "series", "rows", "windows", "detected", "false alarms", "raw"
    );
    for r in &rows {
        out += &format!(
            "{:<w$} {:>7} {:>8} {:>9} {:>13} {:>7.2}\n",
            r.name, r.rows, r.windows, r.detected, r.false_positives, r.raw
        );
    }
    print(&out)
}

fn series(a: SeriesArgs) -> CmdResult {
    let name = a.file.display().to_string();
    let (ts, raw, values) = read_series(&a.file, &a.timestamp_col, &a.value_col)?;
    let views = crate::detect::series::parse_views(&a.views).map_err(|e| Failure::input(format!("--views: {e}")))?;
    let p = SeriesParams { views, window: a.window, seed: a.seed, ..SeriesParams::default() };
    p.check().map_err(Failure::input)?;
    let scores = score_series(&values, &p);
    let out = std::fs::File::create(&a.output).map_err(|e| Failure::output(format!("{}: {e}", a.output.display())))?;
    let mut w = std::io::BufWriter::new(out);
    let err = |e: std::io::Error| Failure::input(format!("{}: {e}", a.output.display()));
    writeln!(w, "timestamp,value,anomaly_score").map_err(err)?;
    for ((t, v), s) in ts.iter().zip(&raw).zip(&scores) {
        let t = t.as_deref().unwrap_or("");
        let t =
            if t.contains(',') || t.contains('"') { format!("\"{}\"", t.replace('"', "\"\"")) } else { t.to_string() };
        writeln!(w, "{t},{},{s}", v.as_deref().unwrap_or("").trim()).map_err(err)?;
    }
    w.flush().map_err(err)?;
    let top = scores.iter().copied().fold(0.0, f64::max);
    print(&format!("scored {} points of {name} (max score {top:.3}) → {}\n", scores.len(), a.output.display()))
}

/// One scored item: when, what, score, label.
struct Scored {
    at: f64,
    what: String,
    score: f64,
    flagged: bool,
    incident: Option<String>,
}

fn train(a: TrainArgs) -> CmdResult {
    let started = crate::timefmt::now();
    let src = &a.source;
    let mut store = SqliteStore::open(&src.history)?;
    let from = super::history_time_arg("from", &src.from)?;
    let to = super::history_time_arg("to", &src.to)?;
    let params = IsolationForestParams {
        n_estimators: a.n_estimators,
        max_samples: a.max_samples,
        contamination: Some(a.contamination),
        extended: a.extended,
        seed: a.seed,
        bounded: false,
    };
    let (x, names, range, labels, window) = match a.level {
        Level::Window => {
            let w = super::read_window(&src.window, &Config::default(), &store, std::slice::from_ref(&src.service))?;
            let ws = store.windows(&src.service, None, w, from, to)?;
            let ws: Vec<_> = ws.into_iter().filter(|lw| !lw.window.too_small).collect();
            if ws.len() < 2 {
                return Err(Failure::input(format!(
                    "fewer than two scorable {w}s windows for '{}' in {}",
                    src.service,
                    src.history.display()
                )));
            }
            let refs: Vec<_> = ws.iter().map(|lw| &lw.window).collect();
            let range = (refs[0].start, refs[refs.len() - 1].start + w);
            let labels: Vec<bool> = ws.iter().map(|lw| lw.incident.is_some()).collect();
            (
                window_features(&refs),
                Features::NAMES.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                range,
                labels,
                Some(w),
            )
        }
        Level::Trace => {
            let rows = store.trace_rows(&src.service, from, to)?;
            if rows.len() < 2 {
                return Err(Failure::input(format!(
                    "fewer than two traces for '{}' in {}",
                    src.service,
                    src.history.display()
                )));
            }
            let incidents = store.incidents(Some(&src.service))?;
            let labels =
                rows.iter().map(|r| incidents.iter().any(|i| r.timestamp >= i.start && r.timestamp < i.end)).collect();
            let flat: Vec<f64> = rows.iter().flat_map(|r| r.features).collect();
            let x = ndarray::Array2::from_shape_vec((rows.len(), 4), flat).expect("shape");
            let range = (rows[0].timestamp, rows[rows.len() - 1].timestamp);
            (x, TRACE_FEATURES.iter().map(|s| s.to_string()).collect(), range, labels, None)
        }
    };
    let mut model = DetectorModel::train(&x, params, a.level, &src.service, window, names, range)
        .map_err(|e| Failure::input(e.to_string()))?;
    let scores = model.score(&x);
    if labels.iter().any(|&l| l) && labels.iter().any(|&l| !l) {
        let items: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
        model.metrics = serde_json::json!({
            "training_roc_auc": roc_auc(&scores, &labels),
            "training_average_precision": crate::eval::metrics::average_precision(&items),
            "labeled": labels.iter().filter(|&&l| l).count(),
        });
    }
    let level = match a.level {
        Level::Window => "window",
        Level::Trace => "trace",
    };
    let registry_kind = format!("{}-{level}", model.kind);
    let version = store.next_model_version(&src.service, &registry_kind)?;
    let out = a.output.clone().unwrap_or_else(|| {
        PathBuf::from("models").join(&src.service).join(format!("{}-{level}-v{version}.json", model.kind))
    });
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Failure::output(format!("{}: {e}", dir.display())))?;
    }
    let json = serde_json::to_string(&model).expect("serializable");
    std::fs::write(&out, json + "\n").map_err(|e| Failure::output(format!("{}: {e}", out.display())))?;
    let card = serde_json::json!({ "level": level, "rows": model.rows, "metrics": model.metrics, "seed": a.seed });
    let finished = crate::timefmt::now();
    store.register_model(&src.service, &registry_kind, &out.display().to_string(), &card, finished)?;
    store.record_run(&RunRecord {
        kind: "detect-train",
        started,
        finished,
        params: &serde_json::json!({ "service": src.service, "level": level, "kind": model.kind,
            "n_estimators": a.n_estimators, "max_samples": a.max_samples, "contamination": a.contamination,
            "seed": a.seed, "from": model.data_from, "to": model.data_to }),
        metrics: &serde_json::json!({ "rows": model.rows, "metrics": model.metrics,
            "model": out.display().to_string(), "version": version }),
    })?;
    let flagged = scores.iter().filter(|&&s| model.flag(s)).count();
    print(&format!(
        "trained {} ({level} level) on {} rows of '{}': {flagged} flagged at contamination {}{}\nmodel: {} (version {version})\n",
        model.kind,
        model.rows,
        src.service,
        a.contamination,
        match model.metrics.get("training_roc_auc") {
            Some(v) => format!("; ROC AUC against incidents {:.3}", v.as_f64().unwrap_or(0.0)),
            None => String::new(),
        },
        out.display()
    ))
}

fn score(a: ScoreArgs) -> CmdResult {
    let model = load_model(&a.model)?;
    let from = super::history_time_arg("from", &a.from)?;
    let to = super::history_time_arg("to", &a.to)?;
    let items: Vec<Scored> = match (model.level, &a.trace_file, &a.history) {
        (Level::Trace, Some(f), _) => {
            let keep = crate::trace::ColumnOptions { timestamps: true, names: true, memory_diff: true };
            let (cols, _) = crate::trace::read_all(&[crate::trace::Source::from_arg(f)], "unknown", keep)?;
            let x = trace_features(&cols);
            let s = model.score(&x);
            s.iter()
                .enumerate()
                .map(|(i, &sc)| Scored {
                    at: cols.timestamp[i],
                    what: format!("{}:{}", cols.modules.get(cols.module[i]), cols.names.get(cols.name[i])),
                    score: sc,
                    flagged: model.flag(sc),
                    incident: None,
                })
                .collect()
        }
        (Level::Trace, None, Some(h)) => {
            let store = SqliteStore::open(h)?;
            let rows = store.trace_rows(&model.service, from, to)?;
            let incidents = store.incidents(Some(&model.service))?;
            let flat: Vec<f64> = rows.iter().flat_map(|r| r.features).collect();
            let x = ndarray::Array2::from_shape_vec((rows.len(), 4), flat).expect("shape");
            let s = model.score(&x);
            rows.iter()
                .zip(s)
                .map(|(r, sc)| Scored {
                    at: r.timestamp,
                    what: format!("{}:{}", r.module, r.name),
                    score: sc,
                    flagged: model.flag(sc),
                    incident: incidents
                        .iter()
                        .find(|i| r.timestamp >= i.start && r.timestamp < i.end)
                        .map(|i| i.id.clone()),
                })
                .collect()
        }
        (Level::Window, _, Some(h)) => {
            let store = SqliteStore::open(h)?;
            let w = model.window_seconds.unwrap_or(60.0);
            let ws = store.windows(&model.service, None, w, from, to)?;
            let ws: Vec<_> = ws.into_iter().filter(|lw| !lw.window.too_small).collect();
            let refs: Vec<_> = ws.iter().map(|lw| &lw.window).collect();
            let s = model.score(&window_features(&refs));
            ws.iter()
                .zip(s)
                .map(|(lw, sc)| Scored {
                    at: lw.window.start,
                    what: format!("{} window", crate::timefmt::format_duration(w)),
                    score: sc,
                    flagged: model.flag(sc),
                    incident: lw.incident.clone(),
                })
                .collect()
        }
        (Level::Window, _, None) => {
            return Err(Failure::input("a window-level model scores --history DB (windows are in the history)"))
        }
        (Level::Trace, None, None) => return Err(Failure::input("give --trace-file FILE or --history DB")),
    };
    match a.format {
        ScoreFormat::Json => {
            let v: Vec<serde_json::Value> = items
                .iter()
                .map(|i| serde_json::json!({"at": i.at, "what": i.what, "score": i.score, "flagged": i.flagged, "incident": i.incident}))
                .collect();
            print(&(serde_json::to_string_pretty(&v).expect("serializable") + "\n"))
        }
        ScoreFormat::Csv => {
            let mut out = String::from("at,what,score,flagged,incident\n");
            for i in &items {
                out += &format!(
                    "{},{},{},{},{}\n",
                    i.at,
                    i.what.replace(',', ";"),
                    i.score,
                    i.flagged,
                    i.incident.as_deref().unwrap_or("")
                );
            }
            print(&out)
        }
        ScoreFormat::Text => {
            let flagged = items.iter().filter(|i| i.flagged).count();
            let mut out =
                format!("{} scored, {flagged} flagged by {} ({})\n\n", items.len(), a.model.display(), model.kind);
            out += &format!("{:<21} {:>7}  {:<7} {:<12} {}\n", "AT", "SCORE", "FLAGGED", "INCIDENT", "WHAT");
            let mut order: Vec<&Scored> = items.iter().collect();
            order.sort_by(|x, y| y.score.total_cmp(&x.score));
            for i in order.iter().take(a.top) {
                out += &format!(
                    "{:<21} {:>7.3}  {:<7} {:<12} {}\n",
                    if i.at.is_finite() { crate::timefmt::format_time(i.at) } else { "-".into() },
                    i.score,
                    if i.flagged { "yes" } else { "" },
                    i.incident.as_deref().unwrap_or(""),
                    i.what
                );
            }
            print(&out)
        }
    }
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

/// `pss ml-detect`: pypss's command (an isolation forest on pypss's four
/// standardized trace features), with pypss's output lines.
pub fn ml_detect(a: MlDetectArgs) -> CmdResult {
    let keep = crate::trace::ColumnOptions { timestamps: false, names: true, memory_diff: true };
    let load = |f: &str| crate::trace::read_all(&[crate::trace::Source::from_arg(f)], "unknown", keep);
    let mut out = format!("📊 Loading baseline traces from {}...\n", a.baseline_file);
    let (base, _) = load(&a.baseline_file)?;
    if base.stage.is_empty() {
        print(&out)?;
        return Err(Failure::check("⚠️  No traces found in baseline file. Cannot train ML model."));
    }
    out += &format!("   Loaded {} baseline traces.\n", base.len());
    out += "🔍 Initializing and fitting PatternDetector model...\n";
    let params = IsolationForestParams {
        n_estimators: 100,
        max_samples: 256,
        contamination: Some(a.contamination),
        extended: false,
        seed: a.random_state,
        bounded: false,
    };
    let model = DetectorModel::train(
        &trace_features(&base),
        params,
        Level::Trace,
        "baseline",
        None,
        TRACE_FEATURES.iter().map(|s| s.to_string()).collect(),
        (0.0, 0.0),
    )
    .map_err(|e| Failure::check(format!("Error fitting ML model: {e}")))?;
    out += "   Model fitted successfully to baseline traces.\n";
    out += &format!("\n🔬 Loading target traces from {} for anomaly detection...\n", a.target_file);
    let (target, _) = load(&a.target_file)?;
    if target.stage.is_empty() {
        out += "⚠️  No traces found in target file. Nothing to analyze.\n";
        return print(&out);
    }
    out += &format!("   Loaded {} target traces.\n", target.len());
    out += "\n🔎 Predicting anomalies...\n";
    let scores = model.score(&trace_features(&target));
    let t = model.forest.threshold.unwrap_or(0.5);
    let mut any = false;
    for (i, s) in scores.iter().enumerate() {
        if *s >= t {
            any = true;
            // pypss prints -decision_function: the score above the threshold.
            out += &format!("  ❌ Anomaly detected in '{}' (Score: {:.2})\n", target.names.get(target.name[i]), s - t);
        }
    }
    if any {
        out += "\nSummary: Anomalies were detected.\n";
    } else {
        out += "✅ No significant anomalies detected in target traces.\n";
    }
    print(&out)
}
