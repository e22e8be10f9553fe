//! Ingest: traces into the history, then the windows they touch scored
//! again from everything stored for them. Storage is the [`Store`]'s
//! business; scoring windows is this module's, above any store, so every
//! store (SQLite today) gets the same windows.
//!
//! A file's traces go in one transaction (a bad file leaves nothing); its
//! windows are then recomputed in bounded chunks. Should that stop half-way
//! (a crash), ingesting the file again recomputes them: the touched range
//! covers duplicates too.

use rustc_hash::FxHashMap;

use crate::config::ScoreParams;
use crate::domain::Window;
use crate::pystats::Num;
use crate::store::{IngestReport, InsertedTraces, Store, StoreError, StoredTrace, TimeRange, TraceBatch};
use crate::trace::{read_source, ColumnOptions, Source, TraceColumns};
use crate::window::{score_window, window_start, Scoring};

/// How to ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub service: String,
    pub window_seconds: f64,
    pub min_window_traces: u64,
    /// Parameters windows are scored with (pypss defaults unless configured).
    pub params: ScoreParams,
    pub unknown_module: String,
    /// Custom metrics windows are scored with too (none unless configured).
    pub custom: crate::score::custom::CustomMetrics,
}

impl IngestOptions {
    /// What windows are scored with.
    pub fn scoring(&self) -> Scoring<'_> {
        Scoring { params: &self.params, min_traces: self.min_window_traces, custom: &self.custom }
    }
}

/// Windows scored per store transaction when recomputing (bounds memory on
/// a long file).
const WINDOWS_PER_CHUNK: f64 = 512.0;

/// Ingests one source into the store and recomputes the windows it touched;
/// `progress` is called with the number of traces read so far, now and then.
pub fn ingest_source(
    store: &mut dyn Store,
    src: &Source,
    opts: &IngestOptions,
    progress: &dyn Fn(u64),
) -> Result<IngestReport, StoreError> {
    let batch = TraceBatch {
        service: &opts.service,
        source: src.display(),
        read: Box::new(|sink| read_source(src, sink).map(|_| ())),
    };
    let InsertedTraces { mut reports, touched } = store.insert_traces(vec![batch], &opts.unknown_module, progress)?;
    let mut report = reports.pop().unwrap_or_default();
    for t in touched {
        report.windows += recompute_windows(store, t.range, opts)?;
    }
    Ok(report)
}

/// Untrusted in-memory trace batches (JSON array, `{"traces": [...]}` or
/// JSON Lines, each possibly gzip, inflating to at most `max_inflated`
/// bytes), inserted in **one** transaction: all of
/// them or, on the first bad one, none (its error names it). Windows are not
/// recomputed — the caller does that for the touched ranges when it likes
/// (`pss serve` does it on a timer, so a busy window is not rescored per batch).
pub fn insert_bodies(
    store: &mut dyn Store,
    bodies: &[TraceBody<'_>],
    unknown_module: &str,
    max_inflated: u64,
) -> Result<InsertedTraces, StoreError> {
    let batches = bodies
        .iter()
        .map(|b| TraceBatch {
            service: b.service,
            source: b.name.to_string(),
            read: Box::new(move |sink| {
                crate::trace::read_untrusted_bytes(b.name, b.bytes, max_inflated, sink).map(|_| ())
            }),
        })
        .collect();
    store.insert_traces(batches, unknown_module, &|_| {})
}

/// A request body of traces for one service.
#[derive(Debug, Clone, Copy)]
pub struct TraceBody<'a> {
    pub service: &'a str,
    /// Where it came from, for messages (`http`, `redis`, a path).
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// Recomputes every window (service-level and per module) of
/// `opts.service` overlapping `range` from the stored traces, in chunks;
/// returns how many were written.
pub fn recompute_windows(store: &mut dyn Store, range: TimeRange, opts: &IngestOptions) -> Result<u64, StoreError> {
    let w = opts.window_seconds;
    let (from, to) = (window_start(range.from, w), window_start(range.to, w) + w);
    let mut written = 0;
    let mut at = from;
    while at < to {
        let end = (at + WINDOWS_PER_CHUNK * w).min(to);
        let chunk = TimeRange { from: at, to: end };
        let mut scorer = Scorer::new(opts);
        store.scan_traces(&opts.service, chunk, &mut |t| scorer.push(t))?;
        let windows = scorer.finish();
        written += store.replace_windows(&opts.service, w, chunk, &windows)?;
        at = end;
    }
    Ok(written)
}

/// Scores a service's stored traces in `range` as one window spanning it
/// (pooling quiet windows); module `""`, length `range.to - range.from`.
pub fn score_span(store: &dyn Store, range: TimeRange, opts: &IngestOptions) -> Result<Window, StoreError> {
    let mut c = TraceColumns::with_options(&opts.unknown_module, window_columns(opts));
    store.scan_traces(&opts.service, range, &mut |t| push_stored(&mut c, &t))?;
    let seconds = range.to - range.from;
    Ok(score_window(&opts.service, "", range.from, seconds, &c, &opts.scoring()))
}

/// The columns window scoring keeps: names and `memory_diff` only for
/// custom metrics, which read them.
fn window_columns(opts: &IngestOptions) -> ColumnOptions {
    let custom = !opts.custom.is_empty();
    ColumnOptions { timestamps: true, names: custom, memory_diff: custom }
}

fn module_and_time<'a>(t: &StoredTrace<'a>) -> (&'a str, f64) {
    match t {
        StoredTrace::Regular { module, row, .. } => (module, row.timestamp),
        StoredTrace::System { module, timestamp, .. } => (module, *timestamp),
    }
}

/// Adds a stored trace to columns, as reading it from a file would (names,
/// `memory_diff` and system metadata when the columns keep them).
fn push_stored(c: &mut TraceColumns, t: &StoredTrace<'_>) {
    let (module, ts) = module_and_time(t);
    let mid = c.intern_module(module);
    match t {
        StoredTrace::Regular { row, name, memory_diff, .. } => {
            let nid = if c.keep.names { c.intern_name(name) } else { crate::trace::NONE };
            if c.keep.memory_diff {
                c.memory_diff.push(memory_diff.unwrap_or(0.0));
            }
            c.push_row_values(row, mid, nid)
        }
        StoredTrace::System { lag, metadata, .. } => {
            c.push_system_values(mid, lag.map(Num::Float), ts);
            if let (Some(m), Some(last)) = (metadata, c.sys_meta.last_mut()) {
                *last = crate::store::stored_metadata(m);
            }
        }
    }
}

/// Groups stored traces (in time order) into windows and scores each, for
/// the service and per module.
struct Scorer<'o> {
    opts: &'o IngestOptions,
    keep: ColumnOptions,
    current: Option<f64>,
    whole: TraceColumns,
    per_module: FxHashMap<String, TraceColumns>,
    out: Vec<Window>,
}

impl<'o> Scorer<'o> {
    fn new(opts: &'o IngestOptions) -> Scorer<'o> {
        let keep = window_columns(opts);
        Scorer {
            opts,
            keep,
            current: None,
            whole: TraceColumns::with_options(&opts.unknown_module, keep),
            per_module: FxHashMap::default(),
            out: Vec::new(),
        }
    }

    fn push(&mut self, t: StoredTrace<'_>) {
        let (module, ts) = module_and_time(&t);
        let start = window_start(ts, self.opts.window_seconds);
        if let Some(c) = self.current.filter(|&c| c != start) {
            self.flush(c);
        }
        self.current = Some(start);
        let (unknown, keep) = (&self.opts.unknown_module, self.keep);
        let mc = self.per_module.entry(module.to_string()).or_insert_with(|| TraceColumns::with_options(unknown, keep));
        push_stored(&mut self.whole, &t);
        push_stored(mc, &t);
    }

    fn flush(&mut self, start: f64) {
        let o = self.opts;
        let (svc, w) = (o.service.as_str(), o.window_seconds);
        let how = o.scoring();
        self.out.push(score_window(svc, "", start, w, &self.whole, &how));
        let mut mods: Vec<_> = self.per_module.drain().collect();
        mods.sort_by(|a, b| a.0.cmp(&b.0));
        for (m, c) in mods {
            self.out.push(score_window(svc, &m, start, w, &c, &how));
        }
        self.whole = TraceColumns::with_options(&o.unknown_module, self.keep);
    }

    fn finish(mut self) -> Vec<Window> {
        if let Some(start) = self.current {
            self.flush(start);
        }
        self.out
    }
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
            custom: Default::default(),
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

    /// With custom metrics configured, a stored window carries each metric's
    /// score and weight, and its PSS is the one scoring the same traces from
    /// the file gives (names, memory_diff and system metadata survive the
    /// store); rescoring from the stored window reproduces it.
    #[test]
    fn windows_carry_custom_metrics_as_scoring_the_file_does() {
        use crate::config::CustomConfig;
        use crate::score::custom::CustomMetrics;
        let dir = tempfile::tempdir().unwrap();
        let mut traces = Vec::new();
        for i in 0..60 {
            let name = if i % 3 == 0 { "db_query" } else { "http_get" };
            traces.push(serde_json::json!({"name": name, "module": format!("m{}", i % 2), "duration": 0.01 + (i % 7) as f64 * 0.01,
                "wait_time": 0.002 * (i % 5) as f64, "memory": 1000 + i, "memory_diff": if i % 4 == 0 { -500 } else { 10 },
                "branch_tag": if i % 2 == 0 { "cache_hit" } else { "cache_miss" }, "timestamp": 1_790_000_000.0 + i as f64 * 0.5}));
            if i % 10 == 0 {
                traces.push(serde_json::json!({"system_metric": true, "module": "m0", "timestamp": 1_790_000_000.0 + i as f64 * 0.5,
                    "metadata": {"lag": 0.01 * (i / 10) as f64, "kafka_lag": 40 * i, "gc_pause_duration": 0.001 * (1 + i / 10) as f64}}));
            }
        }
        let file = dir.path().join("t.json");
        std::fs::write(&file, serde_json::to_vec(&traces).unwrap()).unwrap();
        let cfg = crate::config::Config {
            custom: CustomConfig {
                plugins: ["IO", "DB", "GC", "CACHE", "STARVE", "NET", "KAFKA"].iter().map(|s| s.to_string()).collect(),
                ..CustomConfig::default()
            },
            score: ScoreParams { custom_weights: vec![("DB".into(), 0.4)], ..ScoreParams::default() },
            ..crate::config::Config::default()
        };
        let (custom, _) = CustomMetrics::from_config(&cfg);
        let mut store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
        let opts = IngestOptions {
            service: "s".into(),
            window_seconds: 60.0,
            min_window_traces: 1,
            params: ScoreParams::default(),
            unknown_module: "unknown".into(),
            custom: custom.clone(),
        };
        ingest_source(&mut store, &Source::Path(file.clone()), &opts, &|_| {}).unwrap();
        let keep = ColumnOptions { timestamps: true, names: true, memory_diff: true };
        let (cols, _) = crate::trace::read_all(&[Source::Path(file)], "unknown", keep).unwrap();
        let want = crate::score::score_with(&cols, crate::score::Selection::All, &ScoreParams::default(), &custom);
        let stored = store.windows("s", None, 60.0, None, None).unwrap();
        assert_eq!(stored.len(), 1);
        let w = &stored[0].window;
        assert_eq!(w.pss, want.pss as f64);
        assert_eq!(w.custom.len(), 7);
        for (got, m) in w.custom.iter().zip(&want.custom) {
            assert_eq!((got.code.as_str(), got.score, got.weight), (m.code.as_str(), m.score, m.weight));
        }
        assert!(w.custom.iter().any(|c| c.code == "KAFKA" && c.score < 1.0), "kafka_lag survived the store");
        assert!(w.custom.iter().any(|c| c.code == "GC" && c.score < 1.0), "gc_pause_duration survived the store");
        assert_eq!(rescore(w, &ScoreParams::default()).pss, w.pss);
        // Without custom metrics the same window's PSS is the five's alone.
        let five = crate::score::score(&cols, crate::score::Selection::All, &ScoreParams::default());
        assert_ne!(five.pss, want.pss);
    }
}
