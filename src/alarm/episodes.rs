//! Persistence and hysteresis: alarming windows become episodes. An
//! episode fires when `fire_after` of the last `fire_window` windows alarm
//! and resolves after `resolve_after` clean windows in a row: one page per
//! episode, not one per window.

use serde::Serialize;

/// When a run of alarming windows fires and when it resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Persistence {
    pub fire_after: usize,
    pub fire_window: usize,
    pub resolve_after: usize,
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence { fire_after: 1, fire_window: 1, resolve_after: 1 }
    }
}

/// One window as the episode logic sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub start: f64,
    pub end: f64,
    pub pss: f64,
    /// The rules that fired on this window; empty when it is clean.
    pub rules: Vec<&'static str>,
}

/// A run of alarming windows that paged once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Span {
    /// Start of its first alarming window (epoch seconds).
    pub start: f64,
    /// End of its last alarming window.
    pub end: f64,
    /// The lowest PSS among its alarming windows.
    pub peak: f64,
    /// Every rule that fired in it, in first-fired order.
    pub rules: Vec<&'static str>,
    /// Alarming windows in it.
    pub windows: usize,
    /// When it fired: the end of the window that completed `fire_after`.
    pub fired_at: f64,
}

/// What a step did to the episode of its stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An episode started paging.
    Fired(Span),
    /// The open episode resolved (after `resolve_after` clean windows).
    Resolved(Span),
}

/// The episode state of one stream of windows, step by step: the backtest
/// and live alerting both push windows through it, so what the backtest
/// says would have fired is what fires.
#[derive(Debug, Clone)]
pub struct Tracker {
    p: Persistence,
    /// The last `fire_window` steps while no episode is open.
    recent: std::collections::VecDeque<Step>,
    /// The open episode and its run of clean windows.
    open: Option<(Span, usize)>,
}

impl Tracker {
    pub fn new(p: Persistence) -> Tracker {
        Tracker { p, recent: Default::default(), open: None }
    }

    /// Its persistence.
    pub fn persistence(&self) -> Persistence {
        self.p
    }

    /// The episode paging now, if any.
    pub fn open(&self) -> Option<&Span> {
        self.open.as_ref().map(|(s, _)| s)
    }

    /// Takes the next window (in time order).
    pub fn push(&mut self, s: Step) -> Option<Event> {
        let n = self.p.fire_window.max(1);
        let k = self.p.fire_after.clamp(1, n);
        let alarming = !s.rules.is_empty();
        if let Some((ep, clean)) = self.open.as_mut() {
            if alarming {
                ep.end = s.end;
                ep.peak = ep.peak.min(s.pss);
                ep.windows += 1;
                add_rules(&mut ep.rules, &s.rules);
                *clean = 0;
            } else {
                *clean += 1;
                if *clean >= self.p.resolve_after.max(1) {
                    self.recent.clear();
                    return self.open.take().map(|(e, _)| Event::Resolved(e));
                }
            }
            return None;
        }
        self.recent.push_back(s);
        if self.recent.len() > n {
            self.recent.pop_front();
        }
        let alarms: Vec<&Step> = self.recent.iter().filter(|x| !x.rules.is_empty()).collect();
        if !alarming || alarms.len() < k {
            return None;
        }
        let last = self.recent.back().expect("just pushed");
        let mut ep = Span {
            start: alarms[0].start,
            end: last.end,
            peak: f64::INFINITY,
            rules: Vec::new(),
            windows: alarms.len(),
            fired_at: last.end,
        };
        for a in &alarms {
            ep.peak = ep.peak.min(a.pss);
            add_rules(&mut ep.rules, &a.rules);
        }
        self.open = Some((ep.clone(), 0));
        Some(Event::Fired(ep))
    }
}

fn add_rules(to: &mut Vec<&'static str>, rules: &[&'static str]) {
    for r in rules {
        if !to.contains(r) {
            to.push(r);
        }
    }
}

/// Groups time-ordered steps into episodes under `p` (an episode still
/// open at the end is included, ending at its last alarming window).
pub fn episodes(steps: &[Step], p: &Persistence) -> Vec<Span> {
    let mut t = Tracker::new(*p);
    let mut out: Vec<Span> = steps
        .iter()
        .filter_map(|s| match t.push(s.clone()) {
            Some(Event::Resolved(e)) => Some(e),
            _ => None,
        })
        .collect();
    out.extend(t.open().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows of 60 s from `pattern`: `x` alarms (rule "pss"), `.` is clean.
    fn steps(pattern: &str) -> Vec<Step> {
        pattern
            .chars()
            .enumerate()
            .map(|(i, c)| Step {
                start: i as f64 * 60.0,
                end: (i + 1) as f64 * 60.0,
                pss: if c == 'x' { 40.0 + i as f64 } else { 90.0 },
                rules: if c == 'x' { vec!["pss"] } else { vec![] },
            })
            .collect()
    }

    fn spans(pattern: &str, p: Persistence) -> Vec<(f64, f64, usize)> {
        episodes(&steps(pattern), &p).iter().map(|e| (e.start / 60.0, e.end / 60.0, e.windows)).collect()
    }

    #[test]
    fn one_page_per_run_and_flapping_is_one_episode_with_hysteresis() {
        let plain = Persistence::default();
        assert_eq!(spans("..xx..x.", plain), vec![(2.0, 4.0, 2), (6.0, 7.0, 1)]);
        // Resolve only after two clean windows: the flap at 4 stays inside.
        let sticky = Persistence { resolve_after: 2, ..plain };
        assert_eq!(spans("..xx.x..x", sticky), vec![(2.0, 6.0, 3), (8.0, 9.0, 1)]);
    }

    #[test]
    fn k_of_n_persistence_ignores_single_blips_and_starts_at_the_first_alarm() {
        let p = Persistence { fire_after: 2, fire_window: 3, resolve_after: 1 };
        assert_eq!(spans("x...x...", p), vec![], "lone windows never page");
        assert_eq!(spans("..x.x...", p), vec![(2.0, 5.0, 2)], "2 of 3: starts at the first of them");
        let e = &episodes(&steps("..x.x..."), &p)[0];
        assert_eq!(e.fired_at, 5.0 * 60.0, "fired when the second alarm completed");
        assert_eq!(e.peak, 42.0, "the lowest PSS");
    }

    #[test]
    fn rules_are_collected_in_first_fired_order() {
        let mut s = steps("xxx");
        s[0].rules = vec!["ev"];
        s[1].rules = vec!["pss", "ev"];
        s[2].rules = vec!["ts"];
        let e = episodes(&s, &Persistence::default());
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].rules, vec!["ev", "pss", "ts"]);
    }
}
