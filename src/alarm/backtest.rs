//! Replaying stored windows through a policy: the episodes that would have
//! paged. The backtest a person runs before trusting a policy, and the path
//! live alerting takes window by window.

use serde::Serialize;

use super::episodes::{episodes, Step};
use super::AlarmPolicy;
use crate::domain::Window;
use crate::ingest::{score_span, IngestOptions};
use crate::store::{Store, StoreError, TimeRange};

/// What to replay.
#[derive(Debug, Clone)]
pub struct Backtest {
    pub service: String,
    pub window_seconds: f64,
    pub from: Option<f64>,
    pub to: Option<f64>,
    /// Module name for traces without one (pooling rescores stored traces).
    pub unknown_module: String,
}

/// Why a backtest could not run.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{location}: no service '{service}' (services: {known})")]
    UnknownService { location: String, service: String, known: String },
    #[error("{location}: '{service}' has no windows of {seconds} s (ingested: {known})")]
    UnknownWindow { location: String, service: String, seconds: f64, known: String },
}

/// One episode that would have paged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Episode {
    pub service: String,
    /// `""` for the service-level rules.
    pub module: String,
    pub start: f64,
    pub end: f64,
    pub peak: f64,
    pub rules: Vec<&'static str>,
    pub windows: usize,
    pub fired_at: f64,
}

/// The replay's result.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    /// Service-level first, then modules by name; each in time order.
    pub episodes: Vec<Episode>,
    /// Service-level windows replayed, and how many were too small alone.
    pub windows: usize,
    pub too_small: usize,
    /// Quiet spans scored by pooling too-small windows, and how many of
    /// them were still too small.
    pub pooled: usize,
    pub pooled_too_small: usize,
    /// The time replayed, seconds (for episodes per day).
    pub seconds: f64,
}

/// Replays a service's stored windows (and its modules') through `policy`.
pub fn run(store: &dyn Store, policy: &AlarmPolicy, b: &Backtest) -> Result<Replay, BacktestError> {
    let services = store.services()?;
    if !services.contains(&b.service) {
        return Err(BacktestError::UnknownService {
            location: store.location(),
            service: b.service.clone(),
            known: services.join(", "),
        });
    }
    let lengths = store.window_lengths(Some(&b.service))?;
    if !lengths.contains(&b.window_seconds) {
        let known = lengths.iter().map(|l| format!("{l} s")).collect::<Vec<_>>().join(", ");
        return Err(BacktestError::UnknownWindow {
            location: store.location(),
            service: b.service.clone(),
            seconds: b.window_seconds,
            known: if known.is_empty() { "none".into() } else { known },
        });
    }
    let whole: Vec<Window> =
        store.windows(&b.service, None, b.window_seconds, b.from, b.to)?.into_iter().map(|lw| lw.window).collect();
    let (pooled, stats) = pool_quiet(store, policy, b, &whole)?;
    let mut out = Replay {
        episodes: Vec::new(),
        windows: whole.len(),
        too_small: whole.iter().filter(|w| w.too_small).count(),
        pooled: stats.0,
        pooled_too_small: stats.1,
        seconds: whole.last().zip(whole.first()).map_or(0.0, |(l, f)| l.start + l.seconds - f.start),
    };
    out.episodes.extend(replay(policy, &b.service, "", &pooled));
    if policy.module_pss.is_some() {
        for m in store.window_modules(&b.service, b.window_seconds)? {
            let ws: Vec<Window> = store
                .windows(&b.service, Some(&m), b.window_seconds, b.from, b.to)?
                .into_iter()
                .map(|lw| lw.window)
                .collect();
            out.episodes.extend(replay(policy, &b.service, &m, &ws));
        }
    }
    Ok(out)
}

/// Episodes of one stream of windows (scored windows only).
pub fn replay(policy: &AlarmPolicy, service: &str, module: &str, ws: &[Window]) -> Vec<Episode> {
    let steps: Vec<Step> = ws
        .iter()
        .filter(|w| !w.too_small)
        .map(|w| Step { start: w.start, end: w.start + w.seconds, pss: policy.pss(w), rules: policy.fire(w) })
        .collect();
    episodes(&steps, &policy.persistence)
        .into_iter()
        .map(|s| Episode {
            service: service.to_string(),
            module: module.to_string(),
            start: s.start,
            end: s.end,
            peak: s.peak,
            rules: s.rules,
            windows: s.windows,
            fired_at: s.fired_at,
        })
        .collect()
}

/// The service's windows with each run of too-small windows replaced by
/// spans scored from the stored traces: consecutive too-small windows are
/// joined until they hold `min_window_traces` traces or span
/// `pool_max_windows` windows. Returns the windows and (spans pooled,
/// spans still too small).
fn pool_quiet(
    store: &dyn Store,
    policy: &AlarmPolicy,
    b: &Backtest,
    ws: &[Window],
) -> Result<(Vec<Window>, (usize, usize)), StoreError> {
    if policy.pool_max_windows == 0 {
        return Ok((ws.to_vec(), (0, 0)));
    }
    let opts = IngestOptions {
        service: b.service.clone(),
        window_seconds: b.window_seconds,
        min_window_traces: policy.min_window_traces,
        params: policy.score.clone(),
        unknown_module: b.unknown_module.clone(),
    };
    let mut pool = super::pool::Pool::new(policy.min_window_traces, policy.pool_max_windows, b.window_seconds);
    let (mut out, mut pooled, mut still_small) = (Vec::with_capacity(ws.len()), 0, 0);
    let mut score = |range: TimeRange, out: &mut Vec<Window>| -> Result<(), StoreError> {
        let span = score_span(store, range, &opts)?;
        pooled += 1;
        still_small += span.too_small as usize;
        out.push(span);
        Ok(())
    };
    for win in ws {
        for range in pool.offer(win.start, win.start + win.seconds, win.features.rows, win.too_small) {
            score(range, &mut out)?;
        }
        if !win.too_small {
            out.push(win.clone());
        }
    }
    if let Some(range) = pool.take() {
        score(range, &mut out)?;
    }
    Ok((out, (pooled, still_small)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::ingest::ingest_source;
    use crate::store::SqliteStore;
    use crate::trace::Source;

    const T0: f64 = 1_700_000_040.0; // a multiple of 60

    /// 40 one-minute windows: 20 busy (50 traces), module `app.b` slow and
    /// erratic in windows 8-10; then 20 quiet ones (3 traces), failing in 30-33.
    fn history(dir: &std::path::Path) -> SqliteStore {
        let mut lines = Vec::new();
        for w in 0..40usize {
            let (n, quiet) = if w < 20 { (50, false) } else { (3, true) };
            for i in 0..n {
                let jitter = ((w * 50 + i) * 7919 % 100) as f64 / 100.0;
                let (module, duration) = if !quiet && i % 2 == 1 {
                    let slow = (8..=10).contains(&w);
                    ("app.b", if slow { 0.01 + jitter * jitter * 4.0 } else { 0.02 + jitter * 0.002 })
                } else {
                    ("app.a", 0.01 + jitter * 0.002)
                };
                let error = quiet && (30..=33).contains(&w);
                lines.push(serde_json::json!({
                    "name": "f", "module": module, "duration": duration, "memory": 1000, "wait_time": 0.0,
                    "error": error, "exception_type": if error { "Boom" } else { "" },
                    "timestamp": T0 + w as f64 * 60.0 + i as f64 * (55.0 / n as f64)
                }));
            }
        }
        let f = dir.join("t.jsonl");
        std::fs::write(&f, lines.iter().map(|l| l.to_string() + "\n").collect::<String>()).unwrap();
        let mut store = SqliteStore::open(&dir.join("h.db")).unwrap();
        let opts = IngestOptions {
            service: "s".into(),
            window_seconds: 60.0,
            min_window_traces: 10,
            params: Default::default(),
            unknown_module: "unknown".into(),
        };
        ingest_source(&mut store, &Source::Path(f), &opts, &|_| {}).unwrap();
        store
    }

    fn policy(text: &str) -> AlarmPolicy {
        AlarmPolicy::from_config(&Config::from_toml_str(text, "policy.toml").unwrap()).unwrap()
    }

    fn backtest() -> Backtest {
        Backtest { service: "s".into(), window_seconds: 60.0, from: None, to: None, unknown_module: "unknown".into() }
    }

    #[test]
    fn module_rules_and_pooled_quiet_hours_page_where_service_windows_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let store = history(dir.path());
        let p = policy("[pss]\nalert_threshold_pss = 75\n[pss.alarm]\nmodule_pss = 75\n");
        let r = run(&store, &p, &backtest()).unwrap();
        assert_eq!((r.windows, r.too_small), (40, 20));
        let at = |e: &Episode| ((e.start - T0) / 60.0, (e.end - T0) / 60.0);
        let modules: Vec<_> = r.episodes.iter().filter(|e| e.module == "app.b").map(at).collect();
        assert_eq!(modules, vec![(8.0, 11.0)], "the slow module pages for its three windows: {:?}", r.episodes);
        assert!(r.episodes.iter().all(|e| e.module != "app.a"), "the calm module never pages");
        // Quiet hours: spans of 4 windows (12 traces) are scored; the failing ones page.
        assert_eq!((r.pooled, r.pooled_too_small), (5, 0));
        let night: Vec<_> =
            r.episodes.iter().filter(|e| e.module.is_empty() && e.start >= T0 + 1200.0).map(at).collect();
        assert_eq!(night, vec![(28.0, 36.0)], "{:?}", r.episodes);
        // Without pooling, nothing at night could page.
        let off = policy("[pss]\nalert_threshold_pss = 75\n[pss.alarm]\npool_max_windows = 0\n");
        let r = run(&store, &off, &backtest()).unwrap();
        assert!(r.pooled == 0 && r.episodes.iter().all(|e| e.start < T0 + 1200.0), "{:?}", r.episodes);
    }

    /// What the backtest says would have fired is what live evaluation fires.
    #[test]
    fn live_evaluation_fires_the_backtests_episodes() {
        let dir = tempfile::tempdir().unwrap();
        let store = history(dir.path());
        let p = policy("[pss]\nalert_threshold_pss = 75\n[pss.alarm]\nmodule_pss = 75\nresolve_after = 2\n");
        let r = run(&store, &p, &backtest()).unwrap();
        let mut want: Vec<(String, f64)> = r.episodes.iter().map(|e| (e.module.clone(), e.start)).collect();
        let mut live = crate::alarm::live::Live::new(p, 60.0, 5.0, "unknown");
        // Evaluated twice, as ticks would: nothing fires twice.
        let mut got = Vec::new();
        for _ in 0..2 {
            for ev in live.advance(&store, &["s".to_string()], T0 + 1e6).unwrap() {
                if let crate::alarm::episodes::Event::Fired(s) = ev.event {
                    got.push((ev.module, s.start));
                }
            }
        }
        want.sort_by(|a, b| a.partial_cmp(b).unwrap());
        got.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert!(!want.is_empty());
        assert_eq!(got, want);
    }

    #[test]
    fn unknown_service_or_window_length_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = history(dir.path());
        let p = policy("[pss]\n");
        let e = run(&store, &p, &Backtest { service: "nope".into(), ..backtest() }).unwrap_err().to_string();
        assert!(e.contains("no service 'nope'") && e.contains("services: s"), "{e}");
        let e = run(&store, &p, &Backtest { window_seconds: 300.0, ..backtest() }).unwrap_err().to_string();
        assert!(e.contains("no windows of 300 s") && e.contains("60 s"), "{e}");
    }
}
