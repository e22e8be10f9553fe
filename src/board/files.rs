//! Trace files on the board: each file is ingested (service = its file
//! name's stem) into a temporary history, and again when it changes, as
//! pypss's board re-reads its file. The default window length is ready
//! first; the others follow in the background.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::BoardState;
use crate::config::Config;
use crate::ingest::{ingest_source, recompute_windows, IngestOptions};
use crate::store::{StoreError, TimeRange};
use crate::trace::Source;

/// Window lengths a trace-file board offers, seconds; the first is ready first.
pub const LENGTHS: [f64; 5] = [10.0, 60.0, 30.0, 300.0, 600.0];

/// The service a file's traces are shown under: its stem, `[A-Za-z0-9_.-]` only.
pub fn service_of(path: &Path) -> String {
    let stem = path.file_name().and_then(|s| s.to_str()).unwrap_or("traces");
    let stem = stem.split('.').next().unwrap_or("traces");
    let s: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || "_-".contains(c) { c } else { '_' }).collect();
    if s.is_empty() {
        "traces".into()
    } else {
        s
    }
}

/// Ingests `files` into a new database `db` at `lengths[0]`; returns the
/// options used per file (for the other lengths).
pub fn ingest(files: &[PathBuf], db: &Path, first: f64, cfg: &Config) -> Result<Vec<IngestOptions>, StoreError> {
    let mut store = crate::store::open(db)?;
    let mut out = Vec::new();
    for f in files {
        let opts = IngestOptions {
            service: service_of(f),
            window_seconds: first,
            min_window_traces: cfg.min_window_traces,
            params: cfg.score.clone(),
            unknown_module: cfg.unknown_module.clone(),
            custom: crate::score::custom::CustomMetrics::from_config(cfg).0,
        };
        ingest_source(&mut *store, &Source::Path(f.clone()), &opts, &|_| {})?;
        out.push(opts);
    }
    Ok(out)
}

/// Adds the windows of `seconds` for each file's service, over the range
/// its first length's windows already cover (every trace is in one).
pub fn add_length(db: &Path, opts: &[IngestOptions], seconds: f64) -> Result<(), StoreError> {
    let mut store = crate::store::open(db)?;
    for o in opts {
        if let Some(span) = store.window_span(&o.service, o.window_seconds)? {
            let o = IngestOptions { window_seconds: seconds, ..o.clone() };
            recompute_windows(&mut *store, TimeRange { from: span.from, to: span.to + seconds }, &o)?;
        }
    }
    Ok(())
}

fn stamp(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len())))
        .collect()
}

/// Builds the board's history from `files` in `dir` and keeps it current:
/// returns after the first length is ready; a thread adds the other
/// lengths, then re-reads the files whenever one changes (checked every
/// `poll`), swapping the new history in and bumping the generation.
/// `notice` hears what a person should know (a file that could not be read).
pub fn start(
    files: Vec<PathBuf>,
    dir: PathBuf,
    cfg: Config,
    state: &BoardState,
    poll: Duration,
    notice: std::sync::Arc<dyn Fn(&str) + Send + Sync>,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    let build = move |files: &[PathBuf], gen: u64, cfg: &Config| -> Result<(PathBuf, Vec<IngestOptions>), StoreError> {
        let db = dir.join(format!("board-{gen}.db"));
        let _ = std::fs::remove_file(&db);
        let opts = ingest(files, &db, LENGTHS[0], cfg)?;
        Ok((db, opts))
    };
    let mut seen = stamp(&files);
    let (db, opts) = build(&files, 0, &cfg)?;
    *state.history.write().expect("not poisoned") = db.clone();
    let state = state.clone();
    Ok(std::thread::spawn(move || {
        let mut current = (db, opts);
        let mut gen = 0u64;
        let mut pending: Vec<f64> = LENGTHS[1..].to_vec();
        loop {
            if let Some(len) = pending.first().copied() {
                if let Err(e) = add_length(&current.0, &current.1, len) {
                    notice(&format!("windows of {len} s: {e}"));
                }
                pending.remove(0);
                state.generation.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            std::thread::sleep(poll);
            let now = stamp(&files);
            if now == seen {
                continue;
            }
            seen = now;
            gen += 1;
            match build(&files, gen, &cfg) {
                Ok(next) => {
                    let old = std::mem::replace(&mut current, next);
                    *state.history.write().expect("not poisoned") = current.0.clone();
                    state.generation.fetch_add(1, Ordering::Relaxed);
                    pending = LENGTHS[1..].to_vec();
                    notice("trace file changed: re-read");
                    // Readers that opened the old file keep it open; unlinking is safe.
                    let _ = std::fs::remove_file(&old.0);
                }
                Err(e) => notice(&format!("re-reading the trace files failed, the previous data stays: {e}")),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_named_after_files() {
        assert_eq!(service_of(Path::new("/x/traces.json")), "traces");
        assert_eq!(service_of(Path::new("shop.jsonl.gz")), "shop");
        assert_eq!(service_of(Path::new("a b<c>.json")), "a_b_c_");
    }
}
