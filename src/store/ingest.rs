//! Ingest: a trace file into the history, in one transaction per file.
//!
//! Traces are inserted as they are read (no whole-file buffer); duplicates
//! (same `trace_id`, or the same content where there is none) are ignored, so
//! re-ingesting a file adds nothing. The windows the new traces touch are then
//! recomputed from everything stored for them. A bad file rolls back: nothing
//! of it remains.

use rusqlite::{params, Transaction};
use rustc_hash::FxHashMap;
use serde::Serialize;

use super::sqlite::SqliteStore;
use super::StoreError;
use crate::config::ScoreParams;
use crate::domain::Window;
use crate::pystats::Num;
use crate::trace::columns::{classify, Classified, Row};
use crate::trace::json::Scalar;
use crate::trace::{read_source, ColumnOptions, RawTrace, Skipped, Source, Stage, TraceColumns, TraceSink};
use crate::window::{score_window, window_start};

/// How to ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub service: String,
    pub window_seconds: f64,
    pub min_window_traces: u64,
    /// Parameters windows are scored with (pypss defaults unless configured).
    pub params: ScoreParams,
    pub unknown_module: String,
}

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
    range: Option<(f64, f64)>,
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
                let v = |k: usize| (r.stage as usize > k).then_some(r.values[k]);
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
        ])?;
        if n == 0 {
            self.report.duplicates += 1;
            return Ok(());
        }
        self.report.inserted += 1;
        match ts {
            Some(ts) => {
                self.range = Some(match self.range {
                    None => (ts, ts),
                    Some((a, b)) => (a.min(ts), b.max(ts)),
                })
            }
            None => self.report.no_timestamp += 1,
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

fn service_id(tx: &Transaction<'_>, name: &str) -> rusqlite::Result<i64> {
    tx.execute("INSERT OR IGNORE INTO services (name) VALUES (?1)", params![name])?;
    tx.query_row("SELECT id FROM services WHERE name = ?1", params![name], |r| r.get(0))
}

/// Ingests one source into the store; `progress` is called with the number
/// of traces read so far, now and then.
pub fn ingest_source(
    store: &mut SqliteStore,
    src: &Source,
    opts: &IngestOptions,
    progress: &dyn Fn(u64),
) -> Result<IngestReport, StoreError> {
    let path = store.path.clone();
    let err = |e| StoreError::Sqlite { path: path.clone(), source: e };
    let tx = store.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
    let sid = service_id(&tx, &opts.service).map_err(err)?;
    let (mut report, range) =
        insert_traces(&tx, &path, sid, &opts.unknown_module, &src.display(), progress, &mut |sink| {
            read_source(src, sink).map(|_| ())
        })?;
    if let Some((lo, hi)) = range {
        report.windows = recompute_windows(&tx, sid, &opts.service, lo, hi, opts).map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(report)
}

/// In-memory trace batches (JSON array, `{"traces": [...]}` or JSON Lines),
/// each of one service, inserted in **one** transaction: all of them or, on
/// the first bad one, none (its error names it). Windows are not recomputed
/// here — the caller does that for the returned time ranges when it likes
/// (`pss serve` does it on a timer, so a busy window is not rescored per batch).
/// Returns each batch's report and, per service, the time range touched.
#[allow(clippy::type_complexity)]
pub fn insert_batches(
    store: &mut SqliteStore,
    batches: &[(&str, &str, &[u8])],
    unknown_module: &str,
) -> Result<(Vec<IngestReport>, Vec<(String, f64, f64)>), StoreError> {
    let path = store.path.clone();
    let err = |e| StoreError::Sqlite { path: path.clone(), source: e };
    let tx = store.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
    let mut reports = Vec::with_capacity(batches.len());
    let mut ranges: Vec<(String, f64, f64)> = Vec::new();
    for &(service, name, bytes) in batches {
        let sid = service_id(&tx, service).map_err(err)?;
        let (report, range) = insert_traces(&tx, &path, sid, unknown_module, name, &|_| {}, &mut |sink| {
            crate::trace::read_bytes(name, bytes, sink).map(|_| ())
        })?;
        if let Some((lo, hi)) = range {
            match ranges.iter_mut().find(|r| r.0 == service) {
                Some(r) => {
                    r.1 = r.1.min(lo);
                    r.2 = r.2.max(hi);
                }
                None => ranges.push((service.to_string(), lo, hi)),
            }
        }
        reports.push(report);
    }
    tx.commit().map_err(err)?;
    Ok((reports, ranges))
}

/// Recomputes a service's windows over `[lo, hi]` in one transaction.
pub fn recompute_range(store: &mut SqliteStore, lo: f64, hi: f64, opts: &IngestOptions) -> Result<u64, StoreError> {
    let path = store.path.clone();
    let err = |e| StoreError::Sqlite { path: path.clone(), source: e };
    let tx = store.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
    let sid = service_id(&tx, &opts.service).map_err(err)?;
    let n = recompute_windows(&tx, sid, &opts.service, lo, hi, opts).map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(n)
}

type Reader<'a> = dyn FnMut(&mut dyn TraceSink) -> Result<(), crate::trace::ReadError> + 'a;

/// Reads traces with `read` into the open transaction for service `sid`.
fn insert_traces(
    tx: &Transaction<'_>,
    path: &str,
    sid: i64,
    unknown_module: &str,
    source: &str,
    progress: &dyn Fn(u64),
    read: &mut Reader<'_>,
) -> Result<(IngestReport, Option<(f64, f64)>), StoreError> {
    let err = |e| StoreError::Sqlite { path: path.to_string(), source: e };
    let stmt = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO traces (service_id, trace_key, timestamp, module, name, duration, cpu_time, \
             wait_time, memory, memory_diff, error, exception_type, exception_message, branch_tag, stage, \
             system_metric, lag, active_tasks, churn_rate, filename, lineno) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
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
    read(&mut sink)?; // an error drops the transaction: nothing stays
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

/// Recomputes every window (service-level and per module) overlapping
/// `[lo, hi]` from the stored traces; returns how many were written.
pub(crate) fn recompute_windows(
    tx: &Transaction<'_>,
    sid: i64,
    service: &str,
    lo: f64,
    hi: f64,
    opts: &IngestOptions,
) -> rusqlite::Result<u64> {
    let w = opts.window_seconds;
    let (from, to) = (window_start(lo, w), window_start(hi, w) + w);
    tx.execute(
        "DELETE FROM windows WHERE service_id = ?1 AND seconds = ?2 AND start >= ?3 AND start < ?4",
        params![sid, w, from, to],
    )?;
    let values = Window::SCORE_COLUMNS.len() + crate::domain::Features::COUNT;
    let mut insert = tx.prepare(&format!(
        "INSERT INTO windows (service_id, module, seconds, start, {}) VALUES (?1, ?2, ?3, ?4, {})",
        Window::value_columns(),
        (5..5 + values).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
    ))?;
    let mut written = 0u64;
    let mut emit = |win: &Window| -> rusqlite::Result<()> {
        let f = win.features.values();
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
        vals.extend(f.iter().map(|&x| rusqlite::types::Value::from(x)));
        insert.execute(rusqlite::params_from_iter(vals))?;
        written += 1;
        Ok(())
    };
    let mut q = tx.prepare(
        "SELECT timestamp, module, duration, wait_time, memory, error, exception_type, branch_tag, stage, \
         system_metric, lag FROM traces WHERE service_id = ?1 AND timestamp >= ?2 AND timestamp < ?3 \
         ORDER BY timestamp, id",
    )?;
    let mut rows = q.query(params![sid, from, to])?;
    let keep = ColumnOptions { timestamps: true, names: false, memory_diff: false };
    let mut current: Option<f64> = None;
    let mut whole = TraceColumns::with_options(&opts.unknown_module, keep);
    let mut per_module: FxHashMap<String, TraceColumns> = FxHashMap::default();
    let flush = |start: f64,
                 whole: &mut TraceColumns,
                 per_module: &mut FxHashMap<String, TraceColumns>,
                 emit: &mut dyn FnMut(&Window) -> rusqlite::Result<()>|
     -> rusqlite::Result<()> {
        emit(&score_window(service, "", start, w, whole, &opts.params, opts.min_window_traces))?;
        let mut mods: Vec<_> = per_module.drain().collect();
        mods.sort_by(|a, b| a.0.cmp(&b.0));
        for (m, c) in mods {
            emit(&score_window(service, &m, start, w, &c, &opts.params, opts.min_window_traces))?;
        }
        *whole = TraceColumns::with_options(&opts.unknown_module, keep);
        Ok(())
    };
    while let Some(r) = rows.next()? {
        let ts: f64 = r.get(0)?;
        let start = window_start(ts, w);
        if current.is_some_and(|c| c != start) {
            flush(current.unwrap_or(start), &mut whole, &mut per_module, &mut emit)?;
        }
        current = Some(start);
        let module: String = r.get(1)?;
        let system: i64 = r.get(9)?;
        let cols_for = |c: &mut TraceColumns, row: Option<&Row<'_>>, lag: Option<f64>| {
            let mid = c.intern_module(&module);
            match row {
                Some(row) => c.push_row_values(row, mid, crate::trace::NONE),
                None => c.push_system_values(mid, lag.map(Num::Float), ts),
            }
        };
        let mc =
            per_module.entry(module.clone()).or_insert_with(|| TraceColumns::with_options(&opts.unknown_module, keep));
        if system != 0 {
            let lag: Option<f64> = r.get(10)?;
            cols_for(&mut whole, None, lag);
            cols_for(mc, None, lag);
            continue;
        }
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
            timestamp: ts,
        };
        cols_for(&mut whole, Some(&row), None);
        cols_for(mc, Some(&row), None);
    }
    if let Some(start) = current {
        flush(start, &mut whole, &mut per_module, &mut emit)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScoreParams;
    use crate::score::rescore::rescore;
    use crate::store::{SqliteStore, Store};
    use crate::trace::Source;

    /// Every stored window of the shipped history, re-scored from features
    /// under the default parameters, equals the score ingest computed from its
    /// traces (the two paths share the formula layer; this holds them equal).
    #[test]
    fn rescoring_from_features_equals_scoring_traces() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/history/payments.jsonl.gz");
        let opts = IngestOptions {
            service: "payments".into(),
            window_seconds: 300.0,
            min_window_traces: 10,
            params: ScoreParams::default(),
            unknown_module: "unknown".into(),
        };
        ingest_source(&mut store, &Source::Path(file), &opts, &|_| {}).unwrap();
        let mut checked = 0;
        for module in [None, Some("payments.db"), Some("payments.runtime"), Some("payments.cache")] {
            for lw in store.windows("payments", module, 300.0, None, None).unwrap() {
                let w = &lw.window;
                let r = rescore(w, &ScoreParams::default());
                assert_eq!(r.pss, w.pss, "pss at {} {:?}", w.start, module);
                assert_eq!(r.breakdown, w.sub, "breakdown at {} {:?}", w.start, module);
                checked += 1;
            }
        }
        assert!(checked > 1500, "{checked}");
    }
}
