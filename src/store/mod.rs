//! The history store: traces, windows, labeled incidents, run history and
//! (later) training runs and models. [`Store`] is the interface scoring,
//! tuning and detection use; [`sqlite::SqliteStore`] is the embedded
//! default. A server database can implement the same trait later.

pub mod incidents;
pub mod pushgateway;
pub mod sqlite;
mod traces;

use serde::Serialize;

pub use sqlite::SqliteStore;
pub use traces::IngestReport;

use crate::domain::Window;
pub use crate::domain::{check_regression, HistoryRow, Incident, LabeledWindow, SlowestTrace};

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

/// A service's windows of one length: all, and those too small to score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WindowCounts {
    pub windows: u64,
    pub too_small: u64,
}

/// A time range `[from, to]` in epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeRange {
    pub from: f64,
    pub to: f64,
}

impl TimeRange {
    /// The smallest range holding this one and `t`.
    pub fn including(self, t: f64) -> TimeRange {
        TimeRange { from: self.from.min(t), to: self.to.max(t) }
    }

    /// The smallest range holding both.
    pub fn union(self, o: TimeRange) -> TimeRange {
        TimeRange { from: self.from.min(o.from), to: self.to.max(o.to) }
    }
}

/// Reads traces into a sink: a file, a request body, a Redis item.
pub type ReadTraces<'a> = Box<dyn FnMut(&mut dyn crate::trace::TraceSink) -> Result<(), crate::trace::ReadError> + 'a>;

/// One source of traces of one service, for [`Store::insert_traces`].
pub struct TraceBatch<'a> {
    pub service: &'a str,
    /// Its name in reports and errors (a path, `http`, …).
    pub source: String,
    pub read: ReadTraces<'a>,
}

/// What [`Store::insert_traces`] did: a report per batch, and per service
/// the time range of the traces read (whose windows are now out of date).
#[derive(Debug, Clone, Default)]
pub struct InsertedTraces {
    pub reports: Vec<IngestReport>,
    pub touched: Vec<Touched>,
}

/// A service's time range whose windows new traces changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Touched {
    pub service: String,
    pub range: TimeRange,
}

impl InsertedTraces {
    /// Adds `range` to what `service` touched.
    pub fn touch(&mut self, service: &str, range: TimeRange) {
        merge_touched(&mut self.touched, service, range);
    }
}

/// Adds `range` of `service` to `touched` (one entry per service).
pub fn merge_touched(touched: &mut Vec<Touched>, service: &str, range: TimeRange) {
    match touched.iter_mut().find(|t| t.service == service) {
        Some(t) => t.range = t.range.union(range),
        None => touched.push(Touched { service: service.to_string(), range }),
    }
}

/// A system trace's stored numeric metadata (JSON written by the store).
pub fn stored_metadata(json: &str) -> Vec<(Box<str>, f64)> {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json) {
        Ok(m) => m.into_iter().filter_map(|(k, v)| Some((k.into_boxed_str(), v.as_f64()?))).collect(),
        Err(_) => Vec::new(),
    }
}

/// A stored trace as window scoring reads it back.
pub enum StoredTrace<'a> {
    /// A regular trace (its exception message is not kept for windows).
    Regular { module: &'a str, name: &'a str, memory_diff: Option<f64>, row: crate::trace::columns::Row<'a> },
    /// A system metric: event-loop lag, and its other numeric metadata as
    /// JSON (custom metrics read it).
    System { module: &'a str, timestamp: f64, lag: Option<f64>, metadata: Option<&'a str> },
}

/// A notification to record in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// Unique per notification: recording it again does nothing.
    pub key: String,
    pub created: f64,
    /// The channel's name (`webhook`, `slack`, …): its URL stays in the
    /// configuration, never in the database.
    pub channel: String,
    pub body: serde_json::Value,
}

/// No notification for a service (and one rule, when given) until `until`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Silence {
    pub service: String,
    pub rule: Option<String>,
    /// Epoch seconds.
    pub until: f64,
}

impl Silence {
    /// Whether it holds back a notification of `service` whose rules are `rules`.
    pub fn covers(&self, service: &str, rules: &[&str]) -> bool {
        self.service == service && self.rule.as_deref().is_none_or(|r| rules.contains(&r))
    }
}

/// A notification due to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: i64,
    pub key: String,
    pub channel: String,
    pub body: serde_json::Value,
    pub attempts: u32,
}

/// A notification as `pss alerts list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotificationRecord {
    pub key: String,
    pub channel: String,
    pub created: f64,
    pub sent: Option<f64>,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// A regular trace's values for trace-level detectors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceRow {
    /// Epoch seconds.
    pub timestamp: f64,
    pub module: String,
    pub name: String,
    /// duration, memory_diff, wait_time, error (0/1): pypss's ml-detect features.
    pub features: [f64; 4],
}

/// A service's traces over a time range, as columns, for diagnosis.
pub struct TraceSlice {
    pub columns: crate::trace::TraceColumns,
    pub slowest: Option<SlowestTrace>,
}

/// The stored read position of a file `pss serve --follow` tails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowOffset {
    /// Device and inode: a rotated file has another identity.
    pub identity: String,
    pub offset: u64,
}

/// A model in the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredModel {
    pub version: i64,
    pub path: String,
    pub card: serde_json::Value,
}

/// A training run (tuning, detector training) to record.
#[derive(Debug, Clone, Copy)]
pub struct RunRecord<'a> {
    pub kind: &'a str,
    /// Epoch seconds.
    pub started: f64,
    pub finished: f64,
    pub params: &'a serde_json::Value,
    pub metrics: &'a serde_json::Value,
}

/// What the rest of pss needs from a history database: every operation the
/// program uses, so that another database is a new implementation, not a
/// change to callers. Times are epoch seconds; the store reads no clock.
pub trait Store {
    /// Where the store lives (a file path, a server), for messages.
    fn location(&self) -> String;
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
    /// Inserts batches of traces in one transaction: all of them or, on the
    /// first bad one, none (its error names it). Duplicates are counted and
    /// ignored. Windows are not recomputed here; the caller scores the
    /// touched ranges (the `ingest` module).
    fn insert_traces(
        &mut self,
        batches: Vec<TraceBatch<'_>>,
        unknown_module: &str,
        progress: &dyn Fn(u64),
    ) -> Result<InsertedTraces, StoreError>;
    /// Visits a service's stored traces with timestamps in `[from, to)`, in
    /// time order (then insertion order).
    fn scan_traces(
        &self,
        service: &str,
        range: TimeRange,
        visit: &mut dyn FnMut(StoredTrace<'_>),
    ) -> Result<(), StoreError>;
    /// Replaces a service's windows of length `seconds` starting in
    /// `[from, to)` by `windows`, in one transaction; returns how many were written.
    fn replace_windows(
        &mut self,
        service: &str,
        seconds: f64,
        range: TimeRange,
        windows: &[Window],
    ) -> Result<u64, StoreError>;
    /// Modules of a service with windows of this length (not `""`), by name.
    fn window_modules(&self, service: &str, seconds: f64) -> Result<Vec<String>, StoreError>;
    /// The window lengths stored (of one service, or any), shortest first.
    fn window_lengths(&self, service: Option<&str>) -> Result<Vec<f64>, StoreError>;
    /// Of a service's latest `limit` service-level windows of length
    /// `seconds`, how many there are and how many are too small to score.
    fn window_counts(&self, service: &str, seconds: f64, limit: usize) -> Result<WindowCounts, StoreError>;
    /// The first window start and the last window end of a service's
    /// service-level windows of length `seconds` (`None`: it has none).
    fn window_span(&self, service: &str, seconds: f64) -> Result<Option<TimeRange>, StoreError>;
    /// Each service's and module's latest window of this length (live scores).
    fn latest_windows(&self, seconds: f64) -> Result<Vec<Window>, StoreError>;
    /// Services with traces or incidents.
    fn services(&self) -> Result<Vec<String>, StoreError>;
    /// Complete regular traces of a service in `[from, to)`, in time order.
    fn trace_rows(&self, service: &str, from: Option<f64>, to: Option<f64>) -> Result<Vec<TraceRow>, StoreError>;
    /// A service's traces in `[from, to)` as columns (names, timestamps and
    /// exception messages kept), with where the slowest regular trace ran.
    fn trace_slice(&self, service: &str, from: f64, to: f64, unknown_module: &str) -> Result<TraceSlice, StoreError>;
    /// Incidents, optionally of one service, by start time.
    fn incidents(&self, service: Option<&str>) -> Result<Vec<Incident>, StoreError>;
    /// Adds incidents in one transaction (all or none).
    fn add_incidents(&mut self, incidents: &[Incident]) -> Result<(), StoreError>;
    /// Removes an incident; false when there was none with that id.
    fn remove_incident(&mut self, id: &str) -> Result<bool, StoreError>;
    /// Appends a run score to pypss's history table.
    fn save_history(&mut self, row: &HistoryRow) -> Result<(), StoreError>;
    /// Latest runs first, at most `limit`, optionally only those at or after
    /// `since` and of one service (`meta.service`).
    fn history(&self, limit: usize, since: Option<f64>, service: Option<&str>) -> Result<Vec<HistoryRow>, StoreError>;
    /// Deletes run history (only) older than `cutoff`, as pypss does on save.
    fn prune_history(&mut self, cutoff: f64) -> Result<u64, StoreError>;
    /// Deletes traces, windows and history older than `cutoff`.
    fn prune(&mut self, cutoff: f64) -> Result<PruneReport, StoreError>;
    /// Records a training run and returns its id.
    fn record_run(&mut self, run: &RunRecord<'_>) -> Result<i64, StoreError>;
    /// Registers a saved model created at `created`; returns its version
    /// (1 + the latest of the same service and kind).
    fn register_model(
        &mut self,
        service: &str,
        kind: &str,
        path: &str,
        card: &serde_json::Value,
        created: f64,
    ) -> Result<i64, StoreError>;
    /// The next model version for a service and kind.
    fn next_model_version(&self, service: &str, kind: &str) -> Result<i64, StoreError>;
    /// The active model of a service and kind: the latest registered with
    /// `"promoted": true` in its card.
    fn active_model(&self, service: &str, kind: &str) -> Result<Option<RegisteredModel>, StoreError>;
    /// When an alert with this dedup key was last sent (epoch seconds).
    fn last_alert(&self, key: &str) -> Result<Option<f64>, StoreError>;
    /// Records that an alert was sent at `at`.
    fn record_alert(&mut self, key: &str, at: f64) -> Result<(), StoreError>;
    /// Adds a silence.
    fn add_silence(&mut self, s: &Silence) -> Result<(), StoreError>;
    /// Silences still in force at `now`.
    fn silences(&self, now: f64) -> Result<Vec<Silence>, StoreError>;
    /// Records notifications (an already recorded key is left alone);
    /// returns how many are new.
    fn enqueue_notifications(&mut self, items: &[NewNotification]) -> Result<u64, StoreError>;
    /// Unsent notifications whose next attempt is due, oldest first.
    fn due_notifications(&self, now: f64, limit: usize) -> Result<Vec<Notification>, StoreError>;
    /// Marks a notification delivered (a 2xx) at `at`.
    fn notification_sent(&mut self, id: i64, at: f64) -> Result<(), StoreError>;
    /// Records a failed attempt and when to try again.
    fn notification_failed(&mut self, id: i64, next_try: f64, error: &str) -> Result<(), StoreError>;
    /// Notifications created at or after `since`, oldest first.
    fn notifications(&self, since: f64) -> Result<Vec<NotificationRecord>, StoreError>;
    /// The stored read position of a followed file.
    fn follow_offset(&self, path: &str) -> Result<Option<FollowOffset>, StoreError>;
    /// Stores a followed file's read position.
    fn set_follow_offset(&mut self, path: &str, at: &FollowOffset) -> Result<(), StoreError>;
}

/// Opens the history at `path` (created when missing): the one place that
/// picks the store's implementation, so callers name only [`Store`].
pub fn open(path: &std::path::Path) -> Result<Box<dyn Store + Send>, StoreError> {
    Ok(Box::new(SqliteStore::open(path)?))
}

/// The window length to use: `asked` when given; else the one length the
/// history holds for these services (every service when empty) — it is asked
/// for once, at ingest; else `fallback` (no windows, or several lengths).
pub fn window_length(
    store: &dyn Store,
    asked: Option<f64>,
    services: &[String],
    fallback: f64,
) -> Result<f64, StoreError> {
    if let Some(w) = asked {
        return Ok(w);
    }
    let mut lengths = if services.is_empty() { store.window_lengths(None)? } else { Vec::new() };
    for s in services {
        lengths.extend(store.window_lengths(Some(s))?);
    }
    lengths.sort_by(f64::total_cmp);
    lengths.dedup();
    Ok(if let [one] = lengths.as_slice() { *one } else { fallback })
}

/// Windows of several services with their incidents: what tuning and
/// detector evaluation learn from.
#[derive(Debug, Clone, Default)]
pub struct LabeledHistory {
    pub windows: Vec<LabeledWindow>,
    pub incidents: Vec<Incident>,
}

/// Loads the whole-service windows of one length of `services`, optionally
/// in `[from, to)`, and their incidents.
pub fn labeled_history(
    store: &dyn Store,
    services: &[String],
    seconds: f64,
    from: Option<f64>,
    to: Option<f64>,
) -> Result<LabeledHistory, StoreError> {
    let mut h = LabeledHistory::default();
    for s in services {
        h.windows.extend(store.windows(s, None, seconds, from, to)?);
        h.incidents.extend(store.incidents(Some(s))?);
    }
    Ok(h)
}

/// What a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub traces: u64,
    pub windows: u64,
    pub history: u64,
}
