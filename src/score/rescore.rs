//! Re-scoring a stored window under other parameters from its features alone,
//! without its traces: what makes evaluating a candidate configuration over
//! thousands of windows cheap. For a window whose traces all converted, the
//! result is pypss's score of those traces under the new parameters (the test
//! below checks it against the stored default-parameter scores, exactly).

use super::formula;
use crate::config::{AlertParams, ScoreParams};
use crate::domain::Window;
use crate::pystats::py_round2;

/// A window's scores under some parameters: rounded as pypss reports them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rescored {
    pub pss: f64,
    /// ts, ms, ev, be, cc, rounded to two decimals.
    pub breakdown: [f64; 5],
    /// The weighted PSS before clamping and rounding (0–1), for ranking.
    pub pss_raw: f64,
    /// ts, ms, ev, be, cc before rounding.
    pub raw: [f64; 5],
}

/// pypss's five sub-scores and PSS of a window, from its stored features
/// (through the same formulas as scoring traces, [`super::formula`]).
pub fn rescore(w: &Window, p: &ScoreParams) -> Rescored {
    let f = &w.features;
    let n = f.rows;
    if n == 0.0 && f.lag_count == 0.0 {
        return Rescored { pss: 0.0, breakdown: [0.0; 5], pss_raw: 0.0, raw: [0.0; 5] };
    }
    // Timing: p50/p95 are stored for the default tail percentile (94).
    let ts = if n == 0.0 { 1.0 } else { formula::timing(f.lat_cv, f.tail_ratio, p) };
    let ms = if n < 2.0 { 1.0 } else { formula::memory(f.mem_median, f.mem_std, f.mem_peak, p) };
    let ev = if n == 0.0 { 1.0 } else { formula::errors(f.error_rate, f.error_vmr, f.error_longest_run, p) };
    let be = f.be_raw;
    let wait = (n >= 2.0).then_some((f.wait_mean, f.wait_cv));
    let cc = formula::concurrency(wait, (f.lag_count > 0.0).then_some(f.lag_mean), p);
    let raw = [ts, ms, ev, be, cc];
    let (pss_raw, pss) = formula::pss(raw, p);
    Rescored { pss, breakdown: raw.map(py_round2), pss_raw, raw }
}

/// The alarm rule (one definition for tuning, evaluation, reports and
/// alerting): PSS below `alert.pss`, or a sub-score below its threshold (a
/// threshold of 0 disables that rule). Windows too small to score never alarm.
pub fn alarms(w: &Window, r: &Rescored, alert: &AlertParams) -> bool {
    if w.too_small {
        return false;
    }
    if r.pss < alert.pss {
        return true;
    }
    let th = [alert.ts, alert.ms, alert.ev, alert.be, alert.cc];
    r.breakdown.iter().zip(th).any(|(&v, t)| t > 0.0 && v < t)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn alarm_rule() {
        let mut w = Window { traces: 100, ..Window::unscored("s", 0.0, 60.0, Default::default()) };
        let r = Rescored { pss: 80.0, breakdown: [0.9, 0.9, 0.79, 0.9, 0.9], pss_raw: 0.8, raw: [0.9; 5] };
        let a = AlertParams::default();
        assert!(alarms(&w, &r, &a), "ev 0.79 < 0.80");
        let off = AlertParams { ev: 0.0, ..AlertParams::default() };
        assert!(!alarms(&w, &r, &off), "a zero threshold disables the rule");
        let low = Rescored { pss: 59.0, breakdown: [1.0; 5], pss_raw: 0.59, raw: [1.0; 5] };
        assert!(alarms(&w, &low, &off));
        w.too_small = true;
        assert!(!alarms(&w, &low, &off), "too small never alarms");
    }
}
