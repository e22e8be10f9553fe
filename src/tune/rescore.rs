//! Re-scoring a stored window under other parameters from its features alone,
//! without its traces: what makes evaluating a candidate configuration over
//! thousands of windows cheap. For a window whose traces all converted, the
//! result is pypss's score of those traces under the new parameters (the test
//! below checks it against the stored default-parameter scores, exactly).

use crate::config::{AlertParams, ScoreParams};
use crate::score::pystats::{py_round, py_round2};
use crate::window::Window;

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

#[inline]
fn decay(metric: f64, alpha: f64) -> f64 {
    ((-alpha) * metric).exp()
}

/// pypss's five sub-scores and PSS of a window, from its stored features.
pub fn rescore(w: &Window, p: &ScoreParams) -> Rescored {
    let f = &w.features;
    let n = f.rows;
    if n == 0.0 && f.lag_count == 0.0 {
        return Rescored { pss: 0.0, breakdown: [0.0; 5], pss_raw: 0.0, raw: [0.0; 5] };
    }
    // Timing: p50/p95 are stored for the default tail percentile (94).
    let ts =
        if n == 0.0 { 1.0 } else { decay(f.lat_cv, p.alpha) * (1.0 / (1.0 + p.beta * (f.tail_ratio - 1.0).max(0.0))) };
    let ms = if n < 2.0 {
        1.0
    } else {
        let median = f.mem_median + p.score_memory_epsilon;
        if median <= p.score_memory_epsilon {
            if f.mem_peak == 0.0 {
                1.0
            } else {
                0.0
            }
        } else {
            let metric = (f.mem_std / median) + (f.mem_peak / median - 1.0);
            let mut ms = decay(metric, p.gamma);
            if f.mem_peak / median > p.mem_spike_threshold_ratio {
                ms *= decay((f.mem_peak / median) - p.mem_spike_threshold_ratio, p.gamma);
            }
            ms
        }
    };
    let ev = if n == 0.0 {
        1.0
    } else {
        let mean = f.error_rate;
        let mut ev = decay(mean + p.score_error_vmr_multiplier * f.error_vmr, p.delta);
        if mean > p.error_spike_threshold {
            let impact = (mean - p.error_spike_threshold) / (1.0 - p.error_spike_threshold);
            ev *= 1.0 - impact * p.score_error_spike_impact_multiplier;
        }
        if f.error_longest_run >= p.consecutive_error_threshold {
            let factor = f.error_longest_run - p.consecutive_error_threshold + 1.0;
            ev *= decay(factor, p.delta * p.score_consecutive_error_decay_multiplier);
        }
        ev
    };
    let be = f.be_raw;
    let mut cc = 1.0;
    if n >= 2.0 && f.wait_mean > p.concurrency_wait_threshold {
        cc = decay(f.wait_cv, p.alpha);
    }
    if f.lag_count > 0.0 && f.lag_mean > 0.01 {
        cc *= 1.0 - (f.lag_mean * 5.0).min(1.0);
    }
    let cc = cc.max(0.0);
    let mut raw = p.w_ts * ts + p.w_ms * ms + p.w_ev * ev + p.w_be * be + p.w_cc * cc;
    let total = p.w_ts + p.w_ms + p.w_ev + p.w_be + p.w_cc;
    if total > 0.0 {
        raw /= total;
    }
    let pss = py_round(0.0f64.max(raw.min(1.0)) * 100.0);
    Rescored { pss, breakdown: [ts, ms, ev, be, cc].map(py_round2), pss_raw: raw, raw: [ts, ms, ev, be, cc] }
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
    use crate::store::ingest::IngestOptions;
    use crate::store::{ingest_source, SqliteStore, Store};
    use crate::trace::Source;

    /// Every stored window of the shipped history, re-scored from features
    /// under the default parameters, equals the score computed from its traces.
    #[test]
    fn rescoring_from_features_equals_scoring_traces() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("h.db")).unwrap();
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/history/payments.jsonl.gz");
        let opts = IngestOptions {
            service: "payments".into(),
            window_seconds: 300.0,
            min_window_traces: 10,
            params: ScoreParams::default(),
            unknown_module: "unknown".into(),
        };
        ingest_source(&mut store, &Source::Path(file), &opts, &|_| {}).unwrap();
        let mut checked = 0;
        for module in [None, Some("payments.db"), Some("payments.runtime"), Some("payments.cache")] {
            for lw in store.windows("payments", module, 300.0, None, None).unwrap() {
                let w = &lw.window;
                let r = rescore(w, &ScoreParams::default());
                assert_eq!(r.pss, w.pss, "pss at {} {:?}", w.start, module);
                assert_eq!(r.breakdown, [w.ts, w.ms, w.ev, w.be, w.cc], "breakdown at {} {:?}", w.start, module);
                checked += 1;
            }
        }
        assert!(checked > 1500, "{checked}");
    }

    #[test]
    fn alarm_rule() {
        let mut w = Window {
            service: "s".into(),
            module: String::new(),
            start: 0.0,
            seconds: 60.0,
            traces: 100,
            errors: 0,
            too_small: false,
            pss: 0.0,
            ts: 0.0,
            ms: 0.0,
            ev: 0.0,
            be: 0.0,
            cc: 0.0,
            features: Default::default(),
        };
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
