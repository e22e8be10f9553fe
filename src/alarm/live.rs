//! The alarm policy evaluated as windows close (`pss serve`): each stream
//! (a service, or one of its modules) keeps an episode [`Tracker`], and each
//! closed window not seen yet is pushed through it — the same steps the
//! backtest takes, so what `pss alarms` says would have fired is what fires.

use std::collections::BTreeMap;

use super::episodes::{Event, Tracker};
use super::AlarmPolicy;
use crate::store::{Store, StoreError};

/// An episode that fired or resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEvent {
    pub service: String,
    /// `""` for the service-level rules.
    pub module: String,
    pub event: Event,
}

struct Stream {
    tracker: Tracker,
    /// Start of the last window pushed.
    last: f64,
    /// Quiet windows being joined (service-level streams, as the backtest).
    pool: super::pool::Pool,
}

/// Live evaluation state.
pub struct Live {
    policy: AlarmPolicy,
    seconds: f64,
    /// A window is closed once its end is this far behind the clock (late
    /// traces), or once a later window of its service exists.
    grace: f64,
    /// On the first look at a stream, windows this far back are replayed.
    lookback: f64,
    /// Module name for traces without one (pooled spans are scored from traces).
    unknown_module: String,
    streams: BTreeMap<(String, String), Stream>,
    /// Services whose promoted detector was looked for under this policy,
    /// and what was found (drained by [`Live::take_detector_notes`]).
    detector_tried: std::collections::BTreeSet<String>,
    detector_notes: Vec<(String, super::DetectorSource)>,
}

impl Live {
    pub fn new(policy: AlarmPolicy, seconds: f64, grace: f64, unknown_module: &str) -> Live {
        Live {
            policy,
            seconds,
            grace,
            lookback: 86400.0,
            unknown_module: unknown_module.to_string(),
            streams: BTreeMap::new(),
            detector_tried: Default::default(),
            detector_notes: Vec::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &AlarmPolicy {
        &self.policy
    }

    /// Puts a new policy in force: its rules from the next window on; its
    /// persistence for each stream once no episode of the stream is open (an
    /// open one resolves under the rules it fired with).
    pub fn set_policy(&mut self, policy: AlarmPolicy) {
        self.policy = policy;
        self.detector_tried.clear();
        self.adopt_persistence();
    }

    /// What was found for each service's detector rule since the last call.
    pub fn take_detector_notes(&mut self) -> Vec<(String, super::DetectorSource)> {
        std::mem::take(&mut self.detector_notes)
    }

    fn attach_detectors(&mut self, store: &dyn Store, services: &[String]) -> Result<(), StoreError> {
        if self.policy.detector_quantile.is_none() {
            return Ok(());
        }
        for s in services {
            if self.detector_tried.insert(s.clone()) {
                let found = self.policy.attach_promoted(store, s, self.seconds)?;
                self.detector_notes.push((s.clone(), found));
            }
        }
        Ok(())
    }

    fn adopt_persistence(&mut self) {
        let p = self.policy.persistence;
        for s in self.streams.values_mut() {
            if s.tracker.open().is_none() && s.tracker.persistence() != p {
                s.tracker = Tracker::new(p);
            }
        }
    }

    /// Evaluates every closed window of `services` (and their modules) not
    /// evaluated yet; returns the episodes that fired or resolved.
    pub fn advance(&mut self, store: &dyn Store, services: &[String], now: f64) -> Result<Vec<LiveEvent>, StoreError> {
        self.attach_detectors(store, services)?;
        let mut out = Vec::new();
        for service in services {
            let latest = self.push_stream(store, service, "", None, now, &mut out)?;
            if self.policy.module_pss.is_some() {
                for m in store.window_modules(service, self.seconds)? {
                    self.push_stream(store, service, &m, latest, now, &mut out)?;
                }
            }
        }
        Ok(out)
    }

    /// Pushes one stream's newly closed windows; returns its latest window start.
    fn push_stream(
        &mut self,
        store: &dyn Store,
        service: &str,
        module: &str,
        service_latest: Option<f64>,
        now: f64,
        out: &mut Vec<LiveEvent>,
    ) -> Result<Option<f64>, StoreError> {
        let key = (service.to_string(), module.to_string());
        let from = match self.streams.get(&key) {
            Some(s) => s.last + self.seconds * 0.5,
            // First look (or after a restart): the last day of the stream's
            // windows; an episode found again is not sent again (the
            // outbox records each notification once).
            None => {
                let newest = store
                    .latest_windows(self.seconds)?
                    .into_iter()
                    .filter(|w| w.service == service && w.module == module)
                    .map(|w| w.start)
                    .fold(f64::NEG_INFINITY, f64::max);
                if newest.is_finite() {
                    newest - self.lookback
                } else {
                    return Ok(None);
                }
            }
        };
        let ws = store.windows(service, (!module.is_empty()).then_some(module), self.seconds, Some(from), None)?;
        let latest = ws.last().map(|w| w.window.start);
        let horizon = service_latest.or(latest);
        let (p, seconds) = (&self.policy, self.seconds);
        let stream = self.streams.entry(key).or_insert_with(|| Stream {
            tracker: Tracker::new(p.persistence),
            last: f64::NEG_INFINITY,
            pool: super::pool::Pool::new(p.min_window_traces, p.pool_max_windows, seconds),
        });
        let opts = crate::ingest::IngestOptions {
            service: service.to_string(),
            window_seconds: self.seconds,
            min_window_traces: self.policy.min_window_traces,
            params: self.policy.score.clone(),
            unknown_module: self.unknown_module.clone(),
            custom: self.policy.custom.clone(),
        };
        for lw in ws {
            let w = &lw.window;
            let end = w.start + w.seconds;
            let closed = horizon.is_some_and(|h| w.start < h) || end + self.grace <= now;
            if !closed {
                break;
            }
            stream.last = w.start;
            let mut scored = Vec::new();
            if module.is_empty() {
                for range in stream.pool.offer(w.start, end, w.features.rows, w.too_small) {
                    scored.push(crate::ingest::score_span(store, range, &opts)?);
                }
            }
            if !w.too_small {
                scored.push(w.clone());
            }
            for w in scored.iter().filter(|w| !w.too_small) {
                let step = self.policy.step(w);
                if let Some(event) = stream.tracker.push(step) {
                    let resolved = matches!(event, Event::Resolved(_));
                    out.push(LiveEvent { service: service.to_string(), module: module.to_string(), event });
                    if resolved && stream.tracker.persistence() != self.policy.persistence {
                        stream.tracker = Tracker::new(self.policy.persistence);
                    }
                }
            }
        }
        Ok(latest)
    }

    /// The episodes paging now: (service, module, rules).
    pub fn firing(&self) -> Vec<(String, String, Vec<&'static str>)> {
        self.streams
            .iter()
            .filter_map(|((s, m), st)| st.tracker.open().map(|e| (s.clone(), m.clone(), e.rules.clone())))
            .collect()
    }
}
