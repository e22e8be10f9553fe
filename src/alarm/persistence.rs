//! Choosing the alarm policy on the training part of a history: its
//! persistence and its detector rule (off, beside the score rules, or
//! alone), the candidate catching the most incidents within a page budget
//! of false-alarm episodes per day ([`choose`]). Judged on windows alone
//! (no quiet-hour pooling: the tuner has no traces).

use serde::Serialize;

use super::backtest::{judge, Episode};
use super::episodes::{episodes, Step};
use super::{AlarmPolicy, Persistence};
use crate::detect::model::DetectorModel;
use crate::domain::{Incident, LabeledWindow, Window};

/// The persistences tried, simplest first.
pub const CANDIDATES: [Persistence; 6] = [
    Persistence { fire_after: 1, fire_window: 1, resolve_after: 1 },
    Persistence { fire_after: 1, fire_window: 1, resolve_after: 2 },
    Persistence { fire_after: 2, fire_window: 2, resolve_after: 1 },
    Persistence { fire_after: 2, fire_window: 3, resolve_after: 2 },
    Persistence { fire_after: 3, fire_window: 4, resolve_after: 2 },
    Persistence { fire_after: 3, fire_window: 5, resolve_after: 3 },
];

/// Episodes of a policy over windows of several services, judged.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EpisodeMetrics {
    pub incidents: usize,
    pub caught: usize,
    pub false_episodes: usize,
    pub false_per_day: f64,
    /// Share of the time inside a service-level episode.
    pub alarming_share: f64,
    /// Median of (page − incident start) over caught incidents, seconds.
    pub median_delay: Option<f64>,
}

/// The detector-rule quantiles tried (`None`: no detector rule), simplest first.
pub const DETECTOR_QUANTILES: [Option<f64>; 6] = [None, Some(0.999), Some(0.995), Some(0.99), Some(0.98), Some(0.95)];

/// The module-rule thresholds tried (`None`: no module rule), simplest first.
pub const MODULE_PSS: [Option<f64>; 5] = [None, Some(50.0), Some(60.0), Some(70.0), Some(80.0)];

/// The windows a policy is chosen on: each service's service-level
/// windows (which define its time range and incidents) and its modules'.
#[derive(Debug, Clone, Copy)]
pub struct Windows<'a> {
    pub service: &'a [&'a LabeledWindow],
    pub modules: &'a [&'a LabeledWindow],
}

/// A service's time range and its incidents in it.
struct Scope<'a> {
    service: &'a str,
    incidents: Vec<Incident>,
    seconds: f64,
}

fn scopes<'a>(windows: &[&'a LabeledWindow], incidents: &[Incident]) -> Vec<Scope<'a>> {
    let mut out: Vec<Scope<'a>> = Vec::new();
    let mut services: Vec<&str> = windows.iter().map(|w| w.window.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    for s in services {
        let mine = windows.iter().filter(|w| w.window.service == s);
        let from = mine.clone().map(|w| w.window.start).fold(f64::INFINITY, f64::min);
        let to = mine.map(|w| w.window.start + w.window.seconds).fold(f64::NEG_INFINITY, f64::max);
        out.push(Scope {
            service: s,
            incidents: incidents.iter().filter(|i| i.service == s && i.end > from && i.start < to).cloned().collect(),
            seconds: to - from,
        });
    }
    out
}

/// One stream of windows (a service's, or one of its modules') as the
/// episode logic sees it under one policy: stepping is the costly part
/// (rescoring, the detector), so each persistence reuses it.
struct Stream<'a> {
    service: &'a str,
    module: &'a str,
    steps: Vec<Step>,
}

/// The scorable windows of one stream (a service's, or one module's), in time order.
fn stream_windows<'a>(windows: &[&'a LabeledWindow], service: &str, module: &str) -> Vec<&'a Window> {
    let mut ws: Vec<&Window> = windows
        .iter()
        .filter(|w| w.window.service == service && w.window.module == module && !w.window.too_small)
        .map(|w| &w.window)
        .collect();
    ws.sort_by(|a, b| a.start.total_cmp(&b.start));
    ws
}

fn streams<'a>(policy: &AlarmPolicy, windows: &[&'a LabeledWindow]) -> Vec<Stream<'a>> {
    let mut keys: Vec<(&str, &str)> =
        windows.iter().map(|w| (w.window.service.as_str(), w.window.module.as_str())).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .map(|(service, module)| {
            let steps = stream_windows(windows, service, module).iter().map(|w| policy.step(w)).collect();
            Stream { service, module, steps }
        })
        .collect()
}

fn judge_streams(scopes: &[Scope<'_>], streams: &[&Stream<'_>], p: &Persistence, lead: f64) -> EpisodeMetrics {
    let mut m = EpisodeMetrics::default();
    let mut seconds = 0.0;
    let mut delays = Vec::new();
    for sc in scopes {
        let eps: Vec<Episode> = streams
            .iter()
            .filter(|st| st.service == sc.service)
            .flat_map(|st| {
                episodes(&st.steps, p).into_iter().map(|span| Episode {
                    service: st.service.to_string(),
                    module: st.module.to_string(),
                    span,
                })
            })
            .collect();
        let j = judge(&eps, &sc.incidents, lead, sc.seconds);
        m.incidents += j.incidents;
        m.caught += j.caught.len();
        m.false_episodes += j.false_episodes;
        m.alarming_share += j.alarming_share * sc.seconds;
        delays.extend(j.delays);
        seconds += sc.seconds;
    }
    m.false_per_day = if seconds > 0.0 { m.false_episodes as f64 / (seconds / 86400.0) } else { 0.0 };
    m.alarming_share = if seconds > 0.0 { m.alarming_share / seconds } else { 0.0 };
    m.median_delay = crate::pystats::median(&mut delays);
    m
}

/// Replays each service's windows (and its modules', when the policy has a
/// module rule) through `policy` and judges the episodes against that
/// service's incidents within its service-level windows' range.
pub fn evaluate(policy: &AlarmPolicy, w: Windows<'_>, incidents: &[Incident], lead: f64) -> EpisodeMetrics {
    let mut st = streams(policy, w.service);
    if policy.module_pss.is_some() {
        st.extend(streams(policy, w.modules));
    }
    let refs: Vec<&Stream<'_>> = st.iter().collect();
    judge_streams(&scopes(w.service, incidents), &refs, &policy.persistence, lead)
}

/// The chosen persistence and detector rule, and how they did on the
/// windows they were chosen on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    pub persistence: Persistence,
    pub detector_quantile: Option<f64>,
    /// Whether the PSS and sub-score rules page (false: the detector alone).
    pub score_rules: bool,
    /// The module rule's PSS threshold (`None`: off).
    pub module_pss: Option<f64>,
    pub train: EpisodeMetrics,
}

/// `base` with the detector rule at `q` and `detectors` attached.
pub fn with_detectors(base: &AlarmPolicy, q: Option<f64>, detectors: &[DetectorModel]) -> AlarmPolicy {
    let mut p = AlarmPolicy { detector_quantile: q, detectors: Vec::new(), ..base.clone() };
    for d in detectors {
        if let Some(s) = d.window_seconds {
            p.attach_detector(d.clone(), s);
        }
    }
    p
}

/// Chooses the persistence and the detector rule on `windows` (the
/// training part) within a page budget: the candidate catching the most
/// incidents among those with at most `budget` false-alarm episodes per
/// day; on ties, fewer false-alarm episodes, then the earlier page (median
/// delay), then less time alarming (the margin a policy keeps on data it
/// has not seen), then the simplest. When
/// no candidate keeps the budget, the one with the fewest false-alarm
/// episodes. Without detectors only the persistence is chosen.
pub fn choose<'a>(
    base: &AlarmPolicy,
    detectors: &[DetectorModel],
    w: Windows<'a>,
    incidents: &[Incident],
    lead: f64,
    budget: f64,
) -> Choice {
    let quantiles: &[Option<f64>] = if detectors.is_empty() { &DETECTOR_QUANTILES[..1] } else { &DETECTOR_QUANTILES };
    let module_rules: &[Option<f64>] = if w.modules.is_empty() { &MODULE_PSS[..1] } else { &MODULE_PSS };
    let sc = scopes(w.service, incidents);
    // Stepping is the costly part (rescoring; the detector's forest), so
    // each window is stepped once: module windows with their PSS (the rule
    // is a comparison per threshold), service windows with the score rules'
    // result and the detector's score (a comparison per quantile).
    let module_base = streams(&AlarmPolicy { module_pss: Some(f64::INFINITY), ..base.clone() }, w.modules);
    let module_streams: Vec<Vec<Stream<'_>>> = module_rules
        .iter()
        .map(|&m| match m {
            None => Vec::new(),
            Some(t) => module_base
                .iter()
                .map(|st| Stream {
                    service: st.service,
                    module: st.module,
                    steps: st
                        .steps
                        .iter()
                        .map(|x| Step {
                            rules: if x.pss < t { vec![super::RULE_MODULE_PSS] } else { Vec::new() },
                            ..x.clone()
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let plain = AlarmPolicy { detector_quantile: None, detectors: Vec::new(), score_rules: true, ..base.clone() };
    let service_base = streams(&plain, w.service);
    // Each service window's detector score, once (the service's detector, if any).
    let scores: Vec<Option<Vec<f64>>> = service_base
        .iter()
        .map(|st| {
            let d = detectors.iter().find(|d| d.service == st.service)?;
            Some(d.score(&crate::detect::model::window_features(&stream_windows(w.service, st.service, ""))))
        })
        .collect();
    let mut tried: Vec<Choice> = Vec::new();
    for &q in quantiles {
        let thresholds = with_detectors(base, q, detectors);
        // With a detector rule, also the detector alone (score rules off).
        for score_rules in if q.is_some() { &[true, false][..] } else { &[true][..] } {
            let service: Vec<Stream<'_>> = service_base
                .iter()
                .zip(&scores)
                .map(|(st, det)| {
                    let thr = thresholds.detectors.iter().find(|d| d.service == st.service).map(|d| d.threshold);
                    let steps = st
                        .steps
                        .iter()
                        .enumerate()
                        .map(|(k, x)| {
                            let mut rules = if *score_rules { x.rules.clone() } else { Vec::new() };
                            if let (Some(t), Some(det)) = (thr, det) {
                                if det[k] >= t {
                                    rules.push(super::RULE_DETECTOR);
                                }
                            }
                            Step { rules, ..x.clone() }
                        })
                        .collect();
                    Stream { service: st.service, module: st.module, steps }
                })
                .collect();
            for (&module_pss, ms) in module_rules.iter().zip(&module_streams) {
                let all: Vec<&Stream<'_>> = service.iter().chain(ms).collect();
                for p in CANDIDATES {
                    tried.push(Choice {
                        persistence: p,
                        detector_quantile: q,
                        score_rules: *score_rules,
                        module_pss,
                        train: judge_streams(&sc, &all, &p, lead),
                    });
                }
            }
        }
    }
    let within: Vec<&Choice> = tried.iter().filter(|t| t.train.false_per_day <= budget).collect();
    let better = |a: &Choice, b: &Choice| {
        // `a` is strictly better than `b`.
        let (x, y) = (&a.train, &b.train);
        let delay = |m: &EpisodeMetrics| m.median_delay.unwrap_or(f64::INFINITY);
        x.caught
            .cmp(&y.caught)
            .then(y.false_per_day.total_cmp(&x.false_per_day))
            .then(delay(y).total_cmp(&delay(x)))
            .then(y.alarming_share.total_cmp(&x.alarming_share))
            == std::cmp::Ordering::Greater
    };
    let pick = if within.is_empty() {
        tried.iter().min_by(|a, b| {
            a.train.false_per_day.total_cmp(&b.train.false_per_day).then(b.train.caught.cmp(&a.train.caught))
        })
    } else {
        within.iter().copied().fold(None, |best: Option<&Choice>, c| match best {
            Some(b) if !better(c, b) => Some(b),
            _ => Some(c),
        })
    };
    pick.cloned().unwrap_or(Choice {
        persistence: CANDIDATES[0],
        detector_quantile: None,
        score_rules: true,
        module_pss: None,
        train: EpisodeMetrics::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Features, Window};

    /// A one-minute window `k` of service `s` (or one of its modules):
    /// erratic latency when `bad`, calm otherwise.
    fn minute(module: &str, k: usize, bad: bool, incident: bool) -> LabeledWindow {
        let f = Features {
            rows: 100.0,
            lat_cv: if bad { 5.0 } else { 0.0 },
            tail_ratio: 1.0,
            be_raw: 1.0,
            ..Features::default()
        };
        LabeledWindow {
            window: Window { module: module.into(), traces: 100, ..Window::unscored("s", k as f64 * 60.0, 60.0, f) },
            incident: incident.then(|| "i".to_string()),
        }
    }

    #[test]
    fn persistence_drops_blips_but_keeps_the_incidents() {
        // 60 one-minute windows: lone bad windows (blips) every 10 minutes,
        // and a 4-window incident at 30-33.
        let ws: Vec<LabeledWindow> =
            (0..60).map(|k| minute("", k, k % 10 == 5 || (30..34).contains(&k), (30..34).contains(&k))).collect();
        let refs: Vec<&LabeledWindow> = ws.iter().collect();
        let inc = Incident {
            id: "i".into(),
            service: "s".into(),
            start: 1800.0,
            end: 2040.0,
            severity: "s".into(),
            title: String::new(),
        };
        let mut base = AlarmPolicy::from_config(&crate::config::Config::default()).unwrap();
        base.alert.pss = 80.0;
        let w = Windows { service: &refs, modules: &[] };
        let eager = evaluate(&base, w, std::slice::from_ref(&inc), 0.0);
        assert_eq!((eager.caught, eager.false_episodes), (1, 6), "{eager:?}");
        let c = choose(&base, &[], w, std::slice::from_ref(&inc), 0.0, 5.0);
        assert_eq!((c.train.caught, c.train.false_episodes), (1, 0), "{c:?}");
        assert!(c.persistence.fire_after >= 2);
    }

    /// Hours of one-minute windows: lone erratic-latency windows (the PSS
    /// rule pages on each) every 40 minutes, and incidents every 5 hours
    /// that only change traffic (invisible to the PSS, plain to the
    /// window detector).
    fn traffic_drops() -> (Vec<LabeledWindow>, Vec<Incident>) {
        let mut incidents = Vec::new();
        let ws = (0..1500)
            .map(|k| {
                let incident = k % 300 >= 150 && k % 300 < 154;
                let blip = k % 40 == 20 && !incident;
                if incident && k % 300 == 150 {
                    incidents.push(Incident {
                        id: format!("i{k}"),
                        service: "s".into(),
                        start: k as f64 * 60.0,
                        end: (k + 4) as f64 * 60.0,
                        severity: "s".into(),
                        title: String::new(),
                    });
                }
                let f = Features {
                    rows: if incident { 15.0 } else { 100.0 + (k % 7) as f64 },
                    lat_cv: if blip { 5.0 } else { 0.1 + (k % 5) as f64 * 0.01 },
                    lat_p95: 0.1 + (k % 3) as f64 * 0.01,
                    tail_ratio: 1.0,
                    be_raw: 1.0,
                    ..Features::default()
                };
                LabeledWindow {
                    window: Window { traces: f.rows as u64, ..Window::unscored("s", k as f64 * 60.0, 60.0, f) },
                    incident: incident.then(|| "i".to_string()),
                }
            })
            .collect();
        (ws, incidents)
    }

    #[test]
    fn the_detector_alone_is_chosen_when_it_sees_what_the_score_rules_cannot() {
        use crate::detect::model::{window_features, DetectorParams, Level};
        use crate::learn::Fit;
        let (ws, incidents) = traffic_drops();
        let refs: Vec<&LabeledWindow> = ws.iter().collect();
        let plain: Vec<&Window> = ws.iter().map(|w| &w.window).collect();
        let model = DetectorParams {
            forest: crate::detect::IsolationForestParams { extended: true, seed: 5, ..Default::default() },
            level: Level::Window,
            service: "s".into(),
            window_seconds: Some(60.0),
            features: Features::NAMES.iter().map(|n| n.to_string()).collect(),
            range: (0.0, 90000.0),
        }
        .check()
        .unwrap()
        .fit(&window_features(&plain))
        .unwrap();
        let mut base = AlarmPolicy::from_config(&crate::config::Config::default()).unwrap();
        base.alert.pss = 80.0;
        let w = Windows { service: &refs, modules: &[] };
        let eager = evaluate(&base, w, &incidents, 0.0);
        assert_eq!(eager.caught, 0, "the PSS does not see traffic drops: {eager:?}");
        assert!(eager.false_episodes >= 30, "{eager:?}");
        let without = choose(&base, &[], w, &incidents, 0.0, 5.0);
        assert_eq!(without.detector_quantile, None);
        let c = choose(&base, std::slice::from_ref(&model), w, &incidents, 0.0, 5.0);
        assert!(c.detector_quantile.is_some() && !c.score_rules, "{c:?}");
        assert_eq!(c.train.caught, incidents.len(), "{c:?}");
        assert!(c.train.false_per_day <= 5.0, "within the budget: {c:?}");
        assert!(c.train.median_delay.is_some_and(|d| d <= 120.0), "{c:?}");
        // No candidate within a zero budget catches anything: the fewest
        // false-alarm episodes wins.
        let strict = choose(&base, std::slice::from_ref(&model), w, &incidents, 0.0, 0.0);
        assert!(strict.train.false_per_day <= c.train.false_per_day, "{strict:?}");
    }

    #[test]
    fn the_module_rule_is_chosen_for_an_incident_only_one_module_shows() {
        // Two hours of minute windows; at 60-63 one module's latency turns
        // erratic while the service's windows stay calm.
        let win = |module: &str, k: usize, bad: bool| minute(module, k, bad, false);
        let service: Vec<LabeledWindow> = (0..120).map(|k| win("", k, false)).collect();
        let modules: Vec<LabeledWindow> =
            (0..120).flat_map(|k| [win("app.db", k, (60..64).contains(&k)), win("app.web", k, false)]).collect();
        let inc = Incident {
            id: "i".into(),
            service: "s".into(),
            start: 3600.0,
            end: 3840.0,
            severity: "s".into(),
            title: String::new(),
        };
        let (sr, mr): (Vec<&LabeledWindow>, Vec<&LabeledWindow>) = (service.iter().collect(), modules.iter().collect());
        let mut base = AlarmPolicy::from_config(&crate::config::Config::default()).unwrap();
        base.alert.pss = 80.0;
        let alone = choose(&base, &[], Windows { service: &sr, modules: &[] }, std::slice::from_ref(&inc), 0.0, 5.0);
        assert_eq!((alone.train.caught, alone.module_pss), (0, None));
        let c = choose(&base, &[], Windows { service: &sr, modules: &mr }, std::slice::from_ref(&inc), 0.0, 5.0);
        assert_eq!(c.train.caught, 1, "{c:?}");
        assert_eq!(c.train.false_episodes, 0, "{c:?}");
        assert!(c.module_pss.is_some(), "{c:?}");
        let with = AlarmPolicy { module_pss: c.module_pss, ..base.clone() };
        let m = evaluate(&with, Windows { service: &sr, modules: &mr }, std::slice::from_ref(&inc), 0.0);
        assert_eq!(m, c.train, "evaluate judges what choose judged");
    }
}
