//! Replaying stored windows through a policy: the episodes that would have
//! paged. The backtest a person runs before trusting a policy, and the path
//! live alerting takes window by window.

use serde::Serialize;

use super::episodes::{episodes, Span, Step};
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
    /// An episode catches an incident when it fires from this long before its start to its end.
    pub lead: f64,
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
    #[serde(flatten)]
    pub span: Span,
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
    /// The episodes judged against the service's labeled incidents.
    pub judged: Judged,
}

/// Episodes against incidents: what a person paged by them would have seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Judged {
    /// Incidents in the replayed range, and those an episode paged for:
    /// fired within `[start - lead, end]`.
    pub incidents: usize,
    pub caught: Vec<String>,
    /// Episodes that overlapped no incident (with the lead). An episode
    /// that overlaps one without having fired for it is neither.
    pub false_episodes: usize,
    pub false_per_day: f64,
    /// Median of (first catching episode fired − incident start), seconds;
    /// negative is early.
    pub median_delay: Option<f64>,
    /// Each caught incident's delay, in `caught`'s order.
    #[serde(skip)]
    pub delays: Vec<f64>,
    /// Share of the replayed time inside a service-level episode: a policy
    /// that alarms all the time catches everything and means nothing.
    pub alarming_share: f64,
}

/// Judges episodes against incidents.
pub fn judge(episodes: &[Episode], incidents: &[crate::domain::Incident], lead: f64, seconds: f64) -> Judged {
    let overlaps = |e: &Episode, i: &crate::domain::Incident| e.span.start < i.end && e.span.end > i.start - lead;
    // A page catches an incident when it goes out within [start - lead,
    // end]: an episode already open since long before (a policy alarming
    // for a day) pages nobody about this incident.
    let pages_for =
        |e: &Episode, i: &crate::domain::Incident| e.span.fired_at >= i.start - lead && e.span.fired_at <= i.end;
    let mut caught = Vec::new();
    let mut delays = Vec::new();
    for i in incidents {
        let first = episodes.iter().filter(|e| pages_for(e, i)).map(|e| e.span.fired_at).fold(f64::INFINITY, f64::min);
        if first.is_finite() {
            caught.push(i.id.clone());
            delays.push(first - i.start);
        }
    }
    let false_episodes = episodes.iter().filter(|e| !incidents.iter().any(|i| overlaps(e, i))).count();
    let median_delay = crate::pystats::median(&mut delays.clone());
    Judged {
        delays,
        incidents: incidents.len(),
        caught,
        false_episodes,
        false_per_day: if seconds > 0.0 { false_episodes as f64 / (seconds / 86400.0) } else { 0.0 },
        median_delay,
        alarming_share: if seconds > 0.0 {
            episodes.iter().filter(|e| e.module.is_empty()).map(|e| e.span.end - e.span.start).sum::<f64>() / seconds
        } else {
            0.0
        },
    }
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
        judged: Judged::default(),
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
    let (from, to) = match (whole.first(), whole.last()) {
        (Some(f), Some(l)) => (f.start, l.start + l.seconds),
        _ => (0.0, 0.0),
    };
    let incidents: Vec<_> =
        store.incidents(Some(&b.service))?.into_iter().filter(|i| i.end > from && i.start < to).collect();
    out.judged = judge(&out.episodes, &incidents, b.lead, out.seconds);
    Ok(out)
}

/// Episodes of one stream of windows (scored windows only).
pub fn replay(policy: &AlarmPolicy, service: &str, module: &str, ws: &[Window]) -> Vec<Episode> {
    let steps: Vec<Step> = ws.iter().filter(|w| !w.too_small).map(|w| policy.step(w)).collect();
    episodes(&steps, &policy.persistence)
        .into_iter()
        .map(|span| Episode { service: service.to_string(), module: module.to_string(), span })
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
        custom: policy.custom.clone(),
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
        history_with(dir, &Default::default())
    }

    fn history_with(dir: &std::path::Path, custom: &crate::score::custom::CustomMetrics) -> SqliteStore {
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
                let mut line = serde_json::json!({
                    "name": "f", "module": module, "duration": duration, "memory": 1000, "wait_time": 0.0,
                    "error": error, "exception_type": if error { "Boom" } else { "" },
                    "timestamp": T0 + w as f64 * 60.0 + i as f64 * (55.0 / n as f64)
                });
                if !custom.is_empty() {
                    // A cache hit ratio of 2/3 for the CACHE metric.
                    line["branch_tag"] = (if i % 3 == 0 { "cache_miss" } else { "cache_hit" }).into();
                }
                lines.push(line);
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
            custom: custom.clone(),
        };
        ingest_source(&mut store, &Source::Path(f), &opts, &|_| {}).unwrap();
        store
    }

    fn policy(text: &str) -> AlarmPolicy {
        AlarmPolicy::from_config(&Config::from_toml_str(text, "policy.toml").unwrap()).unwrap()
    }

    fn backtest() -> Backtest {
        Backtest {
            service: "s".into(),
            window_seconds: 60.0,
            from: None,
            to: None,
            unknown_module: "unknown".into(),
            lead: 0.0,
        }
    }

    #[test]
    fn module_rules_and_pooled_quiet_hours_page_where_service_windows_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let store = history(dir.path());
        let p = policy("[pss]\nalert_threshold_pss = 75\n[pss.alarm]\nmodule_pss = 75\n");
        let r = run(&store, &p, &backtest()).unwrap();
        assert_eq!((r.windows, r.too_small), (40, 20));
        let at = |e: &Episode| ((e.span.start - T0) / 60.0, (e.span.end - T0) / 60.0);
        let modules: Vec<_> = r.episodes.iter().filter(|e| e.module == "app.b").map(at).collect();
        assert_eq!(modules, vec![(8.0, 11.0)], "the slow module pages for its three windows: {:?}", r.episodes);
        assert!(r.episodes.iter().all(|e| e.module != "app.a"), "the calm module never pages");
        // Quiet hours: spans of 4 windows (12 traces) are scored; the failing ones page.
        assert_eq!((r.pooled, r.pooled_too_small), (5, 0));
        let night: Vec<_> =
            r.episodes.iter().filter(|e| e.module.is_empty() && e.span.start >= T0 + 1200.0).map(at).collect();
        assert_eq!(night, vec![(28.0, 36.0)], "{:?}", r.episodes);
        // Without pooling, nothing at night could page.
        let off = policy("[pss]\nalert_threshold_pss = 75\n[pss.alarm]\npool_max_windows = 0\n");
        let r = run(&store, &off, &backtest()).unwrap();
        assert!(r.pooled == 0 && r.episodes.iter().all(|e| e.span.start < T0 + 1200.0), "{:?}", r.episodes);
    }

    #[test]
    fn episodes_judged_against_incidents_with_the_lead() {
        let ep = |start: f64, end: f64| Episode {
            service: "s".into(),
            module: String::new(),
            span: Span { start, end, peak: 40.0, rules: vec!["pss"], windows: 1, fired_at: end },
        };
        let inc = |id: &str, start: f64, end: f64| crate::domain::Incident {
            id: id.into(),
            service: "s".into(),
            start,
            end,
            severity: "sev2".into(),
            title: String::new(),
        };
        let eps = [ep(100.0, 160.0), ep(500.0, 560.0), ep(900.0, 960.0)];
        let incs = [inc("a", 120.0, 300.0), inc("b", 580.0, 700.0), inc("c", 2000.0, 2100.0)];
        let j = judge(&eps, &incs, 30.0, 86400.0);
        assert_eq!(j.caught, vec!["a", "b"], "b is caught early, within the lead");
        assert_eq!((j.incidents, j.false_episodes), (3, 1));
        assert_eq!(j.median_delay, Some(((160.0 - 120.0) + (560.0 - 580.0)) / 2.0));
        assert_eq!(judge(&eps, &incs, 0.0, 86400.0).caught, vec!["a"], "without the lead b is missed");
        // A day-long episode that fired before the incident's lead did not page for it.
        let long = [Episode { span: Span { fired_at: 100.0, ..ep(0.0, 86400.0).span }, ..ep(0.0, 0.0) }];
        let j = judge(&long, &[inc("d", 5000.0, 5100.0)], 30.0, 86400.0);
        assert_eq!((j.caught.len(), j.false_episodes), (0, 0), "{j:?}");
        assert!(j.alarming_share > 0.99);
    }

    /// What the backtest says would have fired is what live evaluation fires.
    #[test]
    fn live_evaluation_fires_the_backtests_episodes() {
        let dir = tempfile::tempdir().unwrap();
        let store = history(dir.path());
        let p = policy("[pss]\nalert_threshold_pss = 75\n[pss.alarm]\nmodule_pss = 75\nresolve_after = 2\n");
        let r = run(&store, &p, &backtest()).unwrap();
        let mut want: Vec<(String, f64)> = r.episodes.iter().map(|e| (e.module.clone(), e.span.start)).collect();
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

    /// Pooled quiet spans are scored with the custom metrics the windows
    /// were, at the policy's weights (a tuned file names only the weights).
    #[test]
    fn pooled_spans_carry_the_windows_custom_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::from_toml_str("[pypss]\nplugins = [\"CACHE\", \"IO\"]\n", "pypss.toml").unwrap();
        let metrics = crate::score::custom::CustomMetrics::from_config(&cfg).0;
        let store = history_with(dir.path(), &metrics);
        let tuned = "[pypss]\nalert_threshold_pss = 75\n[pypss.custom_metric_weights]\nCACHE = 0.5\n";
        let p = policy(tuned).with_custom_metrics(&metrics);
        let weights: Vec<(String, f64)> =
            p.custom.metrics.iter().map(|w| (w.metric.code().to_string(), w.weight)).collect();
        assert_eq!(weights, vec![("CACHE".to_string(), 0.5), ("IO".to_string(), 0.15)]);
        let whole: Vec<Window> =
            store.windows("s", None, 60.0, None, None).unwrap().into_iter().map(|lw| lw.window).collect();
        assert!(whole.iter().all(|w| w.custom.len() == 2), "every window was scored with both");
        let (out, (pooled, _)) = pool_quiet(&store, &p, &backtest(), &whole).unwrap();
        assert_eq!(pooled, 5);
        let spans: Vec<&Window> = out.iter().filter(|w| w.start >= T0 + 1200.0).collect();
        assert_eq!(spans.len(), 5);
        for w in spans {
            let codes: Vec<(&str, f64)> = w.custom.iter().map(|c| (c.code.as_str(), c.weight)).collect();
            assert_eq!(codes, vec![("CACHE", 0.5), ("IO", 0.15)]);
            let cache = w.custom[0].score;
            assert!((cache - 2.0 / 3.0).abs() < 0.1, "a third of the spans' traces miss: {cache}");
        }
    }
}
