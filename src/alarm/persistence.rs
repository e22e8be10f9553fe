//! Choosing the policy's persistence on the training part of a history:
//! the candidate with the fewest false-alarm episodes per day among those
//! that catch at least 90 % of the incidents the most eager one catches
//! (#15's recall target), simplest first on ties. Judged on windows alone
//! (no quiet-hour pooling: the tuner has no traces).

use serde::Serialize;

use super::backtest::{judge, replay};
use super::{AlarmPolicy, Persistence};
use crate::domain::{Incident, LabeledWindow};

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct EpisodeMetrics {
    pub incidents: usize,
    pub caught: usize,
    pub false_episodes: usize,
    pub false_per_day: f64,
}

/// Replays each service's windows through `policy` and judges the episodes
/// against that service's incidents within the windows' range.
pub fn evaluate(policy: &AlarmPolicy, windows: &[&LabeledWindow], incidents: &[Incident], lead: f64) -> EpisodeMetrics {
    let mut services: Vec<&str> = windows.iter().map(|w| w.window.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    let mut m = EpisodeMetrics::default();
    let mut seconds = 0.0;
    for s in services {
        let mut ws: Vec<crate::domain::Window> =
            windows.iter().filter(|w| w.window.service == s).map(|w| w.window.clone()).collect();
        ws.sort_by(|a, b| a.start.total_cmp(&b.start));
        let (Some(first), Some(last)) = (ws.first(), ws.last()) else { continue };
        let (from, to) = (first.start, last.start + last.seconds);
        let mine: Vec<Incident> =
            incidents.iter().filter(|i| i.service == s && i.end > from && i.start < to).cloned().collect();
        let j = judge(&replay(policy, s, "", &ws), &mine, lead, to - from);
        m.incidents += j.incidents;
        m.caught += j.caught.len();
        m.false_episodes += j.false_episodes;
        seconds += to - from;
    }
    m.false_per_day = if seconds > 0.0 { m.false_episodes as f64 / (seconds / 86400.0) } else { 0.0 };
    m
}

/// The chosen persistence and how it did on the windows it was chosen on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Choice {
    pub persistence: Persistence,
    pub train: EpisodeMetrics,
}

/// Chooses the persistence on `windows` (the training part).
pub fn choose(base: &AlarmPolicy, windows: &[&LabeledWindow], incidents: &[Incident], lead: f64) -> Choice {
    let tried: Vec<(Persistence, EpisodeMetrics)> = CANDIDATES
        .iter()
        .map(|&p| (p, evaluate(&AlarmPolicy { persistence: p, ..base.clone() }, windows, incidents, lead)))
        .collect();
    let best_caught = tried.iter().map(|t| t.1.caught).max().unwrap_or(0);
    let floor = (0.9 * best_caught as f64).ceil() as usize;
    let (persistence, train) = tried
        .iter()
        .filter(|t| t.1.caught >= floor)
        .min_by(|a, b| a.1.false_per_day.total_cmp(&b.1.false_per_day))
        .copied()
        .unwrap_or((CANDIDATES[0], EpisodeMetrics::default()));
    Choice { persistence, train }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Features, Window};

    #[test]
    fn persistence_drops_blips_but_keeps_the_incidents() {
        // 60 one-minute windows: lone bad windows (blips) every 10 minutes,
        // and a 4-window incident at 30-33.
        let ws: Vec<LabeledWindow> = (0..60)
            .map(|k| {
                let bad = k % 10 == 5 || (30..34).contains(&k);
                let f = Features {
                    rows: 100.0,
                    lat_cv: if bad { 5.0 } else { 0.0 },
                    tail_ratio: 1.0,
                    be_raw: 1.0,
                    ..Features::default()
                };
                LabeledWindow {
                    window: Window { traces: 100, ..Window::unscored("s", k as f64 * 60.0, 60.0, f) },
                    incident: (30..34).contains(&k).then(|| "i".to_string()),
                }
            })
            .collect();
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
        let eager = evaluate(&base, &refs, std::slice::from_ref(&inc), 0.0);
        assert_eq!((eager.caught, eager.false_episodes), (1, 6), "{eager:?}");
        let c = choose(&base, &refs, std::slice::from_ref(&inc), 0.0);
        assert_eq!((c.train.caught, c.train.false_episodes), (1, 0), "{c:?}");
        assert!(c.persistence.fire_after >= 2);
    }
}
