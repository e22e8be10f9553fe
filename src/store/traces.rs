//! Traces into SQLite and back: inserting batches of traces (one
//! transaction for all of them; duplicates — the same `trace_id`, or the same
//! content where there is none — ignored), scanning them in time order for
//! window scoring, and replacing a range of windows. Scoring itself is above
//! the store (the `ingest` module).

use rusqlite::{params, Transaction};
use serde::Serialize;

use super::sqlite::SqliteStore;
use super::{InsertedTraces, StoreError, StoredTrace, TimeRange, TraceBatch};
use crate::domain::Window;
use crate::pystats::Num;
use crate::trace::columns::{classify, Classified, Row};
use crate::trace::json::Scalar;
use crate::trace::{RawTrace, Skipped, Stage, TraceSink};

/// What one ingest did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    pub source: String,
    pub inserted: u64,
    pub duplicates: u64,
    pub skipped: Skipped,
    /// Traces stored without a usable timestamp (not in any window).
    pub no_timestamp: u64,
    pub windows: u64,
}

struct Sink<'t> {
    stmt: rusqlite::CachedStatement<'t>,
    service_id: i64,
    unknown_module: String,
    report: IngestReport,
    range: Option<TimeRange>,
    error: Option<rusqlite::Error>,
    reset_seen: bool,
    progress: &'t dyn Fn(u64),
    seen: u64,
}

fn text(s: &Option<Scalar<'_>>, default: &str) -> String {
    match s {
        None => default.to_string(),
        Some(Scalar::Str(v)) => v.to_string(),
        Some(Scalar::Null) => "None".into(),
        Some(Scalar::Bool(b)) => if *b { "True" } else { "False" }.into(),
        Some(Scalar::Int(t)) => t.to_string(),
        Some(Scalar::Float(f)) => format!("{f:?}"),
        Some(other) => other.kind().to_string(),
    }
}

fn num(s: &Option<Scalar<'_>>) -> Option<f64> {
    s.as_ref().and_then(|v| crate::trace::columns::py_float(v).ok()).filter(|f| f.is_finite())
}

/// The dedupe key: `trace_id`, or a hash of the trace's content.
fn trace_key(t: &RawTrace<'_>) -> String {
    match &t.trace_id {
        Some(Scalar::Str(s)) if !s.is_empty() => format!("id:{s}"),
        Some(Scalar::Int(s)) => format!("id:{s}"),
        _ => {
            let content = format!(
                "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
                t.name,
                t.module,
                t.filename,
                t.lineno,
                t.duration,
                t.cpu_time,
                t.wait_time,
                t.memory,
                t.memory_diff,
                t.error,
                t.branch_tag,
                t.timestamp,
                t.metadata
            );
            format!("h:{:032x}", xxhash_rust::xxh3::xxh3_128(content.as_bytes()))
        }
    }
}

/// A system trace's other numeric metadata members as a JSON object
/// (`{"kafka_lag": 120}`), for custom metrics; `None` when it has none.
fn system_metadata(meta: Option<&crate::trace::json::Metadata<'_>>) -> Option<String> {
    let obj: serde_json::Map<String, serde_json::Value> = crate::trace::columns::metadata_numbers(meta?)
        .into_iter()
        .map(|(k, f)| (k.into_string(), serde_json::Value::from(f)))
        .collect();
    (!obj.is_empty()).then(|| serde_json::Value::Object(obj).to_string())
}

impl Sink<'_> {
    fn insert(&mut self, t: &RawTrace<'_>) -> rusqlite::Result<()> {
        let class = classify(t);
        let (row, system, lag, ts) = match &class {
            Classified::Skip(r) => {
                self.report.skipped.count(*r);
                return Ok(());
            }
            Classified::System { lag, timestamp } => (None, true, lag.map(Num::as_f64), *timestamp),
            Classified::Row(r) => (Some(r), false, None, r.timestamp),
        };
        if let Some(r) = row {
            if r.stage != Stage::Complete {
                self.report.skipped.unconvertible += 1;
            }
        }
        let ts = ts.is_finite().then_some(ts);
        let meta = t.metadata.as_ref();
        let active = meta.and_then(|m| num(&m.active_tasks));
        let churn = meta.and_then(|m| num(&m.churn_rate));
        let stage = row.map(|r| r.stage as i64).unwrap_or(Stage::Complete as i64);
        let (d, m, w) = match row {
            Some(r) => {
                // A reading the trace does not carry is stored as NULL (read
                // back as pypss's 0, and counted as not measured).
                let present = [true, t.memory.is_some(), t.wait_time.is_some()];
                let v = |k: usize| (r.stage as usize > k && present[k]).then_some(r.values[k]);
                (v(0), v(1), v(2))
            }
            None => (None, None, None),
        };
        let n = self.stmt.execute(params![
            self.service_id,
            trace_key(t),
            ts,
            text(&t.module, &self.unknown_module),
            text(&t.name, &self.unknown_module),
            d,
            num(&t.cpu_time),
            w,
            m,
            num(&t.memory_diff),
            row.is_some_and(|r: &Row<'_>| r.error) as i64,
            row.and_then(|r| r.exception_type),
            row.and_then(|r| r.exception_message).map(|s| s.chars().take(1000).collect::<String>()),
            row.and_then(|r| r.branch_tag),
            stage,
            system as i64,
            lag,
            active,
            churn,
            match &t.filename {
                Some(Scalar::Str(f)) => Some(f.to_string()),
                _ => None,
            },
            num(&t.lineno).map(|l| l as i64),
            system.then(|| system_metadata(meta)).flatten(),
        ])?;
        if n == 0 {
            self.report.duplicates += 1;
        } else {
            self.report.inserted += 1;
            if ts.is_none() {
                self.report.no_timestamp += 1;
            }
        }
        // Duplicates widen the range too: re-ingesting a file whose windows
        // were never computed (a crash after the insert) computes them.
        if let Some(ts) = ts {
            self.range = Some(self.range.map_or(TimeRange { from: ts, to: ts }, |r| r.including(ts)));
        }
        Ok(())
    }
}

impl TraceSink for Sink<'_> {
    fn trace(&mut self, t: &RawTrace<'_>) {
        self.seen += 1;
        if self.seen.is_multiple_of(65536) {
            (self.progress)(self.seen);
        }
        if self.error.is_none() {
            if let Err(e) = self.insert(t) {
                self.error = Some(e);
            }
        }
    }
    fn not_object(&mut self) {
        self.report.skipped.not_object += 1;
    }
    fn reset(&mut self) {
        self.reset_seen = true;
    }
}

impl SqliteStore {
    /// [`super::Store::insert_traces`].
    pub(crate) fn insert_trace_batches(
        &mut self,
        batches: Vec<TraceBatch<'_>>,
        unknown_module: &str,
        progress: &dyn Fn(u64),
    ) -> Result<InsertedTraces, StoreError> {
        let path = self.path.clone();
        let err = |e| StoreError::Sqlite { path: path.clone(), source: e };
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
        let mut out = InsertedTraces::default();
        for mut b in batches {
            let sid = service_id(&tx, b.service).map_err(err)?;
            let (report, range) = insert_batch(&tx, &path, sid, unknown_module, &b.source, progress, &mut b.read)?;
            if let Some(r) = range {
                out.touch(b.service, r);
            }
            out.reports.push(report);
        }
        tx.commit().map_err(err)?; // an error before this drops the transaction: nothing stays
        Ok(out)
    }

    /// [`super::Store::scan_traces`].
    pub(crate) fn scan_stored_traces(
        &self,
        service: &str,
        range: TimeRange,
        visit: &mut dyn FnMut(StoredTrace<'_>),
    ) -> Result<(), StoreError> {
        let err = |e| StoreError::Sqlite { path: self.path.clone(), source: e };
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT t.timestamp, t.module, t.duration, t.wait_time, t.memory, t.error, t.exception_type, \
                 t.branch_tag, t.stage, t.system_metric, t.lag, t.name, t.memory_diff, t.metadata \
                 FROM traces t JOIN services s ON s.id = t.service_id \
                 WHERE s.name = ?1 AND t.timestamp >= ?2 AND t.timestamp < ?3 ORDER BY t.timestamp, t.id",
            )
            .map_err(err)?;
        let mut rows = q.query(params![service, range.from, range.to]).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            let mut scan = || -> rusqlite::Result<()> {
                let timestamp: f64 = r.get(0)?;
                let module: String = r.get(1)?;
                if r.get::<_, i64>(9)? != 0 {
                    let metadata: Option<String> = r.get(13)?;
                    visit(StoredTrace::System {
                        module: &module,
                        timestamp,
                        lag: r.get(10)?,
                        metadata: metadata.as_deref(),
                    });
                    return Ok(());
                }
                // Borrowed from the row: no allocation per trace on the
                // windows' hot path (names are kept only for custom metrics).
                let name = r.get_ref(11)?.as_str().map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(11, rusqlite::types::Type::Text, Box::new(e))
                })?;
                let stage = match r.get::<_, i64>(8)? {
                    0 => Stage::Counted,
                    1 => Stage::Duration,
                    2 => Stage::Memory,
                    _ => Stage::Complete,
                };
                let exception_type: Option<String> = r.get(6)?;
                let branch_tag: Option<String> = r.get(7)?;
                let row = Row {
                    values: [
                        r.get::<_, Option<f64>>(2)?.unwrap_or(0.0),
                        r.get::<_, Option<f64>>(4)?.unwrap_or(0.0),
                        r.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
                    ],
                    stage,
                    error: r.get::<_, i64>(5)? != 0,
                    branch_tag: branch_tag.as_deref(),
                    exception_type: exception_type.as_deref(),
                    exception_message: None,
                    timestamp,
                };
                visit(StoredTrace::Regular { module: &module, name, memory_diff: r.get(12)?, row });
                Ok(())
            };
            scan().map_err(err)?;
        }
        Ok(())
    }

    /// [`super::Store::replace_windows`].
    pub(crate) fn replace_window_range(
        &mut self,
        service: &str,
        seconds: f64,
        range: TimeRange,
        windows: &[Window],
    ) -> Result<u64, StoreError> {
        let path = self.path.clone();
        let err = |e| StoreError::Sqlite { path: path.clone(), source: e };
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
        let sid = service_id(&tx, service).map_err(err)?;
        let written = write_windows(&tx, sid, seconds, range, windows).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(written)
    }
}

fn write_windows(
    tx: &Transaction<'_>,
    sid: i64,
    seconds: f64,
    range: TimeRange,
    windows: &[Window],
) -> rusqlite::Result<u64> {
    tx.execute(
        "DELETE FROM windows WHERE service_id = ?1 AND seconds = ?2 AND start >= ?3 AND start < ?4",
        params![sid, seconds, range.from, range.to],
    )?;
    let values = Window::SCORE_COLUMNS.len() + crate::domain::Features::COUNT + 1;
    let mut insert = tx.prepare(&format!(
        "INSERT INTO windows (service_id, module, seconds, start, {}) VALUES (?1, ?2, ?3, ?4, {})",
        Window::value_columns(),
        (5..5 + values).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
    ))?;
    for win in windows {
        let mut vals: Vec<rusqlite::types::Value> = vec![
            sid.into(),
            win.module.clone().into(),
            win.seconds.into(),
            win.start.into(),
            (win.traces as i64).into(),
            (win.errors as i64).into(),
            (win.too_small as i64).into(),
            win.pss.into(),
        ];
        vals.extend(win.sub.to_array().iter().map(|&x| rusqlite::types::Value::from(x)));
        vals.extend(win.features.values().iter().map(|&x| rusqlite::types::Value::from(x)));
        vals.push(match win.custom.is_empty() {
            true => rusqlite::types::Value::Null,
            false => serde_json::to_string(&win.custom).expect("plain values serialize").into(),
        });
        insert.execute(rusqlite::params_from_iter(vals))?;
    }
    Ok(windows.len() as u64)
}

fn service_id(tx: &Transaction<'_>, name: &str) -> rusqlite::Result<i64> {
    tx.execute("INSERT OR IGNORE INTO services (name) VALUES (?1)", params![name])?;
    tx.query_row("SELECT id FROM services WHERE name = ?1", params![name], |r| r.get(0))
}

/// Reads one batch with `read` into the open transaction for service `sid`.
fn insert_batch(
    tx: &Transaction<'_>,
    path: &str,
    sid: i64,
    unknown_module: &str,
    source: &str,
    progress: &dyn Fn(u64),
    read: &mut super::ReadTraces<'_>,
) -> Result<(IngestReport, Option<TimeRange>), StoreError> {
    let err = |e| StoreError::Sqlite { path: path.to_string(), source: e };
    let stmt = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO traces (service_id, trace_key, timestamp, module, name, duration, cpu_time, \
             wait_time, memory, memory_diff, error, exception_type, exception_message, branch_tag, stage, \
             system_metric, lag, active_tasks, churn_rate, filename, lineno, metadata) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
        )
        .map_err(err)?;
    let mut sink = Sink {
        stmt,
        service_id: sid,
        unknown_module: unknown_module.to_string(),
        report: IngestReport { source: source.to_string(), ..Default::default() },
        range: None,
        error: None,
        reset_seen: false,
        progress,
        seen: 0,
    };
    read(&mut sink)?;
    if let Some(e) = sink.error {
        return Err(err(e));
    }
    if sink.reset_seen {
        return Err(StoreError::Invalid(format!(
            "{source}: the top-level object has more than one \"traces\" key; pss will not guess which to ingest"
        )));
    }
    Ok((sink.report, sink.range))
}
