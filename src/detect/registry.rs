//! The nightly window-detector retraining: each service's extended isolation
//! forest is trained on the training part of the time split, compared with
//! the active one on the validation part, registered as a new version, and
//! promoted (copied to `<dir>/<service>/window-detector.json`) only when it
//! is better.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::evaluate::{forest_scores, window_average_precision};
use super::model::DetectorModel;
use super::IsolationForestParams;
use crate::domain::LabeledWindow;
use crate::eval::Split;
use crate::store::{RunRecord, Store, StoreError};

/// Kind under which window detectors are registered in the models table.
pub const WINDOW_DETECTOR_KIND: &str = "extended-isolation-forest-window";

/// One service's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectorOutcome {
    pub service: String,
    /// The new version's file.
    pub path: PathBuf,
    /// Validation AUC-PR of the new model.
    pub new_ap: f64,
    /// Validation AUC-PR of the active model, when there is a readable one.
    pub active_ap: Option<f64>,
    pub promoted: bool,
}

/// Why retraining failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Train(#[from] super::evaluate::EvalError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io { path: path.display().to_string(), source }
}

/// A service's active (promoted) window detector.
#[derive(Debug)]
pub struct ActiveDetector {
    /// The path the registry holds.
    pub path: String,
    /// The model read from it, or why it could not be read.
    pub model: Result<DetectorModel, super::model::ModelFileError>,
}

/// The service's active window detector, when one is registered.
pub fn active_window_detector(store: &dyn Store, service: &str) -> Result<Option<ActiveDetector>, StoreError> {
    Ok(store.active_model(service, WINDOW_DETECTOR_KIND)?.map(|m| {
        let model = DetectorModel::load(Path::new(&m.path));
        ActiveDetector { path: m.path, model }
    }))
}

/// The window detectors' hyperparameters: the nightly retraining and the
/// alarm policy's choice fit the same forest.
pub fn window_detector_params(seed: u64) -> IsolationForestParams {
    IsolationForestParams { extended: true, contamination: Some(0.05), seed, ..Default::default() }
}

/// Fits each service's window detector on `train` (`val` scored for the record).
pub fn fit_window_detectors(
    train: &[&LabeledWindow],
    val: &[&LabeledWindow],
    seed: u64,
) -> Result<Vec<DetectorModel>, RegistryError> {
    Ok(forest_scores(train, val, &window_detector_params(seed))?.models)
}

/// Retrains, registers and (when better) promotes each service's window
/// detector; `now` gives the clock (run and registration times).
pub fn retrain_window_detectors(
    store: &mut dyn Store,
    split: &Split<'_>,
    services: &[String],
    seed: u64,
    dir: &Path,
    now: &dyn Fn() -> f64,
) -> Result<Vec<DetectorOutcome>, RegistryError> {
    let models = fit_window_detectors(&split.train, &split.val, seed)?;
    register_window_detectors(store, split, &models, services, seed, dir, now)
}

/// Registers `models` (fit on `split.train` by [`fit_window_detectors`]),
/// comparing each with the active one on `split.val` and promoting it
/// when better.
pub fn register_window_detectors(
    store: &mut dyn Store,
    split: &Split<'_>,
    models: &[DetectorModel],
    services: &[String],
    seed: u64,
    dir: &Path,
    now: &dyn Fn() -> f64,
) -> Result<Vec<DetectorOutcome>, RegistryError> {
    let mut out = Vec::new();
    for s in services {
        let started = now();
        let Some(model) = models.iter().find(|m| &m.service == s) else { continue };
        let val: Vec<&LabeledWindow> = split.val.iter().copied().filter(|w| &w.window.service == s).collect();
        let new_ap = window_average_precision(model, &val);
        // An active file that is gone or unreadable is replaced.
        let active_ap = store
            .active_model(s, WINDOW_DETECTOR_KIND)?
            .and_then(|m| DetectorModel::load(Path::new(&m.path)).ok())
            .map(|m| window_average_precision(&m, &val));
        let promoted = active_ap.is_none_or(|a| new_ap > a);
        let version = store.next_model_version(s, WINDOW_DETECTOR_KIND)?;
        let sdir = dir.join(s);
        std::fs::create_dir_all(&sdir).map_err(io(&sdir))?;
        let mut model = model.clone();
        model.metrics =
            serde_json::json!({ "validation_average_precision": new_ap, "validation_from": split.split_at });
        let json = serde_json::to_string(&model).expect("a model serializes") + "\n";
        let path = sdir.join(format!("{WINDOW_DETECTOR_KIND}-v{version}.json"));
        std::fs::write(&path, &json).map_err(io(&path))?;
        let card = serde_json::json!({ "promoted": promoted, "validation_average_precision": new_ap,
            "active_validation_average_precision": active_ap, "rows": model.rows, "seed": seed,
            "window_seconds": model.window_seconds });
        // The registry keeps an absolute path: the next night may run elsewhere.
        let abs = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        store.register_model(s, WINDOW_DETECTOR_KIND, &abs.display().to_string(), &card, now())?;
        if promoted {
            let active_path = sdir.join("window-detector.json");
            std::fs::write(&active_path, &json).map_err(io(&active_path))?;
        }
        store.record_run(&RunRecord {
            kind: "detect-train",
            started,
            finished: now(),
            params: &serde_json::json!({ "service": s, "level": "window", "kind": model.kind, "seed": seed,
                "by": "pss-tune", "from": model.data_from, "to": model.data_to }),
            metrics: &card,
        })?;
        out.push(DetectorOutcome { service: s.clone(), path, new_ap, active_ap, promoted });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Features, Window};
    use crate::store::SqliteStore;

    /// Two days of minute windows of one service; incidents have high latency.
    fn windows() -> Vec<LabeledWindow> {
        (0..600)
            .map(|k| {
                let bad = k % 50 == 7;
                let f = Features {
                    rows: 100.0,
                    lat_p95: if bad { 2.0 } else { 0.1 + (k % 9) as f64 * 0.01 },
                    lat_mean: if bad { 1.0 } else { 0.05 + (k % 4) as f64 * 0.01 },
                    ..Default::default()
                };
                let window = Window { traces: 100, pss: 90.0, ..Window::unscored("s", k as f64 * 60.0, 60.0, f) };
                LabeledWindow { window, incident: bad.then(|| format!("i-{k}")) }
            })
            .collect()
    }

    #[test]
    fn the_first_night_promotes_and_an_equal_model_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
        let ws = windows();
        let split = crate::eval::time_split(&ws, 0.3).unwrap();
        let models = dir.path().join("models");
        let services = ["s".to_string()];
        let clock = || 1000.0;
        let first = retrain_window_detectors(&mut store, &split, &services, 7, &models, &clock).unwrap();
        assert_eq!(first.len(), 1);
        assert!(first[0].promoted && first[0].active_ap.is_none());
        assert!(first[0].new_ap > 0.5, "incidents stand out: {}", first[0].new_ap);
        let active = models.join("s/window-detector.json");
        assert_eq!(std::fs::read(&active).unwrap(), std::fs::read(&first[0].path).unwrap());
        let second = retrain_window_detectors(&mut store, &split, &services, 7, &models, &clock).unwrap();
        assert!(!second[0].promoted, "the same model is not better");
        assert_eq!(second[0].active_ap, Some(first[0].new_ap));
        assert!(second[0].path.ends_with("extended-isolation-forest-window-v2.json"));
        assert_eq!(std::fs::read(&active).unwrap(), std::fs::read(&first[0].path).unwrap(), "v1 stays active");
        let reg = store.active_model("s", WINDOW_DETECTOR_KIND).unwrap().unwrap();
        assert_eq!(reg.version, 1);
    }
}
