//! A trained detector as it is saved: the feature names, the scaler fitted on
//! the training data, the forest, the training data range and metrics, in a
//! versioned JSON file. Reloading gives identical scores.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::iforest::{ForestError, IsolationForest, IsolationForestParams};
use crate::domain::{Features, Window};
use crate::trace::TraceColumns;

/// Why a saved detector could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a pss detector file: {source}")]
    Format {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: written by a newer pss (schema {found}); upgrade pss")]
    Newer { path: String, found: u32 },
}

/// Schema version of saved detector files.
pub const MODEL_SCHEMA_VERSION: u32 = 1;

/// What a detector scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Single traces: pypss's four features (duration, memory_diff, wait_time, error).
    Trace,
    /// Windows: the stored window features.
    Window,
}

/// Standardization fitted on training data (scikit-learn's StandardScaler:
/// population standard deviation, 1 where it is 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Scaler {
    /// Fits on the rows of `x`.
    pub fn fit(x: &Array2<f64>) -> Scaler {
        let n = x.nrows().max(1) as f64;
        let mut mean = Vec::new();
        let mut scale = Vec::new();
        for col in x.columns() {
            let m = col.sum() / n;
            let v = col.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / n;
            mean.push(m);
            scale.push(if v > 0.0 { v.sqrt() } else { 1.0 });
        }
        Scaler { mean, scale }
    }

    /// Standardizes rows.
    pub fn transform(&self, x: &Array2<f64>) -> Array2<f64> {
        let mut y = x.clone();
        for (k, mut col) in y.columns_mut().into_iter().enumerate() {
            col.mapv_inplace(|a| (a - self.mean[k]) / self.scale[k]);
        }
        y
    }
}

/// A saved detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorModel {
    pub schema_version: u32,
    pub pss_version: String,
    pub kind: String,
    pub level: Level,
    pub service: String,
    pub window_seconds: Option<f64>,
    pub features: Vec<String>,
    pub scaler: Scaler,
    pub forest: IsolationForest,
    /// Training data: (from, to) epoch seconds and rows.
    pub data_from: f64,
    pub data_to: f64,
    pub rows: usize,
    /// Metrics on the training data against incident labels, when there are any.
    pub metrics: serde_json::Value,
    /// The training rows' scores at quantiles 0, 0.001, …, 1 (1,001 points;
    /// empty in files written before pss 0.14): an alarm policy's threshold
    /// is a quantile of these, so it carries over when the model is retrained.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub score_quantiles: Vec<f64>,
}

/// The `q` quantile (0–1) of sorted values, linearly interpolated between
/// order statistics (numpy's default); `None` when empty or `q` is outside.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

/// The quantile grid of [`DetectorModel::score_quantiles`].
const QUANTILE_STEPS: usize = 1000;

/// pypss's trace features of the complete rows of `c`, in order.
pub fn trace_features(c: &TraceColumns) -> Array2<f64> {
    let n = c.len();
    let mut v = Vec::with_capacity(n * 4);
    for i in 0..n {
        let md = c.memory_diff.get(i).copied().unwrap_or(0.0);
        v.extend([c.duration[i], md, c.wait_time[i], if c.error[i] { 1.0 } else { 0.0 }]);
    }
    Array2::from_shape_vec((n, 4), v).expect("shape")
}

/// Names of the trace features.
pub const TRACE_FEATURES: [&str; 4] = ["duration", "memory_diff", "wait_time", "error"];

/// The window features the detector uses (all stored features).
pub fn window_features(ws: &[&Window]) -> Array2<f64> {
    let mut v = Vec::with_capacity(ws.len() * Features::NAMES.len());
    for w in ws {
        v.extend(w.features.values());
    }
    Array2::from_shape_vec((ws.len(), Features::NAMES.len()), v).expect("shape")
}

/// What a saved detector is: its forest's hyperparameters and what it
/// describes (level, service, window length, feature names, data range).
#[derive(Debug, Clone)]
pub struct DetectorParams {
    pub forest: IsolationForestParams,
    pub level: Level,
    pub service: String,
    pub window_seconds: Option<f64>,
    pub features: Vec<String>,
    /// The time range of the training data, epoch seconds.
    pub range: (f64, f64),
}

impl DetectorParams {
    /// A trace-level detector on pypss's four features (no service history).
    pub fn traces(forest: IsolationForestParams, service: &str) -> DetectorParams {
        DetectorParams {
            forest,
            level: Level::Trace,
            service: service.into(),
            window_seconds: None,
            features: TRACE_FEATURES.iter().map(|s| s.to_string()).collect(),
            range: (0.0, 0.0),
        }
    }

    /// Validates the forest's hyperparameters.
    pub fn check(self) -> Result<CheckedDetectorParams, ForestError> {
        let forest = self.forest.clone().check()?;
        Ok(CheckedDetectorParams { params: self, forest })
    }
}

/// [`DetectorParams`] that passed [`DetectorParams::check`].
#[derive(Debug, Clone)]
pub struct CheckedDetectorParams {
    params: DetectorParams,
    forest: super::iforest::CheckedParams,
}

impl super::Fit<Array2<f64>> for CheckedDetectorParams {
    type Model = DetectorModel;
    type Error = ForestError;

    /// Standardizes `x` (raw features), fits the forest, and wraps both.
    fn fit(&self, x: &Array2<f64>) -> Result<DetectorModel, ForestError> {
        let p = &self.params;
        let scaler = Scaler::fit(x);
        let z = scaler.transform(x);
        let forest = self.forest.fit(&z.view())?;
        let mut scores = forest.score(&z.view());
        scores.sort_by(f64::total_cmp);
        let score_quantiles: Vec<f64> = if scores.is_empty() {
            Vec::new()
        } else {
            (0..=QUANTILE_STEPS).filter_map(|i| quantile(&scores, i as f64 / QUANTILE_STEPS as f64)).collect()
        };
        Ok(DetectorModel {
            schema_version: MODEL_SCHEMA_VERSION,
            pss_version: env!("CARGO_PKG_VERSION").into(),
            kind: if p.forest.extended { "extended-isolation-forest" } else { "isolation-forest" }.into(),
            level: p.level,
            service: p.service.clone(),
            window_seconds: p.window_seconds,
            features: p.features.clone(),
            scaler,
            forest,
            data_from: p.range.0,
            data_to: p.range.1,
            rows: x.nrows(),
            metrics: serde_json::Value::Null,
            score_quantiles,
        })
    }
}

impl DetectorModel {
    /// Scores raw feature rows.
    pub fn score(&self, x: &Array2<f64>) -> Vec<f64> {
        self.forest.score(&self.scaler.transform(x).view())
    }

    /// The training rows' score at quantile `q` (0–1), linearly interpolated
    /// on the stored grid; `None` for a model file without one.
    pub fn score_at_quantile(&self, q: f64) -> Option<f64> {
        if self.score_quantiles.len() < 2 {
            return None;
        }
        quantile(&self.score_quantiles, q)
    }

    /// Flags from the contamination threshold (when trained with one).
    pub fn flag(&self, s: f64) -> bool {
        self.forest.threshold.is_some_and(|t| s >= t)
    }
}

impl DetectorModel {
    /// Reads a saved detector file, refusing newer schemas.
    pub fn load(path: &std::path::Path) -> Result<DetectorModel, ModelFileError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ModelFileError::Io { path: name.clone(), source: e })?;
        let model: DetectorModel =
            serde_json::from_str(&text).map_err(|e| ModelFileError::Format { path: name.clone(), source: e })?;
        if model.schema_version > MODEL_SCHEMA_VERSION {
            return Err(ModelFileError::Newer { path: name, found: model.schema_version });
        }
        Ok(model)
    }
}
