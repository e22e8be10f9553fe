//! Counters and live scores, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::writer::Input;
use crate::store::{IngestReport, SqliteStore, Store};

const INPUTS: [Input; 4] = [Input::Http, Input::Grpc, Input::Redis, Input::Files];

fn idx(i: Input) -> usize {
    INPUTS.iter().position(|x| *x == i).unwrap_or(0)
}

/// The latest complete window of one service and module.
#[derive(Debug, Clone)]
pub struct LiveScore {
    pub start: f64,
    pub traces: u64,
    pub pss: f64,
    pub subs: [f64; 5],
}

/// Everything `/metrics` shows.
#[derive(Default)]
pub struct Metrics {
    accepted: [AtomicU64; 4],
    duplicates: [AtomicU64; 4],
    skipped: [AtomicU64; 4],
    rejected: [AtomicU64; 4],
    pub queue_depth: AtomicU64,
    pub windows_recomputed: AtomicU64,
    commits: AtomicU64,
    commit_micros: AtomicU64,
    last_commit_micros: AtomicU64,
    live: Mutex<BTreeMap<(String, String), LiveScore>>,
}

impl Metrics {
    /// A job stored.
    pub fn accepted(&self, input: Input, r: &IngestReport) {
        let k = idx(input);
        self.accepted[k].fetch_add(r.inserted, Ordering::Relaxed);
        self.duplicates[k].fetch_add(r.duplicates, Ordering::Relaxed);
        self.skipped[k].fetch_add(r.skipped.total(), Ordering::Relaxed);
    }

    /// Messages refused (malformed, unauthorized, back-pressure).
    pub fn rejected(&self, input: Input, n: u64) {
        self.rejected[idx(input)].fetch_add(n, Ordering::Relaxed);
    }

    /// Traces stored so far by an input.
    pub fn accepted_total(&self, input: Input) -> u64 {
        self.accepted[idx(input)].load(Ordering::Relaxed)
    }

    pub fn observe_commit(&self, d: Duration) {
        let us = d.as_micros() as u64;
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_micros.fetch_add(us, Ordering::Relaxed);
        self.last_commit_micros.store(us, Ordering::Relaxed);
    }

    /// Reloads the live scores: each service's and module's latest window.
    pub fn refresh_scores(&self, store: &SqliteStore, seconds: f64) {
        if let Ok(rows) = store.latest_windows(seconds) {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            for w in rows {
                live.insert(
                    (w.service.clone(), w.module.clone()),
                    LiveScore { start: w.start, traces: w.traces, pss: w.pss, subs: [w.ts, w.ms, w.ev, w.be, w.cc] },
                );
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let counter = |o: &mut String, name: &str, help: &str, v: &[AtomicU64; 4]| {
            o.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for i in INPUTS {
                o.push_str(&format!("{name}{{input=\"{}\"}} {}\n", i.name(), v[idx(i)].load(Ordering::Relaxed)));
            }
        };
        counter(&mut o, "pss_traces_accepted_total", "Traces stored in the history.", &self.accepted);
        counter(
            &mut o,
            "pss_traces_duplicate_total",
            "Traces already stored (same trace_id or content).",
            &self.duplicates,
        );
        counter(
            &mut o,
            "pss_traces_skipped_total",
            "Traces stored but not scorable (counted as pypss skips them).",
            &self.skipped,
        );
        counter(
            &mut o,
            "pss_messages_rejected_total",
            "Requests or elements refused (malformed, unauthorized, queue full).",
            &self.rejected,
        );
        o.push_str(&format!(
            "# HELP pss_queue_depth Batches waiting for the store.\n# TYPE pss_queue_depth gauge\npss_queue_depth {}\n",
            self.queue_depth.load(Ordering::Relaxed)
        ));
        let commits = self.commits.load(Ordering::Relaxed);
        o.push_str(&format!(
            "# HELP pss_store_commit_seconds Store commit latency.\n# TYPE pss_store_commit_seconds summary\n\
             pss_store_commit_seconds_sum {}\npss_store_commit_seconds_count {commits}\n\
             # HELP pss_store_last_commit_seconds The latest commit's latency.\n# TYPE pss_store_last_commit_seconds gauge\n\
             pss_store_last_commit_seconds {}\n",
            self.commit_micros.load(Ordering::Relaxed) as f64 / 1e6,
            self.last_commit_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        o.push_str(&format!(
            "# HELP pss_windows_recomputed_total Windows rescored after new traces.\n# TYPE pss_windows_recomputed_total counter\npss_windows_recomputed_total {}\n",
            self.windows_recomputed.load(Ordering::Relaxed)
        ));
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let gauges = [
            ("pss_score", "PSS of the latest window (0-100)."),
            ("pss_timing_stability", "Timing stability of the latest window."),
            ("pss_memory_stability", "Memory stability of the latest window."),
            ("pss_error_volatility", "Error volatility of the latest window."),
            ("pss_branching_entropy", "Branching entropy of the latest window."),
            ("pss_concurrency_chaos", "Concurrency chaos of the latest window."),
            ("pss_window_traces", "Traces in the latest window."),
            ("pss_window_start_seconds", "Start of the latest window (epoch seconds)."),
        ];
        for (k, (name, help)) in gauges.iter().enumerate() {
            o.push_str(&format!("# HELP {name} {help} module=\"\" is the whole service.\n# TYPE {name} gauge\n"));
            for ((service, module), s) in live.iter() {
                let v = match k {
                    0 => s.pss,
                    1..=5 => s.subs[k - 1],
                    6 => s.traces as f64,
                    _ => s.start,
                };
                o.push_str(&format!("{name}{{service=\"{}\",module=\"{}\"}} {v}\n", esc(service), esc(module)));
            }
        }
        o
    }
}
