//! The history store: traces, windows, labeled incidents, run history and
//! (later) training runs and models. [`Store`] is the interface scoring,
//! tuning and detection use; [`sqlite::SqliteStore`] is the embedded
//! default. A server database can implement the same trait later.

pub mod incidents;
pub mod ingest;
pub mod sqlite;

use serde::{Deserialize, Serialize};

pub use ingest::{ingest_source, IngestReport};
pub use sqlite::SqliteStore;

use crate::window::Window;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: written by a newer pss (schema version {found}); this pss reads up to version {supported}. Upgrade pss.")]
    NewerSchema { path: String, found: i64, supported: i64 },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Read(#[from] crate::trace::ReadError),
}

/// A labeled incident: a time range of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub service: String,
    /// Epoch seconds.
    pub start: f64,
    /// Epoch seconds; `end > start`.
    pub end: f64,
    pub severity: String,
    pub title: String,
}

/// One row of pypss's `pss_history` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    pub id: i64,
    pub timestamp: f64,
    pub pss: f64,
    pub ts: f64,
    pub ms: f64,
    pub ev: f64,
    pub be: f64,
    pub cc: f64,
    pub meta: serde_json::Value,
}

/// A window with its incident label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabeledWindow {
    pub window: Window,
    /// The id of an incident of the same service overlapping the window.
    pub incident: Option<String>,
}

/// What the rest of pss needs from a history database.
pub trait Store {
    /// Windows of a service (module `""` for the service as a whole), of one
    /// length, optionally in `[from, to)`, in time order, with labels.
    fn windows(
        &self,
        service: &str,
        module: Option<&str>,
        seconds: f64,
        from: Option<f64>,
        to: Option<f64>,
    ) -> Result<Vec<LabeledWindow>, StoreError>;
    /// Modules of a service with windows of this length (not `""`), by name.
    fn window_modules(&self, service: &str, seconds: f64) -> Result<Vec<String>, StoreError>;
    /// Services with traces or incidents.
    fn services(&self) -> Result<Vec<String>, StoreError>;
    /// Incidents, optionally of one service, by start time.
    fn incidents(&self, service: Option<&str>) -> Result<Vec<Incident>, StoreError>;
    /// Adds incidents in one transaction (all or none).
    fn add_incidents(&mut self, incidents: &[Incident]) -> Result<(), StoreError>;
    /// Removes an incident; false when there was none with that id.
    fn remove_incident(&mut self, id: &str) -> Result<bool, StoreError>;
    /// Appends a run score to pypss's history table.
    fn save_history(&mut self, row: &HistoryRow) -> Result<(), StoreError>;
    /// Latest runs first, at most `limit`, optionally only the last `days`
    /// and one service (`meta.service`).
    fn history(&self, limit: usize, days: Option<f64>, service: Option<&str>) -> Result<Vec<HistoryRow>, StoreError>;
    /// Deletes traces, windows and history older than `cutoff` (epoch seconds).
    fn prune(&mut self, cutoff: f64) -> Result<PruneReport, StoreError>;
}

/// What a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub traces: u64,
    pub windows: u64,
    pub history: u64,
}

/// pypss's `check_regression`: a warning when `current` is more than
/// `threshold_drop` below the mean PSS of `recent` runs.
pub fn check_regression(current: f64, recent: &[HistoryRow], limit: usize, threshold_drop: f64) -> Option<String> {
    if recent.is_empty() {
        return None;
    }
    let avg = recent.iter().map(|h| h.pss).sum::<f64>() / recent.len() as f64;
    if current < avg - threshold_drop {
        Some(format!(
            "⚠️  REGRESSION DETECTED: Current PSS ({current:.1}) is significantly lower than the {limit}-run average ({avg:.1})."
        ))
    } else {
        None
    }
}
