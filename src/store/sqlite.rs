//! The embedded SQLite history database (rusqlite, bundled SQLite: nothing to
//! install). WAL mode and a busy timeout let an ingest and a nightly tune
//! write the same file; every multi-row change is one transaction.
//!
//! The file also holds pypss's own `_meta` and `pss_history` tables, unchanged,
//! so `pypss history --db-path` reads what pss wrote and a pypss history file
//! opens in pss (it is migrated forward by adding pss's tables).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{
    FollowOffset, InsertedTraces, NewNotification, Notification, NotificationRecord, PruneReport, RegisteredModel,
    RunRecord, Silence, SlowestTrace, Store, StoreError, StoredTrace, TimeRange, TraceBatch, TraceRow, TraceSlice,
    WindowCounts,
};
use crate::domain::{Features, SubScores, Window};
use crate::domain::{HistoryRow, Incident, LabeledWindow};

/// The schema version this pss writes (`_meta` key `pss_schema`).
pub const SCHEMA_VERSION: i64 = 7;

const SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS services (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS traces (
    id INTEGER PRIMARY KEY,
    service_id INTEGER NOT NULL REFERENCES services(id),
    trace_key TEXT NOT NULL,
    timestamp REAL,
    module TEXT NOT NULL,
    name TEXT NOT NULL,
    duration REAL,
    cpu_time REAL,
    wait_time REAL,
    memory REAL,
    memory_diff REAL,
    error INTEGER NOT NULL DEFAULT 0,
    exception_type TEXT,
    exception_message TEXT,
    branch_tag TEXT,
    stage INTEGER NOT NULL DEFAULT 3,
    system_metric INTEGER NOT NULL DEFAULT 0,
    lag REAL,
    active_tasks REAL,
    churn_rate REAL,
    UNIQUE (service_id, trace_key)
);
CREATE INDEX IF NOT EXISTS traces_by_time ON traces (service_id, timestamp);
CREATE TABLE IF NOT EXISTS windows (
    service_id INTEGER NOT NULL REFERENCES services(id),
    module TEXT NOT NULL,
    seconds REAL NOT NULL,
    start REAL NOT NULL,
    traces INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    too_small INTEGER NOT NULL,
    pss REAL, ts REAL, ms REAL, ev REAL, be REAL, cc REAL,
    lat_mean REAL, lat_p50 REAL, lat_p95 REAL, lat_p99 REAL, lat_cv REAL, tail_ratio REAL,
    mem_median REAL, mem_peak REAL, mem_slope REAL,
    error_rate REAL, error_vmr REAL, error_longest_run REAL,
    wait_mean REAL, wait_cv REAL, tag_count REAL, tag_entropy REAL, lag_mean REAL,
    mem_std REAL, rows REAL, be_raw REAL, lag_count REAL,
    PRIMARY KEY (service_id, module, seconds, start)
);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    start REAL NOT NULL,
    "end" REAL NOT NULL,
    severity TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS incidents_by_service ON incidents (service, start);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    params TEXT,
    metrics TEXT
);
CREATE TABLE IF NOT EXISTS models (
    id INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    path TEXT NOT NULL,
    created REAL NOT NULL,
    card TEXT
);
"#;

/// pypss 1.3.1's tables, exactly as its `SQLiteStorage` creates them.
const PYPSS_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS _meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS pss_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp REAL,
    pss REAL,
    ts REAL,
    ms REAL,
    ev REAL,
    be REAL,
    cc REAL,
    meta TEXT
);
INSERT OR IGNORE INTO _meta (key, value) VALUES ('version', '1');
"#;

/// Forward migrations: entry `i` brings schema `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7];

/// v7: custom metrics — a window's custom scores with their weights (JSON),
/// and a system trace's other numeric metadata (JSON: `kafka_lag`,
/// `gc_pause_duration`, …) that pypss's built-in metrics read.
const SCHEMA_V7: &str = "ALTER TABLE windows ADD COLUMN custom TEXT; ALTER TABLE traces ADD COLUMN metadata TEXT;";

/// v6: silences (`pss alerts silence`): no notification for a service (and
/// rule, when given) until a time.
const SCHEMA_V6: &str =
    "CREATE TABLE IF NOT EXISTS silences (service TEXT NOT NULL, rule TEXT NOT NULL, until REAL NOT NULL);";

/// v5: the notification outbox: recorded before sending, marked sent after
/// a 2xx; `key` makes recording the same notification twice a no-op.
const SCHEMA_V5: &str = "CREATE TABLE IF NOT EXISTS notifications (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, \
    created REAL NOT NULL, channel TEXT NOT NULL, body TEXT NOT NULL, sent REAL, attempts INTEGER NOT NULL DEFAULT 0, \
    next_try REAL NOT NULL, last_error TEXT); \
    CREATE INDEX IF NOT EXISTS notifications_due ON notifications (sent, next_try);";

/// v4: when each alert (pypss's dedup key) was last sent, for the cooldown.
const SCHEMA_V4: &str = "CREATE TABLE IF NOT EXISTS alerts (key TEXT PRIMARY KEY, last_sent REAL NOT NULL);";

/// v3: read positions of files `pss serve --follow` tails.
const SCHEMA_V3: &str =
    "CREATE TABLE IF NOT EXISTS follow_offsets (path TEXT PRIMARY KEY, identity TEXT NOT NULL, offset INTEGER NOT NULL);";

/// v2: where each trace's function is (diagnosis shows the slowest one's source).
const SCHEMA_V2: &str = "ALTER TABLE traces ADD COLUMN filename TEXT; ALTER TABLE traces ADD COLUMN lineno INTEGER;";

/// A history database file.
pub struct SqliteStore {
    pub(crate) conn: Connection,
    pub(crate) path: String,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates a history database.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let name = path.display().to_string();
        let err = |e| StoreError::Sqlite { path: name.clone(), source: e };
        if path.is_dir() {
            return Err(StoreError::Invalid(format!("{name}: is a directory, not a history database")));
        }
        // A new database is its owner's alone (traces carry exception
        // messages, which can hold personal data); SQLite gives its -wal and
        // -shm files the database file's mode.
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
            if let Err(e) = created {
                if e.kind() != std::io::ErrorKind::AlreadyExists {
                    return Err(StoreError::Invalid(format!("{name}: cannot create the history database: {e}")));
                }
            }
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(err)?;
        // WAL lets readers run beside a writer; NORMAL sync is durable at
        // each commit in WAL mode for everything but power loss. Switching a
        // new file to WAL can report "busy" without waiting while another
        // process creates it at the same moment: retry for a while.
        let mut tries = 0;
        loop {
            match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
                Ok(_) => break,
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                        && tries < 300 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => return Err(err(e)),
            }
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;").map_err(err)?;
        let mut store = SqliteStore { conn, path: name };
        store.migrate()?;
        Ok(store)
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::Sqlite { path: self.path.clone(), source: e }
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| StoreError::Sqlite { path: self.path.clone(), source: e })?;
        let path = self.path.clone();
        let err = |e| StoreError::Sqlite { path: path.clone(), source: e };
        tx.execute_batch(PYPSS_SCHEMA).map_err(err)?;
        let found: i64 = tx
            .query_row("SELECT value FROM _meta WHERE key = 'pss_schema'", [], |r| r.get::<_, String>(0))
            .optional()
            .map_err(err)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { path, found, supported: SCHEMA_VERSION });
        }
        for (v, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(sql).map_err(err)?;
            tx.execute(
                "INSERT OR REPLACE INTO _meta (key, value) VALUES ('pss_schema', ?1)",
                params![(v as i64 + 1).to_string()],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }
}

/// Reads a window row (module, seconds, start, then [`Window::value_columns`]).
pub(crate) fn window_from_row(service: &str, r: &rusqlite::Row<'_>) -> rusqlite::Result<Window> {
    let first = 3 + Window::SCORE_COLUMNS.len();
    let mut f = [0.0f64; Features::COUNT];
    for (k, v) in f.iter_mut().enumerate() {
        *v = r.get::<_, Option<f64>>(first + k)?.unwrap_or(0.0);
    }
    Ok(Window {
        service: service.to_string(),
        module: r.get(0)?,
        seconds: r.get(1)?,
        start: r.get(2)?,
        traces: r.get::<_, i64>(3)? as u64,
        errors: r.get::<_, i64>(4)? as u64,
        too_small: r.get::<_, i64>(5)? != 0,
        pss: r.get(6)?,
        sub: SubScores::from_array([r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?]),
        features: Features::from_values(&f),
        // Written by pss itself; a value it cannot read is no custom scores.
        custom: r
            .get::<_, Option<String>>(first + Features::COUNT)?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
    })
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.path.clone()
    }

    fn windows(
        &self,
        service: &str,
        module: Option<&str>,
        seconds: f64,
        from: Option<f64>,
        to: Option<f64>,
    ) -> Result<Vec<LabeledWindow>, StoreError> {
        let cols = Window::value_columns();
        let sql = format!(
            "SELECT w.module, w.seconds, w.start, {cols} FROM windows w JOIN services s ON s.id = w.service_id \
             WHERE s.name = ?1 AND w.module = ?2 AND w.seconds = ?3 AND w.start >= ?4 AND w.start < ?5 ORDER BY w.start"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(
                params![service, module.unwrap_or(""), seconds, from.unwrap_or(f64::MIN), to.unwrap_or(f64::MAX)],
                |r| window_from_row(service, r),
            )
            .map_err(|e| self.err(e))?;
        let windows: Vec<Window> = rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?;
        let incidents = self.incidents(Some(service))?;
        Ok(windows
            .into_iter()
            .map(|w| {
                let incident =
                    incidents.iter().find(|i| w.start < i.end && w.start + w.seconds > i.start).map(|i| i.id.clone());
                LabeledWindow { window: w, incident }
            })
            .collect())
    }

    fn last_alert(&self, key: &str) -> Result<Option<f64>, StoreError> {
        self.conn
            .query_row("SELECT last_sent FROM alerts WHERE key = ?1", params![key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    fn record_alert(&mut self, key: &str, at: f64) -> Result<(), StoreError> {
        self.conn
            .execute("INSERT OR REPLACE INTO alerts (key, last_sent) VALUES (?1, ?2)", params![key, at])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn add_silence(&mut self, s: &Silence) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO silences (service, rule, until) VALUES (?1, ?2, ?3)",
                params![s.service, s.rule.clone().unwrap_or_default(), s.until],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn silences(&self, now: f64) -> Result<Vec<Silence>, StoreError> {
        let mut q = self
            .conn
            .prepare("SELECT service, rule, until FROM silences WHERE until > ?1 ORDER BY until")
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map(params![now], |r| {
                let rule: String = r.get(1)?;
                Ok(Silence { service: r.get(0)?, rule: (!rule.is_empty()).then_some(rule), until: r.get(2)? })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn enqueue_notifications(&mut self, items: &[NewNotification]) -> Result<u64, StoreError> {
        let path = self.path.clone();
        let err = |e| StoreError::Sqlite { path: path.clone(), source: e };
        let tx = self.conn.transaction().map_err(err)?;
        let mut n = 0;
        for i in items {
            n += tx
                .execute(
                    "INSERT OR IGNORE INTO notifications (key, created, channel, body, next_try) VALUES (?1, ?2, ?3, ?4, ?2)",
                    params![i.key, i.created, i.channel, i.body.to_string()],
                )
                .map_err(err)? as u64;
        }
        tx.commit().map_err(err)?;
        Ok(n)
    }

    fn due_notifications(&self, now: f64, limit: usize) -> Result<Vec<Notification>, StoreError> {
        let mut q = self
            .conn
            .prepare(
                "SELECT id, key, channel, body, attempts FROM notifications WHERE sent IS NULL AND next_try <= ?1 \
                 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map(params![now, limit as i64], |r| {
                let body: String = r.get(3)?;
                Ok(Notification {
                    id: r.get(0)?,
                    key: r.get(1)?,
                    channel: r.get(2)?,
                    body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
                    attempts: r.get::<_, i64>(4)? as u32,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn notification_sent(&mut self, id: i64, at: f64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE notifications SET sent = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
                params![id, at],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn notification_failed(&mut self, id: i64, next_try: f64, error: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE notifications SET attempts = attempts + 1, next_try = ?2, last_error = ?3 WHERE id = ?1",
                params![id, next_try, error],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn notifications(&self, since: f64) -> Result<Vec<NotificationRecord>, StoreError> {
        let mut q = self
            .conn
            .prepare(
                "SELECT key, channel, created, sent, attempts, last_error FROM notifications WHERE created >= ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map(params![since], |r| {
                Ok(NotificationRecord {
                    key: r.get(0)?,
                    channel: r.get(1)?,
                    created: r.get(2)?,
                    sent: r.get(3)?,
                    attempts: r.get::<_, i64>(4)? as u32,
                    last_error: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn insert_traces(
        &mut self,
        batches: Vec<TraceBatch<'_>>,
        unknown_module: &str,
        progress: &dyn Fn(u64),
    ) -> Result<InsertedTraces, StoreError> {
        self.insert_trace_batches(batches, unknown_module, progress)
    }

    fn scan_traces(
        &self,
        service: &str,
        range: TimeRange,
        visit: &mut dyn FnMut(StoredTrace<'_>),
    ) -> Result<(), StoreError> {
        self.scan_stored_traces(service, range, visit)
    }

    fn replace_windows(
        &mut self,
        service: &str,
        seconds: f64,
        range: TimeRange,
        windows: &[Window],
    ) -> Result<u64, StoreError> {
        self.replace_window_range(service, seconds, range, windows)
    }

    fn window_modules(&self, service: &str, seconds: f64) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT DISTINCT w.module FROM windows w JOIN services s ON s.id = w.service_id \
                 WHERE s.name = ?1 AND w.seconds = ?2 AND w.module != '' ORDER BY 1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map(params![service, seconds], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn window_lengths(&self, service: Option<&str>) -> Result<Vec<f64>, StoreError> {
        if let Some(service) = service {
            // A loose index scan on the primary key (service_id, module,
            // seconds, start): one seek per distinct length, not a pass over
            // every window (the board asks every few seconds).
            let mut out = Vec::new();
            let mut after = f64::NEG_INFINITY;
            loop {
                let next: Option<f64> = self
                    .conn
                    .query_row(
                        "SELECT MIN(w.seconds) FROM windows w WHERE w.service_id = \
                         (SELECT id FROM services WHERE name = ?1) AND w.module = '' AND w.seconds > ?2",
                        params![service, after],
                        |r| r.get(0),
                    )
                    .map_err(|e| self.err(e))?;
                match next {
                    Some(s) => {
                        out.push(s);
                        after = s;
                    }
                    None => return Ok(out),
                }
            }
        }
        let mut stmt =
            self.conn.prepare("SELECT DISTINCT w.seconds FROM windows w ORDER BY 1").map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn window_counts(&self, service: &str, seconds: f64, limit: usize) -> Result<WindowCounts, StoreError> {
        // The end of a primary-key range (service_id, module, seconds, start):
        // bounded by `limit`, however long the history.
        self.conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(too_small), 0) FROM (SELECT w.too_small FROM windows w \
                 WHERE w.service_id = (SELECT id FROM services WHERE name = ?1) AND w.module = '' AND w.seconds = ?2 \
                 ORDER BY w.start DESC LIMIT ?3)",
                params![service, seconds, limit as i64],
                |r| Ok(WindowCounts { windows: r.get::<_, i64>(0)? as u64, too_small: r.get::<_, i64>(1)? as u64 }),
            )
            .map_err(|e| self.err(e))
    }

    fn window_span(&self, service: &str, seconds: f64) -> Result<Option<TimeRange>, StoreError> {
        // Two primary-key seeks, not a scan.
        let edge = |order: &str| -> Result<Option<f64>, StoreError> {
            let sql = format!(
                "SELECT w.start FROM windows w JOIN services s ON s.id = w.service_id \
                 WHERE s.name = ?1 AND w.module = '' AND w.seconds = ?2 ORDER BY w.start {order} LIMIT 1"
            );
            self.conn.query_row(&sql, params![service, seconds], |r| r.get(0)).optional().map_err(|e| self.err(e))
        };
        Ok(match (edge("ASC")?, edge("DESC")?) {
            (Some(from), Some(last)) => Some(TimeRange { from, to: last + seconds }),
            _ => None,
        })
    }

    fn trace_rows(&self, service: &str, from: Option<f64>, to: Option<f64>) -> Result<Vec<TraceRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.timestamp, t.module, t.name, t.duration, t.memory_diff, t.wait_time, t.error \
                 FROM traces t JOIN services s ON s.id = t.service_id \
                 WHERE s.name = ?1 AND t.system_metric = 0 AND t.stage = 3 AND t.timestamp >= ?2 AND t.timestamp < ?3 \
                 ORDER BY t.timestamp, t.id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![service, from.unwrap_or(f64::MIN), to.unwrap_or(f64::MAX)], |r| {
                Ok(TraceRow {
                    timestamp: r.get(0)?,
                    module: r.get(1)?,
                    name: r.get(2)?,
                    features: [
                        r.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
                        r.get::<_, Option<f64>>(4)?.unwrap_or(0.0),
                        r.get::<_, Option<f64>>(5)?.unwrap_or(0.0),
                        r.get::<_, i64>(6)? as f64,
                    ],
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn register_model(
        &mut self,
        service: &str,
        kind: &str,
        path: &str,
        card: &serde_json::Value,
        created: f64,
    ) -> Result<i64, StoreError> {
        let v = self.next_model_version(service, kind)?;
        self.conn
            .execute(
                "INSERT INTO models (service, kind, version, path, created, card) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![service, kind, v, path, created, card.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(v)
    }

    fn trace_slice(&self, service: &str, from: f64, to: f64, unknown_module: &str) -> Result<TraceSlice, StoreError> {
        use crate::pystats::Num;
        use crate::trace::columns::{Row, Stage};
        use crate::trace::{ColumnOptions, TraceColumns};
        let keep = ColumnOptions { timestamps: true, names: true, memory_diff: true };
        let mut c = TraceColumns::with_options(unknown_module, keep);
        let mut slowest: Option<SlowestTrace> = None;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.timestamp, t.module, t.name, t.duration, t.wait_time, t.memory, t.error, t.exception_type, \
                 t.exception_message, t.branch_tag, t.stage, t.system_metric, t.lag, t.memory_diff, t.filename, t.lineno, \
                 t.metadata \
                 FROM traces t JOIN services s ON s.id = t.service_id \
                 WHERE s.name = ?1 AND t.timestamp >= ?2 AND t.timestamp < ?3 ORDER BY t.timestamp, t.id",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query(params![service, from, to]).map_err(|e| self.err(e))?;
        let e = |e| self.err(e);
        while let Some(r) = rows.next().map_err(e)? {
            let ts: f64 = r.get(0).map_err(e)?;
            let module: String = r.get(1).map_err(e)?;
            let name: String = r.get(2).map_err(e)?;
            let mid = c.intern_module(&module);
            if r.get::<_, i64>(11).map_err(e)? != 0 {
                let lag: Option<f64> = r.get(12).map_err(e)?;
                c.push_system_values(mid, lag.map(Num::Float), ts);
                if let (Some(m), Some(last)) = (r.get::<_, Option<String>>(16).map_err(e)?, c.sys_meta.last_mut()) {
                    *last = super::stored_metadata(&m);
                }
                continue;
            }
            let nid = c.intern_name(&name);
            let stage = match r.get::<_, i64>(10).map_err(e)? {
                0 => Stage::Counted,
                1 => Stage::Duration,
                2 => Stage::Memory,
                _ => Stage::Complete,
            };
            let exception_type: Option<String> = r.get(7).map_err(e)?;
            let exception_message: Option<String> = r.get(8).map_err(e)?;
            let branch_tag: Option<String> = r.get(9).map_err(e)?;
            let duration = r.get::<_, Option<f64>>(3).map_err(e)?.unwrap_or(0.0);
            let memory = r.get::<_, Option<f64>>(5).map_err(e)?;
            let wait_time = r.get::<_, Option<f64>>(4).map_err(e)?;
            c.unmeasured.note(memory.is_none(), wait_time.is_none());
            let row = Row {
                values: [duration, memory.unwrap_or(0.0), wait_time.unwrap_or(0.0)],
                stage,
                error: r.get::<_, i64>(6).map_err(e)? != 0,
                branch_tag: branch_tag.as_deref(),
                exception_type: exception_type.as_deref(),
                exception_message: exception_message.as_deref(),
                timestamp: ts,
            };
            c.push_row_values(&row, mid, nid);
            c.memory_diff.push(r.get::<_, Option<f64>>(13).map_err(e)?.unwrap_or(0.0));
            if stage == Stage::Complete && slowest.as_ref().is_none_or(|s| duration > s.duration) {
                let file: Option<String> = r.get(14).map_err(e)?;
                let line: Option<i64> = r.get(15).map_err(e)?;
                slowest = Some(SlowestTrace {
                    filename: file.unwrap_or_default(),
                    lineno: line.unwrap_or(0),
                    duration,
                    module,
                    name,
                });
            }
        }
        Ok(TraceSlice { columns: c, slowest })
    }

    fn latest_windows(&self, seconds: f64) -> Result<Vec<Window>, StoreError> {
        let mut out = Vec::new();
        let cols = Window::value_columns();
        let sql = format!(
            "SELECT w.module, w.seconds, w.start, {cols} FROM windows w JOIN services s ON s.id = w.service_id \
             WHERE s.name = ?1 AND w.seconds = ?2 AND w.start = (SELECT MAX(x.start) FROM windows x \
             WHERE x.service_id = w.service_id AND x.module = w.module AND x.seconds = w.seconds) ORDER BY w.module"
        );
        for service in self.services()? {
            let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
            let rows =
                stmt.query_map(params![service, seconds], |r| window_from_row(&service, r)).map_err(|e| self.err(e))?;
            for w in rows {
                out.push(w.map_err(|e| self.err(e))?);
            }
        }
        Ok(out)
    }

    fn follow_offset(&self, path: &str) -> Result<Option<FollowOffset>, StoreError> {
        self.conn
            .query_row("SELECT identity, offset FROM follow_offsets WHERE path = ?1", params![path], |r| {
                Ok(FollowOffset { identity: r.get(0)?, offset: r.get::<_, i64>(1)? as u64 })
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    fn set_follow_offset(&mut self, path: &str, at: &FollowOffset) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO follow_offsets (path, identity, offset) VALUES (?1, ?2, ?3)",
                params![path, at.identity, at.offset as i64],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn active_model(&self, service: &str, kind: &str) -> Result<Option<RegisteredModel>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT version, path, card FROM models WHERE service = ?1 AND kind = ?2 ORDER BY version DESC")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![service, kind], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
            })
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (v, path, card) = row.map_err(|e| self.err(e))?;
            let card: serde_json::Value = card.and_then(|c| serde_json::from_str(&c).ok()).unwrap_or_default();
            if card.get("promoted").and_then(|p| p.as_bool()) == Some(true) {
                return Ok(Some(RegisteredModel { version: v, path, card }));
            }
        }
        Ok(None)
    }

    fn next_model_version(&self, service: &str, kind: &str) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE service = ?1 AND kind = ?2",
                params![service, kind],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    fn record_run(&mut self, run: &RunRecord<'_>) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO runs (kind, started, finished, params, metrics) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run.kind, run.started, run.finished, run.params.to_string(), run.metrics.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    fn prune_history(&mut self, cutoff: f64) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM pss_history WHERE timestamp < ?1", params![cutoff])
            .map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    fn services(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM services UNION SELECT service FROM incidents ORDER BY 1")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn incidents(&self, service: Option<&str>) -> Result<Vec<Incident>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, service, start, \"end\", severity, title FROM incidents \
                 WHERE ?1 IS NULL OR service = ?1 ORDER BY service, start",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![service], |r| {
                Ok(Incident {
                    id: r.get(0)?,
                    service: r.get(1)?,
                    start: r.get(2)?,
                    end: r.get(3)?,
                    severity: r.get(4)?,
                    title: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn add_incidents(&mut self, incidents: &[Incident]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |e| StoreError::Sqlite { path: path.clone(), source: e };
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO incidents (id, service, start, \"end\", severity, title) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(err)?;
            for i in incidents {
                stmt.execute(params![i.id, i.service, i.start, i.end, i.severity, i.title]).map_err(|e| match e {
                    rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                        StoreError::Invalid(format!("incident id '{}' already exists in {}", i.id, path))
                    }
                    other => StoreError::Sqlite { path: path.clone(), source: other },
                })?;
            }
        }
        tx.commit().map_err(err)
    }

    fn remove_incident(&mut self, id: &str) -> Result<bool, StoreError> {
        let n = self.conn.execute("DELETE FROM incidents WHERE id = ?1", params![id]).map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    fn save_history(&mut self, row: &HistoryRow) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO pss_history (timestamp, pss, ts, ms, ev, be, cc, meta) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    row.timestamp,
                    row.pss,
                    row.sub.timing_stability,
                    row.sub.memory_stability,
                    row.sub.error_volatility,
                    row.sub.branching_entropy,
                    row.sub.concurrency_chaos,
                    row.meta.to_string()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn history(&self, limit: usize, since: Option<f64>, service: Option<&str>) -> Result<Vec<HistoryRow>, StoreError> {
        let cutoff = since.unwrap_or(f64::MIN);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, timestamp, pss, ts, ms, ev, be, cc, meta FROM pss_history \
                 WHERE timestamp >= ?1 AND (?2 IS NULL OR json_extract(meta, '$.service') = ?2) \
                 ORDER BY timestamp DESC LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![cutoff, service, limit as i64], |r| {
                let meta: Option<String> = r.get(8)?;
                Ok(HistoryRow {
                    id: r.get(0)?,
                    timestamp: r.get::<_, Option<f64>>(1)?.unwrap_or(0.0),
                    pss: r.get::<_, Option<f64>>(2)?.unwrap_or(0.0),
                    sub: SubScores::from_array([
                        r.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
                        r.get::<_, Option<f64>>(4)?.unwrap_or(0.0),
                        r.get::<_, Option<f64>>(5)?.unwrap_or(0.0),
                        r.get::<_, Option<f64>>(6)?.unwrap_or(0.0),
                        r.get::<_, Option<f64>>(7)?.unwrap_or(0.0),
                    ]),
                    // pypss: unreadable meta becomes {}.
                    meta: meta.and_then(|m| serde_json::from_str(&m).ok()).unwrap_or_else(|| serde_json::json!({})),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn prune(&mut self, cutoff: f64) -> Result<PruneReport, StoreError> {
        let path = self.path.clone();
        let err = |e| StoreError::Sqlite { path: path.clone(), source: e };
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
        let traces = tx.execute("DELETE FROM traces WHERE timestamp < ?1", params![cutoff]).map_err(err)?;
        let windows = tx.execute("DELETE FROM windows WHERE start + seconds <= ?1", params![cutoff]).map_err(err)?;
        let history = tx.execute("DELETE FROM pss_history WHERE timestamp < ?1", params![cutoff]).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(PruneReport { traces: traces as u64, windows: windows as u64, history: history as u64 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScoreParams;
    use crate::ingest::{ingest_source, IngestOptions};
    use crate::trace::Source;

    #[test]
    fn silences_and_the_outbox() {
        use crate::store::{NewNotification, Silence};
        let (_d, mut s) = store();
        s.add_silence(&Silence { service: "shop".into(), rule: Some("pss".into()), until: 100.0 }).unwrap();
        s.add_silence(&Silence { service: "cart".into(), rule: None, until: 50.0 }).unwrap();
        let active = s.silences(60.0).unwrap();
        assert_eq!(active.len(), 1, "the cart silence ended at 50");
        assert!(active[0].covers("shop", &["ts", "pss"]) && !active[0].covers("shop", &["ts"]));
        assert!(!active[0].covers("cart", &["pss"]));
        let n = |key: &str| NewNotification {
            key: key.into(),
            created: 10.0,
            channel: "webhook".into(),
            body: serde_json::json!({"k": key}),
        };
        assert_eq!(s.enqueue_notifications(&[n("a"), n("b")]).unwrap(), 2);
        assert_eq!(s.enqueue_notifications(&[n("a")]).unwrap(), 0, "recorded once");
        let due = s.due_notifications(10.0, 10).unwrap();
        assert_eq!(due.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        s.notification_sent(due[0].id, 11.0).unwrap();
        s.notification_failed(due[1].id, 20.0, "HTTP 503").unwrap();
        assert!(s.due_notifications(15.0, 10).unwrap().is_empty(), "b waits for its backoff, a is sent");
        assert_eq!(s.due_notifications(20.0, 10).unwrap()[0].attempts, 1);
        let all = s.notifications(0.0).unwrap();
        assert_eq!((all[0].sent, all[1].last_error.as_deref()), (Some(11.0), Some("HTTP 503")));
    }

    #[test]
    fn a_new_database_and_its_journal_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, mut s) = store();
        s.add_incidents(&[]).unwrap();
        let mode = |f: &str| std::fs::metadata(dir.path().join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("h.db"), 0o600);
        assert_eq!(mode("h.db-wal"), 0o600);
    }

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("h.db")).unwrap();
        (dir, s)
    }

    /// A small history: the shipped sample traces as service `shop`.
    fn with_sample(store: &mut SqliteStore, seconds: f64) {
        let opts = IngestOptions {
            service: "shop".into(),
            window_seconds: seconds,
            min_window_traces: 5,
            params: ScoreParams::default(),
            unknown_module: "unknown".into(),
            custom: Default::default(),
        };
        let f = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample-traces.json");
        ingest_source(store, &Source::Path(f), &opts, &|_| {}).unwrap();
    }

    fn incident(id: &str, service: &str, start: f64, end: f64) -> Incident {
        Incident { id: id.into(), service: service.into(), start, end, severity: "sev2".into(), title: "t".into() }
    }

    #[test]
    fn windows_lengths_traces_and_labels() {
        let (_d, mut s) = store();
        assert!(s.window_lengths(None).unwrap().is_empty());
        with_sample(&mut s, 60.0);
        assert_eq!(s.window_lengths(None).unwrap(), [60.0]);
        assert_eq!(s.window_lengths(Some("other")).unwrap(), Vec::<f64>::new());
        let ws = s.windows("shop", None, 60.0, None, None).unwrap();
        assert!(ws.len() > 3 && ws.windows(2).all(|p| p[0].window.start < p[1].window.start), "time order");
        let mid = ws[ws.len() / 2].window.start;
        s.add_incidents(&[incident("i-1", "shop", mid + 1.0, mid + 2.0)]).unwrap();
        let ws = s.windows("shop", None, 60.0, None, None).unwrap();
        let labeled: Vec<_> = ws.iter().filter(|w| w.incident.is_some()).map(|w| w.window.start).collect();
        assert_eq!(labeled, [mid], "exactly the overlapping window is labeled");
        let rows = s.trace_rows("shop", None, None).unwrap();
        assert!(rows.len() > 1000 && rows.windows(2).all(|p| p[0].timestamp <= p[1].timestamp));
        let slice = s.trace_slice("shop", mid, mid + 60.0, "unknown").unwrap();
        assert!(!slice.columns.is_empty());
        assert!(slice.slowest.is_some_and(|t| t.duration > 0.0));
        let latest = s.latest_windows(60.0).unwrap();
        assert!(latest.iter().any(|w| w.module.is_empty() && w.start == ws.last().unwrap().window.start));
        assert_eq!(s.services().unwrap(), ["shop"]);
    }

    #[test]
    fn incidents_are_all_or_nothing_and_named_on_conflict() {
        let (_d, mut s) = store();
        s.add_incidents(&[incident("a", "x", 0.0, 10.0)]).unwrap();
        let e = s.add_incidents(&[incident("b", "x", 20.0, 30.0), incident("a", "x", 40.0, 50.0)]).unwrap_err();
        assert!(e.to_string().contains("'a' already exists"), "{e}");
        assert_eq!(s.incidents(None).unwrap().len(), 1, "the batch was rolled back");
        assert_eq!(s.services().unwrap(), ["x"], "a service with incidents only is listed");
        assert!(s.remove_incident("a").unwrap());
        assert!(!s.remove_incident("a").unwrap());
    }

    #[test]
    fn models_runs_and_follow_offsets() {
        let (_d, mut s) = store();
        assert_eq!(s.next_model_version("shop", "k").unwrap(), 1);
        let card = |promoted: bool| serde_json::json!({ "promoted": promoted });
        assert_eq!(s.register_model("shop", "k", "/m/v1.json", &card(true), 10.0).unwrap(), 1);
        assert_eq!(s.register_model("shop", "k", "/m/v2.json", &card(false), 20.0).unwrap(), 2);
        let active = s.active_model("shop", "k").unwrap().unwrap();
        assert_eq!((active.version, active.path.as_str()), (1, "/m/v1.json"), "the latest promoted one");
        assert!(s.active_model("shop", "other").unwrap().is_none());
        let run = RunRecord {
            kind: "tune",
            started: 1.0,
            finished: 2.0,
            params: &serde_json::json!({"a": 1}),
            metrics: &serde_json::json!({}),
        };
        let (a, b) = (s.record_run(&run).unwrap(), s.record_run(&run).unwrap());
        assert!(b > a);
        assert_eq!(s.follow_offset("/f").unwrap(), None);
        let at = FollowOffset { identity: "1:2".into(), offset: 99 };
        s.set_follow_offset("/f", &at).unwrap();
        s.set_follow_offset("/f", &FollowOffset { offset: 120, ..at }).unwrap();
        assert_eq!(s.follow_offset("/f").unwrap().map(|o| o.offset), Some(120));
    }

    #[test]
    fn history_since_and_pruning() {
        let (_d, mut s) = store();
        for (t, svc) in [(100.0, "a"), (200.0, "b"), (300.0, "a")] {
            let row = HistoryRow {
                id: 0,
                timestamp: t,
                pss: t / 10.0,
                sub: crate::domain::SubScores::from_array([1.0; 5]),
                meta: serde_json::json!({ "service": svc }),
            };
            s.save_history(&row).unwrap();
        }
        let all = s.history(10, None, None).unwrap();
        assert_eq!(all.iter().map(|h| h.timestamp).collect::<Vec<_>>(), [300.0, 200.0, 100.0], "latest first");
        assert_eq!(s.history(10, Some(150.0), None).unwrap().len(), 2);
        assert_eq!(s.history(10, None, Some("a")).unwrap().len(), 2);
        assert_eq!(s.history(1, None, None).unwrap().len(), 1);
        assert_eq!(s.prune_history(250.0).unwrap(), 2);
        assert_eq!(s.prune(1e12).unwrap().history, 1);
    }

    #[test]
    fn a_directory_is_not_a_database_and_newer_schemas_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = SqliteStore::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let p = dir.path().join("h.db");
        drop(SqliteStore::open(&p).unwrap());
        let c = Connection::open(&p).unwrap();
        c.execute("UPDATE _meta SET value = '99' WHERE key = 'pss_schema'", []).unwrap();
        drop(c);
        let e = SqliteStore::open(&p).err().unwrap().to_string();
        assert!(e.contains("newer pss") && e.contains("99"), "{e}");
    }
}
