//! Re-scoring a stored window under other parameters from its features alone,
//! without its traces: what makes evaluating a candidate configuration over
//! thousands of windows cheap. For a window whose traces all converted, the
//! result is pypss's score of those traces under the new parameters (the test
//! below checks it against the stored default-parameter scores, exactly).

use super::formula;
use crate::config::{AlertParams, ScoreParams};
use crate::domain::{SubScores, Window};
use crate::pystats::py_round2;

/// A window's scores under some parameters: rounded as pypss reports them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rescored {
    pub pss: f64,
    /// Rounded to two decimals.
    pub breakdown: SubScores,
    /// The weighted PSS before clamping and rounding (0–1), for ranking.
    pub pss_raw: f64,
    /// Before rounding.
    pub raw: SubScores,
}

/// pypss's five sub-scores and PSS of a window, from its stored features
/// (through the same formulas as scoring traces, [`super::formula`]).
pub fn rescore(w: &Window, p: &ScoreParams) -> Rescored {
    let f = &w.features;
    let n = f.rows;
    if n == 0.0 && f.lag_count == 0.0 {
        return Rescored { pss: 0.0, breakdown: SubScores::default(), pss_raw: 0.0, raw: SubScores::default() };
    }
    // Timing: p50/p95 are stored for the default tail percentile (94).
    let ts = if n == 0.0 { 1.0 } else { formula::timing(f.lat_cv, f.tail_ratio, p) };
    let ms = if n < 2.0 { 1.0 } else { formula::memory(f.mem_median, f.mem_std, f.mem_peak, p) };
    let ev = if n == 0.0 { 1.0 } else { formula::errors(f.error_rate, f.error_vmr, f.error_longest_run, p) };
    let be = f.be_raw;
    let wait = (n >= 2.0).then_some((f.wait_mean, f.wait_cv));
    let cc = formula::concurrency(wait, (f.lag_count > 0.0).then_some(f.lag_mean), p);
    let raw = SubScores::from_array([ts, ms, ev, be, cc]);
    // Custom metrics at the weights `p` gives them (else those they were
    // stored with); those `alpha` or `gamma` decay, under `p`'s.
    let custom: Vec<(f64, f64)> = w
        .custom
        .iter()
        .map(|c| {
            (
                p.custom_weight(&c.code).unwrap_or(c.weight),
                c.decay.map_or(c.score, |d| super::custom::decay_score(&d, p)),
            )
        })
        .collect();
    let (pss_raw, pss) = formula::pss_with(&raw, &custom, p);
    Rescored { pss, breakdown: raw.map(py_round2), pss_raw, raw }
}

/// The alarm rule (one definition for tuning, evaluation, reports and
/// alerting): PSS below `alert.pss`, or a sub-score below its threshold (a
/// threshold of 0 disables that rule). Windows too small to score never alarm.
pub fn alarms(w: &Window, r: &Rescored, alert: &AlertParams) -> bool {
    !w.too_small && fired_rules(r, alert).next().is_some()
}

/// The name of the PSS rule; the sub-score rules are named by their short
/// codes (`ts` … `cc`).
pub const RULE_PSS: &str = "pss";

/// The rules of [`alarms`] that fire on scores `r`, by name, PSS first.
pub fn fired_rules<'a>(r: &'a Rescored, alert: &'a AlertParams) -> impl Iterator<Item = &'static str> + 'a {
    let subs = r.breakdown.to_array().into_iter().zip(alert.sub.to_array()).zip(SubScores::KEYS);
    (r.pss < alert.pss)
        .then_some(RULE_PSS)
        .into_iter()
        .chain(subs.filter(|((v, t), _)| *t > 0.0 && v < t).map(|(_, (_, code))| code))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn alarm_rule() {
        let mut w = Window { traces: 100, ..Window::unscored("s", 0.0, 60.0, Default::default()) };
        let (b, raw) = (SubScores::from_array([0.9, 0.9, 0.79, 0.9, 0.9]), SubScores::from_array([0.9; 5]));
        let r = Rescored { pss: 80.0, breakdown: b, pss_raw: 0.8, raw };
        let a = AlertParams::default();
        assert!(alarms(&w, &r, &a), "ev 0.79 < 0.80");
        let mut off = AlertParams::default();
        off.sub.error_volatility = 0.0;
        assert!(!alarms(&w, &r, &off), "a zero threshold disables the rule");
        let one = SubScores::from_array([1.0; 5]);
        let low = Rescored { pss: 59.0, breakdown: one, pss_raw: 0.59, raw: one };
        assert!(alarms(&w, &low, &off));
        w.too_small = true;
        assert!(!alarms(&w, &low, &off), "too small never alarms");
    }
}
