//! Detector training and scoring as library calls: `pss detect train`,
//! `pss detect score`, a scheduler or `pss serve` call [`train`] and
//! [`score`] and render what they return.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use serde::Serialize;

use super::iforest::{roc_auc, ForestError, IsolationForestParams};
use super::model::{trace_features, window_features, DetectorModel, DetectorParams, Level, TRACE_FEATURES};
use super::Fit;
use crate::domain::{Features, Incident};
use crate::store::{RunRecord, Store, StoreError, TraceRow};
use crate::trace::TraceColumns;

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainJob {
    pub service: String,
    pub level: Level,
    /// Window length (window level).
    pub window_seconds: f64,
    /// Only data in `[from, to)`.
    pub from: Option<f64>,
    pub to: Option<f64>,
    pub params: IsolationForestParams,
    /// Where to save (default `models/<service>/<kind>-<level>-v<N>.json`).
    pub output: Option<PathBuf>,
}

/// A trained, saved and registered detector.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub model: DetectorModel,
    pub path: PathBuf,
    pub version: i64,
    /// Training rows the model flags.
    pub flagged: usize,
}

/// Why training or scoring failed.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Forest(#[from] ForestError),
    /// An output could not be written.
    #[error("{path}: {source}")]
    Output {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The name of a level in file names and the registry.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Window => "window",
        Level::Trace => "trace",
    }
}

/// A feature matrix with its column names, time range and incident labels.
struct Training {
    x: Array2<f64>,
    names: Vec<String>,
    range: (f64, f64),
    labels: Vec<bool>,
    window: Option<f64>,
}

/// Stored trace rows as pypss's four features.
fn trace_matrix(rows: &[TraceRow]) -> Array2<f64> {
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.features).collect();
    Array2::from_shape_vec((rows.len(), TRACE_FEATURES.len()), flat).expect("four features a row")
}

/// The incident a time falls in.
fn incident_at(incidents: &[Incident], t: f64) -> Option<&Incident> {
    incidents.iter().find(|i| t >= i.start && t < i.end)
}

fn training_data(store: &dyn Store, job: &TrainJob) -> Result<Training, DetectError> {
    let (svc, w) = (&job.service, job.window_seconds);
    match job.level {
        Level::Window => {
            let ws = store.windows(svc, None, w, job.from, job.to)?;
            let ws: Vec<_> = ws.into_iter().filter(|lw| !lw.window.too_small).collect();
            if ws.len() < 2 {
                return Err(DetectError::Data(format!(
                    "fewer than two scorable {w}s windows for '{svc}' in {}",
                    store.location()
                )));
            }
            let refs: Vec<_> = ws.iter().map(|lw| &lw.window).collect();
            Ok(Training {
                x: window_features(&refs),
                names: Features::NAMES.iter().map(|s| s.to_string()).collect(),
                range: (refs[0].start, refs[refs.len() - 1].start + w),
                labels: ws.iter().map(|lw| lw.incident.is_some()).collect(),
                window: Some(w),
            })
        }
        Level::Trace => {
            let rows = store.trace_rows(svc, job.from, job.to)?;
            if rows.len() < 2 {
                return Err(DetectError::Data(format!("fewer than two traces for '{svc}' in {}", store.location())));
            }
            let incidents = store.incidents(Some(svc))?;
            Ok(Training {
                x: trace_matrix(&rows),
                names: TRACE_FEATURES.iter().map(|s| s.to_string()).collect(),
                range: (rows[0].timestamp, rows[rows.len() - 1].timestamp),
                labels: rows.iter().map(|r| incident_at(&incidents, r.timestamp).is_some()).collect(),
                window: None,
            })
        }
    }
}

/// Trains a detector on a service's history, saves it, registers it as a
/// new version and records the run. `now` is the clock.
pub fn train(store: &mut dyn Store, job: &TrainJob, now: &dyn Fn() -> f64) -> Result<TrainOutcome, DetectError> {
    let started = now();
    let t = training_data(store, job)?;
    let params = DetectorParams {
        forest: job.params.clone(),
        level: job.level,
        service: job.service.clone(),
        window_seconds: t.window,
        features: t.names,
        range: t.range,
    };
    let mut model = params.check()?.fit(&t.x)?;
    let scores = model.score(&t.x);
    if t.labels.iter().any(|&l| l) && t.labels.iter().any(|&l| !l) {
        let items: Vec<(f64, bool)> = scores.iter().copied().zip(t.labels.iter().copied()).collect();
        model.metrics = serde_json::json!({
            "training_roc_auc": roc_auc(&scores, &t.labels),
            "training_average_precision": crate::eval::metrics::average_precision(&items),
            "labeled": t.labels.iter().filter(|&&l| l).count(),
        });
    }
    let level = level_name(job.level);
    let registry_kind = format!("{}-{level}", model.kind);
    let version = store.next_model_version(&job.service, &registry_kind)?;
    let out = job.output.clone().unwrap_or_else(|| {
        PathBuf::from("models").join(&job.service).join(format!("{}-{level}-v{version}.json", model.kind))
    });
    let output = |p: &Path| {
        let path = p.display().to_string();
        move |source| DetectError::Output { path, source }
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(output(dir))?;
    }
    let json = serde_json::to_string(&model).expect("a model serializes");
    std::fs::write(&out, json + "\n").map_err(output(&out))?;
    let p = &job.params;
    let card = serde_json::json!({ "level": level, "rows": model.rows, "metrics": model.metrics, "seed": p.seed });
    let finished = now();
    store.register_model(&job.service, &registry_kind, &out.display().to_string(), &card, finished)?;
    store.record_run(&RunRecord {
        kind: "detect-train",
        started,
        finished,
        params: &serde_json::json!({ "service": job.service, "level": level, "kind": model.kind,
            "n_estimators": p.n_estimators, "max_samples": p.max_samples, "contamination": p.contamination,
            "seed": p.seed, "from": model.data_from, "to": model.data_to }),
        metrics: &serde_json::json!({ "rows": model.rows, "metrics": model.metrics,
            "model": out.display().to_string(), "version": version }),
    })?;
    let flagged = scores.iter().filter(|&&s| model.flag(s)).count();
    Ok(TrainOutcome { model, path: out, version, flagged })
}

/// One scored trace or window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    /// Epoch seconds (NaN for a trace without a timestamp).
    pub at: f64,
    /// `module:function`, or the window length.
    pub what: String,
    pub score: f64,
    pub flagged: bool,
    /// The labeled incident it falls in.
    pub incident: Option<String>,
}

/// What a saved detector scores.
pub enum ScoreInput<'a> {
    /// Traces read from files (trace-level models).
    Traces(&'a TraceColumns),
    /// The model's service in a history, in `[from, to)`.
    History { store: &'a dyn Store, from: Option<f64>, to: Option<f64> },
}

/// Scores traces or windows with a saved detector, in input order.
pub fn score(model: &DetectorModel, input: ScoreInput<'_>) -> Result<Vec<Scored>, DetectError> {
    let item = |at: f64, what: String, score: f64, incident: Option<String>| Scored {
        at,
        what,
        score,
        flagged: model.flag(score),
        incident,
    };
    Ok(match (model.level, input) {
        (Level::Trace, ScoreInput::Traces(cols)) => {
            let s = model.score(&trace_features(cols));
            let what = |i: usize| format!("{}:{}", cols.modules.get(cols.module[i]), cols.names.get(cols.name[i]));
            s.iter().enumerate().map(|(i, &sc)| item(cols.timestamp[i], what(i), sc, None)).collect()
        }
        (Level::Trace, ScoreInput::History { store, from, to }) => {
            let rows = store.trace_rows(&model.service, from, to)?;
            let incidents = store.incidents(Some(&model.service))?;
            let s = model.score(&trace_matrix(&rows));
            rows.iter()
                .zip(s)
                .map(|(r, sc)| {
                    let inc = incident_at(&incidents, r.timestamp).map(|i| i.id.clone());
                    item(r.timestamp, format!("{}:{}", r.module, r.name), sc, inc)
                })
                .collect()
        }
        (Level::Window, ScoreInput::History { store, from, to }) => {
            let w = model.window_seconds.unwrap_or(60.0);
            let ws = store.windows(&model.service, None, w, from, to)?;
            let ws: Vec<_> = ws.into_iter().filter(|lw| !lw.window.too_small).collect();
            let refs: Vec<_> = ws.iter().map(|lw| &lw.window).collect();
            let s = model.score(&window_features(&refs));
            let what = format!("{} window", crate::timefmt::format_duration(w));
            ws.iter().zip(s).map(|(lw, sc)| item(lw.window.start, what.clone(), sc, lw.incident.clone())).collect()
        }
        (Level::Window, ScoreInput::Traces(_)) => {
            return Err(DetectError::Data(
                "a window-level model scores --history DB (windows are in the history)".into(),
            ))
        }
    })
}
