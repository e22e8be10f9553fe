//! Detectors against labeled incidents: the default-config PSS alarm (the
//! baseline every detector must beat), isolation forests (standard and
//! extended) trained per service on window features, and a supervised random
//! forest, all on one time-ordered train/validation split of the windows, with
//! the same metrics the tuner reports.

use serde::Serialize;

use super::iforest::{ForestError, IsolationForestParams};
use super::model::{window_features, DetectorModel, DetectorParams, Level};
use super::supervised::{LabeledRows, RandomForestParams, SupervisedError};
use super::Fit;
use crate::config::{AlertParams, ScoreParams};
use crate::domain::Features;
use crate::domain::{Incident, LabeledWindow};
use crate::eval::metrics::{Judged, Metrics};
use crate::eval::{evaluate_windows, judge, time_split};

/// How to evaluate.
#[derive(Debug, Clone)]
pub struct EvalParams {
    /// Share of the time range held out for validation (the latest part).
    pub validation: f64,
    /// Seconds before an incident's start that count as catching it.
    pub lead_seconds: f64,
    /// The unsupervised detectors (`extended` is set per detector).
    pub forest: IsolationForestParams,
    pub supervised: RandomForestParams,
}

impl Default for EvalParams {
    fn default() -> Self {
        EvalParams {
            validation: 0.3,
            lead_seconds: 600.0,
            forest: IsolationForestParams { contamination: Some(0.05), ..IsolationForestParams::default() },
            supervised: RandomForestParams::default(),
        }
    }
}

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Forest(#[from] ForestError),
}

/// One detector's metrics on both parts of the split.
#[derive(Debug, Clone, Serialize)]
pub struct DetectorEval {
    pub detector: String,
    /// `baseline`, `unsupervised` or `supervised`.
    pub kind: &'static str,
    pub train: Metrics,
    pub validation: Metrics,
    /// Why a detector could not be evaluated (then its metrics are zero).
    pub skipped: Option<String>,
}

/// Every detector's metrics and the split they were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub range: (f64, f64),
    pub split_at: f64,
    pub train_windows: usize,
    pub validation_windows: usize,
    pub services: Vec<String>,
    pub detectors: Vec<DetectorEval>,
    /// Incidents in the range that no scorable window overlaps (left out of
    /// every detector's incident counts: no alarm could catch them).
    pub unscorable_incidents: Vec<String>,
}

/// Windows too small to score are kept (they count in the range) but never
/// alarm nor enter the metrics, as in tuning.
fn judged(ws: &[&LabeledWindow], scores: &[f64], threshold: f64) -> Vec<Judged> {
    ws.iter()
        .zip(scores)
        .map(|(lw, &s)| Judged {
            start: lw.window.start,
            seconds: lw.window.seconds,
            alarm: !lw.window.too_small && s >= threshold,
            labeled: lw.incident.is_some(),
            skip: lw.window.too_small,
            score: s,
        })
        .collect()
}

fn refs<'a>(ws: &[&'a LabeledWindow]) -> Vec<&'a crate::domain::Window> {
    ws.iter().map(|lw| &lw.window).collect()
}

/// Training scores, validation scores, and the per-service models.
/// Window scores of a per-service forest, and the models.
#[derive(Debug, Clone)]
pub struct ForestScores {
    /// Scores of the training windows, in their order.
    pub train: Vec<f64>,
    /// Scores of the validation windows, in their order.
    pub val: Vec<f64>,
    /// One model per service that had at least two scorable training windows.
    pub models: Vec<DetectorModel>,
}

/// Trains an isolation forest per service on its training windows; returns
/// the scores of `train` and `val` (in their order) and each service's model
/// (services with fewer than two scorable training windows get none, and
/// score 0).
pub fn forest_scores(
    train: &[&LabeledWindow],
    val: &[&LabeledWindow],
    params: &IsolationForestParams,
) -> Result<ForestScores, EvalError> {
    let mut ts = vec![0.0; train.len()];
    let mut vs = vec![0.0; val.len()];
    let mut thresholds = Vec::new();
    let mut services: Vec<&str> = train.iter().map(|w| w.window.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    for s in services {
        let ti: Vec<usize> =
            (0..train.len()).filter(|&k| train[k].window.service == s && !train[k].window.too_small).collect();
        if ti.len() < 2 {
            continue;
        }
        let tw: Vec<&LabeledWindow> = ti.iter().map(|&k| train[k]).collect();
        let range = (tw[0].window.start, tw[tw.len() - 1].window.start + tw[0].window.seconds);
        let model = DetectorParams {
            forest: params.clone(),
            level: Level::Window,
            service: s.into(),
            window_seconds: Some(tw[0].window.seconds),
            features: Features::NAMES.iter().map(|n| n.to_string()).collect(),
            range,
        }
        .check()?
        .fit(&window_features(&refs(&tw)))?;
        let all_t: Vec<usize> = (0..train.len()).filter(|&k| train[k].window.service == s).collect();
        let sc = model.score(&window_features(&refs(&all_t.iter().map(|&k| train[k]).collect::<Vec<_>>())));
        for (k, v) in all_t.iter().zip(sc) {
            ts[*k] = v;
        }
        let vi: Vec<usize> = (0..val.len()).filter(|&k| val[k].window.service == s).collect();
        if !vi.is_empty() {
            let sc = model.score(&window_features(&refs(&vi.iter().map(|&k| val[k]).collect::<Vec<_>>())));
            for (k, v) in vi.iter().zip(sc) {
                vs[*k] = v;
            }
        }
        thresholds.push(model);
    }
    Ok(ForestScores { train: ts, val: vs, models: thresholds })
}

/// Validation AUC-PR of a window model on one service's windows (scorable
/// ones; the label is overlap with an incident).
pub fn window_average_precision(model: &DetectorModel, ws: &[&LabeledWindow]) -> f64 {
    let ws: Vec<&LabeledWindow> = ws.iter().copied().filter(|w| !w.window.too_small).collect();
    if ws.is_empty() {
        return 0.0;
    }
    let s = model.score(&window_features(&refs(&ws)));
    let items: Vec<(f64, bool)> = s.into_iter().zip(ws.iter().map(|w| w.incident.is_some())).collect();
    crate::eval::metrics::average_precision(&items)
}

/// Scales window features per service (standardized on that service's
/// training windows) so one supervised model can learn across services.
fn scaled_by_service(train: &[&LabeledWindow], sets: &[&[&LabeledWindow]]) -> Vec<ndarray::Array2<f64>> {
    let mut out: Vec<ndarray::Array2<f64>> =
        sets.iter().map(|ws| ndarray::Array2::zeros((ws.len(), Features::NAMES.len()))).collect();
    let mut services: Vec<&str> = train.iter().map(|w| w.window.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    for s in services {
        let tw: Vec<&LabeledWindow> = train.iter().copied().filter(|w| w.window.service == s).collect();
        let scaler = super::model::Scaler::fit(&window_features(&refs(&tw)));
        for (set, o) in sets.iter().zip(out.iter_mut()) {
            let idx: Vec<usize> = (0..set.len()).filter(|&k| set[k].window.service == s).collect();
            let z = scaler.transform(&window_features(&refs(&idx.iter().map(|&k| set[k]).collect::<Vec<_>>())));
            for (r, &k) in idx.iter().enumerate() {
                o.row_mut(k).assign(&z.row(r));
            }
        }
    }
    out
}

/// Evaluates every detector on `windows` (any number of services, one window
/// length) against `incidents`.
pub fn evaluate_detectors(
    windows: &[LabeledWindow],
    incidents: &[Incident],
    p: &EvalParams,
) -> Result<EvalReport, EvalError> {
    let Some(split) = time_split(windows, p.validation) else {
        return Err(EvalError::Data("no windows to evaluate: ingest traces first (pss ingest)".into()));
    };
    let (train, val) = (&split.train, &split.val);
    if val.is_empty() || train.is_empty() {
        return Err(EvalError::Data("too few windows for a train/validation split".into()));
    }
    let lead = p.lead_seconds;
    let metrics = |ws: &[&LabeledWindow], j: &[Judged]| evaluate_windows(ws, j, incidents, lead);
    let mut services: Vec<String> = windows.iter().map(|w| w.window.service.clone()).collect();
    services.sort_unstable();
    services.dedup();
    let mut out = Vec::new();

    let (score, alert) = (ScoreParams::default(), AlertParams::default());
    out.push(DetectorEval {
        detector: "pss-alarm (default config)".into(),
        kind: "baseline",
        train: metrics(train, &judge(train, &score, &alert)),
        validation: metrics(val, &judge(val, &score, &alert)),
        skipped: None,
    });

    for extended in [false, true] {
        let fp = IsolationForestParams { extended, ..p.forest.clone() };
        let ForestScores { train: ts, val: vs, models } = forest_scores(train, val, &fp)?;
        // Each service's model flags above its own contamination threshold:
        // turn that into one flag per window.
        let flag = |ws: &[&LabeledWindow], s: &[f64]| -> Vec<Judged> {
            let mut j = judged(ws, s, f64::INFINITY);
            for (k, lw) in ws.iter().enumerate() {
                if let Some(m) = models.iter().find(|m| m.service == lw.window.service) {
                    j[k].alarm = !lw.window.too_small && m.flag(s[k]);
                }
            }
            j
        };
        out.push(DetectorEval {
            detector: format!("{} (window)", if extended { "extended-isolation-forest" } else { "isolation-forest" }),
            kind: "unsupervised",
            train: metrics(train, &flag(train, &ts)),
            validation: metrics(val, &flag(val, &vs)),
            skipped: None,
        });
    }

    let name = "random-forest (window, supervised)".to_string();
    let usable: Vec<&LabeledWindow> = train.iter().copied().filter(|w| !w.window.too_small).collect();
    let y: Vec<bool> = usable.iter().map(|w| w.incident.is_some()).collect();
    let x = scaled_by_service(train, &[&usable, train, val]);
    let fitted = p.supervised.clone().check().and_then(|c| c.fit(&LabeledRows { x: &x[0], y: &y }));
    match fitted.and_then(|f| Ok((f.predict_proba(&x[1])?, f.predict_proba(&x[2])?))) {
        Ok((ts, vs)) => out.push(DetectorEval {
            detector: name,
            kind: "supervised",
            train: metrics(train, &judged(train, &ts, 0.5)),
            validation: metrics(val, &judged(val, &vs, 0.5)),
            skipped: None,
        }),
        Err(e @ (SupervisedError::OneClass { .. } | SupervisedError::Param(_) | SupervisedError::Tree(_))) => {
            out.push(DetectorEval {
                detector: name,
                kind: "supervised",
                train: Metrics::default(),
                validation: Metrics::default(),
                skipped: Some(e.to_string()),
            })
        }
    }
    Ok(EvalReport {
        range: split.range,
        split_at: split.split_at,
        train_windows: train.len(),
        validation_windows: val.len(),
        services,
        detectors: out,
        unscorable_incidents: crate::eval::unscorable(&windows.iter().collect::<Vec<_>>(), incidents, lead)
            .into_iter()
            .map(|i| i.id)
            .collect(),
    })
}
