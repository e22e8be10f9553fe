//! Counters and live scores, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::writer::InputKind;
use crate::domain::SubScores;
use crate::store::{IngestReport, Store};

const INPUTS: [InputKind; 6] = InputKind::ALL;

fn idx(i: InputKind) -> usize {
    INPUTS.iter().position(|x| *x == i).unwrap_or(0)
}

/// Why a request, message or connection was refused: the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No or a wrong bearer token.
    Unauthorized,
    /// The store is behind (the queue or the byte budget is full).
    Busy,
    /// Not a trace document (syntax, shape, invalid protobuf).
    Malformed,
    /// Over the body, message, decompressed or batch-size limit.
    TooLarge,
    /// A content type or encoding pss does not read.
    UnsupportedMedia,
    /// The request body did not arrive within the request timeout.
    Timeout,
    /// Over the connection limit.
    ConnectionLimit,
    /// The store failed (disk full, I/O); the client may retry.
    StoreFailed,
}

impl Reason {
    const ALL: [Reason; 8] = [
        Reason::Unauthorized,
        Reason::Busy,
        Reason::Malformed,
        Reason::TooLarge,
        Reason::UnsupportedMedia,
        Reason::Timeout,
        Reason::ConnectionLimit,
        Reason::StoreFailed,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Unauthorized => "unauthorized",
            Reason::Busy => "busy",
            Reason::Malformed => "malformed",
            Reason::TooLarge => "too_large",
            Reason::UnsupportedMedia => "unsupported_media",
            Reason::Timeout => "timeout",
            Reason::ConnectionLimit => "connection_limit",
            Reason::StoreFailed => "store_failed",
        }
    }

    fn idx(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// The latest complete window of one service and module.
#[derive(Debug, Clone)]
pub struct LiveScore {
    pub start: f64,
    pub traces: u64,
    pub pss: f64,
    pub sub: SubScores,
}

/// Everything `/metrics` shows.
#[derive(Default)]
pub struct Metrics {
    accepted: [AtomicU64; 6],
    duplicates: [AtomicU64; 6],
    skipped: [AtomicU64; 6],
    rejected: [AtomicU64; 6],
    rejected_by: [[AtomicU64; 8]; 6],
    pub queue_depth: AtomicU64,
    pub windows_recomputed: AtomicU64,
    /// Passes of the alarm policy over newly closed windows.
    pub alarm_evaluations: AtomicU64,
    /// Policy reloads that took, and that failed (the old policy stays).
    policy_reloads: [AtomicU64; 2],
    /// The policy file in force.
    policy_source: Mutex<String>,
    commits: AtomicU64,
    commit_micros: AtomicU64,
    last_commit_micros: AtomicU64,
    live: Mutex<BTreeMap<(String, String), LiveScore>>,
    /// (service, module, rule) of the episodes paging now.
    firing: Mutex<Vec<(String, String, &'static str)>>,
    /// Notification attempts by (channel, delivered).
    notifications: Mutex<BTreeMap<(String, bool), u64>>,
    /// What the OTLP inputs made of the spans they were sent.
    otlp: Mutex<OtlpCounts>,
}

/// OTLP spans by what became of them (`pss_otlp_*`).
#[derive(Default)]
struct OtlpCounts {
    /// Mapped spans by kind ([`crate::serve::otlp::KINDS`]).
    by_kind: [u64; 7],
    /// Mapped spans without cpu_time, wait_time, memory.
    absent: [u64; 3],
    /// Spans refused in a partial success.
    rejected_spans: u64,
    /// Attribute values that could not map, by `attribute:type`.
    unmapped: BTreeMap<String, u64>,
}

impl Metrics {
    /// A job stored.
    pub fn accepted(&self, input: InputKind, r: &IngestReport) {
        let k = idx(input);
        self.accepted[k].fetch_add(r.inserted, Ordering::Relaxed);
        self.duplicates[k].fetch_add(r.duplicates, Ordering::Relaxed);
        self.skipped[k].fetch_add(r.skipped.total(), Ordering::Relaxed);
    }

    /// Messages, requests or connections refused, and why.
    pub fn rejected(&self, input: InputKind, reason: Reason, n: u64) {
        self.rejected[idx(input)].fetch_add(n, Ordering::Relaxed);
        self.rejected_by[idx(input)][reason.idx()].fetch_add(n, Ordering::Relaxed);
    }

    /// What one OTLP request's mapping counted.
    pub fn otlp_mapped(&self, m: &crate::serve::otlp::Mapped) {
        let mut o = self.otlp.lock().unwrap_or_else(|p| p.into_inner());
        for (a, b) in o.by_kind.iter_mut().zip(m.by_kind) {
            *a += b;
        }
        for (a, b) in o.absent.iter_mut().zip(m.absent) {
            *a += b;
        }
        o.rejected_spans += m.rejected;
        for (k, n) in &m.unmapped {
            *o.unmapped.entry(k.clone()).or_default() += n;
        }
    }

    /// Traces stored so far by an input.
    pub fn accepted_total(&self, input: InputKind) -> u64 {
        self.accepted[idx(input)].load(Ordering::Relaxed)
    }

    pub fn observe_commit(&self, d: Duration) {
        let us = d.as_micros() as u64;
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_micros.fetch_add(us, Ordering::Relaxed);
        self.last_commit_micros.store(us, Ordering::Relaxed);
    }

    /// The episodes paging now: (service, module, rules).
    pub fn set_firing(&self, firing: &[(String, String, Vec<&'static str>)]) {
        let mut f = self.firing.lock().unwrap_or_else(|p| p.into_inner());
        *f = firing.iter().flat_map(|(s, m, rules)| rules.iter().map(|r| (s.clone(), m.clone(), *r))).collect();
    }

    /// A policy file was reloaded, or failed to.
    pub fn policy_loaded(&self, source: &str, ok: bool) {
        self.policy_reloads[usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
        if ok {
            self.set_policy_source(source);
        }
    }

    /// Where the policy in force came from (`""` before it is known).
    pub fn policy_source(&self) -> String {
        self.policy_source.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Where the policy in force came from.
    pub fn set_policy_source(&self, source: &str) {
        *self.policy_source.lock().unwrap_or_else(|p| p.into_inner()) = source.to_string();
    }

    /// A notification attempt and whether it was delivered.
    pub fn notification(&self, channel: &str, delivered: bool) {
        let mut n = self.notifications.lock().unwrap_or_else(|p| p.into_inner());
        *n.entry((channel.to_string(), delivered)).or_default() += 1;
    }

    /// Reloads the live scores: each service's and module's latest window.
    pub fn refresh_scores(&self, store: &dyn Store, seconds: f64) -> Result<(), crate::store::StoreError> {
        self.set_live(&store.latest_windows(seconds)?);
        Ok(())
    }

    /// Sets the live scores from each service's and module's latest window.
    pub fn set_live(&self, windows: &[crate::domain::Window]) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        for w in windows {
            live.insert(
                (w.service.clone(), w.module.clone()),
                LiveScore { start: w.start, traces: w.traces, pss: w.pss, sub: w.sub },
            );
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let counter = |o: &mut String, name: &str, help: &str, v: &[AtomicU64; 6]| {
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
        let name = "pss_messages_rejected_by_reason_total";
        o.push_str(&format!("# HELP {name} Refusals by input and reason.\n# TYPE {name} counter\n"));
        for i in INPUTS {
            for r in Reason::ALL {
                let v = self.rejected_by[idx(i)][r.idx()].load(Ordering::Relaxed);
                o.push_str(&format!("{name}{{input=\"{}\",reason=\"{}\"}} {v}\n", i.name(), r.name()));
            }
        }
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
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        o.push_str(&format!(
            "# HELP pss_alarm_evaluations_total Passes of the alarm policy over closed windows.\n\
             # TYPE pss_alarm_evaluations_total counter\npss_alarm_evaluations_total {}\n",
            self.alarm_evaluations.load(Ordering::Relaxed)
        ));
        o.push_str(&format!(
            "# HELP pss_alarm_policy_reloads_total Policy file reloads by result.\n\
             # TYPE pss_alarm_policy_reloads_total counter\npss_alarm_policy_reloads_total{{result=\"ok\"}} {}\n\
             pss_alarm_policy_reloads_total{{result=\"failed\"}} {}\n",
            self.policy_reloads[0].load(Ordering::Relaxed),
            self.policy_reloads[1].load(Ordering::Relaxed)
        ));
        let source = self.policy_source.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if !source.is_empty() {
            o.push_str(&format!(
                "# HELP pss_alarm_policy_info The alarm policy file in force.\n# TYPE pss_alarm_policy_info gauge\n\
                 pss_alarm_policy_info{{source=\"{}\"}} 1\n",
                esc(&source)
            ));
        }
        o.push_str("# HELP pss_alert_firing 1 while an episode of this rule pages.\n# TYPE pss_alert_firing gauge\n");
        for (s, m, r) in self.firing.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            o.push_str(&format!("pss_alert_firing{{service=\"{}\",module=\"{}\",rule=\"{r}\"}} 1\n", esc(s), esc(m)));
        }
        o.push_str(
            "# HELP pss_notifications_total Notification attempts by channel and result.\n# TYPE pss_notifications_total counter\n",
        );
        for ((c, ok), n) in self.notifications.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let result = if *ok { "sent" } else { "failed" };
            o.push_str(&format!("pss_notifications_total{{channel=\"{c}\",result=\"{result}\"}} {n}\n"));
        }
        self.render_otlp(&mut o, &esc);
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
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
                    1..=5 => s.sub.to_array()[k - 1],
                    6 => s.traces as f64,
                    _ => s.start,
                };
                o.push_str(&format!("{name}{{service=\"{}\",module=\"{}\"}} {v}\n", esc(service), esc(module)));
            }
        }
        o
    }

    fn render_otlp(&self, o: &mut String, esc: &dyn Fn(&str) -> String) {
        use crate::serve::otlp::{KINDS, OPTIONAL_FIELDS};
        let c = self.otlp.lock().unwrap_or_else(|p| p.into_inner());
        o.push_str("# HELP pss_otlp_spans_total OTLP spans mapped to traces, by span kind.\n# TYPE pss_otlp_spans_total counter\n");
        for (k, n) in KINDS.iter().zip(c.by_kind) {
            o.push_str(&format!("pss_otlp_spans_total{{kind=\"{k}\"}} {n}\n"));
        }
        o.push_str(
            "# HELP pss_otlp_spans_without_total Mapped spans without the attribute for a field (the field is absent).\n\
             # TYPE pss_otlp_spans_without_total counter\n",
        );
        for (f, n) in OPTIONAL_FIELDS.iter().zip(c.absent) {
            o.push_str(&format!("pss_otlp_spans_without_total{{field=\"{f}\"}} {n}\n"));
        }
        o.push_str(&format!(
            "# HELP pss_otlp_spans_rejected_total Spans refused in a partial success (times that make no trace).\n\
             # TYPE pss_otlp_spans_rejected_total counter\npss_otlp_spans_rejected_total {}\n",
            c.rejected_spans
        ));
        o.push_str(
            "# HELP pss_otlp_unmapped_values_total Attribute values of a type their field cannot take (left out).\n\
             # TYPE pss_otlp_unmapped_values_total counter\n",
        );
        for (k, n) in &c.unmapped {
            let (attr, ty) = k.rsplit_once(':').unwrap_or((k, ""));
            o.push_str(&format!("pss_otlp_unmapped_values_total{{attribute=\"{}\",type=\"{ty}\"}} {n}\n", esc(attr)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Features, Window};

    fn window(service: &str, module: &str, pss: f64) -> Window {
        Window {
            module: module.into(),
            traces: 7,
            pss,
            sub: crate::domain::SubScores::from_array([0.5, 1.0, 1.0, 1.0, 1.0]),
            ..Window::unscored(service, 120.0, 60.0, Features::default())
        }
    }

    #[test]
    fn counters_and_live_scores_in_prometheus_text() {
        let m = Metrics::default();
        let r = IngestReport { inserted: 5, duplicates: 2, ..Default::default() };
        m.accepted(InputKind::Http, &r);
        m.accepted(InputKind::Http, &r);
        m.rejected(InputKind::Grpc, Reason::Busy, 3);
        m.observe_commit(Duration::from_millis(4));
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SqliteStore::open(&dir.path().join("h.db")).unwrap();
        m.refresh_scores(&store, 60.0).unwrap(); // an empty store: no live scores yet
        let t = m.render();
        assert!(t.contains("pss_traces_accepted_total{input=\"http\"} 10\n"), "{t}");
        assert!(t.contains("pss_traces_duplicate_total{input=\"http\"} 4\n"));
        assert!(t.contains("pss_messages_rejected_total{input=\"grpc\"} 3\n"));
        assert!(t.contains("pss_messages_rejected_by_reason_total{input=\"grpc\",reason=\"busy\"} 3\n"), "{t}");
        assert!(t.contains("pss_store_commit_seconds_count 1\n") && t.contains("pss_store_last_commit_seconds 0.004"));
        assert!(!t.contains("pss_score{"), "no live score before a window exists");
        m.set_live(&[window("shop", "", 81.0), window("sh\"op", "m\nx", 42.0)]);
        let t = m.render();
        assert!(t.contains("pss_score{service=\"shop\",module=\"\"} 81\n"), "{t}");
        assert!(t.contains("pss_score{service=\"sh\\\"op\",module=\"m\\nx\"} 42\n"), "label values escaped: {t}");
        assert!(t.contains("pss_timing_stability{service=\"shop\",module=\"\"} 0.5\n"));
        // Every sample line belongs to a declared metric.
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = name.trim_end_matches("_sum").trim_end_matches("_count");
            assert!(t.contains(&format!("# TYPE {family} ")), "{name} has no TYPE line");
        }
    }
}
