//! pypss 1.3.1's five sub-score formulas and the weighted PSS, from summary
//! statistics — written once. Scoring traces ([`super::score`]) computes the
//! statistics from the traces; re-scoring a stored window
//! ([`super::rescore`]) reads them from its features; both end here, so a
//! configuration key changes both the same way.

use crate::config::ScoreParams;
use crate::domain::SubScores;
use crate::pystats::py_round;

/// `exponential_decay_score(metric, alpha)`: `exp(-alpha * metric)`.
#[inline]
pub fn decay(metric: f64, alpha: f64) -> f64 {
    ((-alpha) * metric).exp()
}

/// Timing Stability from the latency CV and tail ratio (p_tail / p50).
pub fn timing(cv: f64, tail_ratio: f64, p: &ScoreParams) -> f64 {
    decay(cv, p.alpha) * (1.0 / (1.0 + p.beta * (tail_ratio - 1.0).max(0.0)))
}

/// Memory Stability from the median, sample standard deviation and peak of
/// memory (at least two readings).
pub fn memory(median: f64, std: f64, peak: f64, p: &ScoreParams) -> f64 {
    let median = median + p.score_memory_epsilon;
    if median <= p.score_memory_epsilon {
        return if peak == 0.0 { 1.0 } else { 0.0 };
    }
    let metric = (std / median) + (peak / median - 1.0);
    let mut ms = decay(metric, p.gamma);
    if peak / median > p.mem_spike_threshold_ratio {
        ms *= decay((peak / median) - p.mem_spike_threshold_ratio, p.gamma);
    }
    ms
}

/// Error Volatility from the error rate, the variance-to-mean ratio of the
/// 0/1 error series and the longest run of errors.
pub fn errors(rate: f64, vmr: f64, longest_run: f64, p: &ScoreParams) -> f64 {
    let mut ev = decay(rate + p.score_error_vmr_multiplier * vmr, p.delta);
    if rate > p.error_spike_threshold {
        let impact = (rate - p.error_spike_threshold) / (1.0 - p.error_spike_threshold);
        ev *= 1.0 - impact * p.score_error_spike_impact_multiplier;
    }
    if longest_run >= p.consecutive_error_threshold {
        let factor = longest_run - p.consecutive_error_threshold + 1.0;
        ev *= decay(factor, p.delta * p.score_consecutive_error_decay_multiplier);
    }
    ev
}

/// Concurrency Chaos. `wait` is (mean, CV) of wait times when there are at
/// least two; `lag_mean` the mean event-loop lag when there are lag readings.
pub fn concurrency(wait: Option<(f64, f64)>, lag_mean: Option<f64>, p: &ScoreParams) -> f64 {
    let mut cc = 1.0;
    if let Some((mean, cv)) = wait {
        if mean > p.concurrency_wait_threshold {
            cc = decay(cv, p.alpha);
        }
    }
    if let Some(lag) = lag_mean {
        if lag > 0.01 {
            cc *= 1.0 - (lag * 5.0).min(1.0);
        }
    }
    cc.max(0.0)
}

/// The weighted PSS of the five sub-scores (ts, ms, ev, be, cc) and of
/// custom metrics' (weight, score) after them, in pypss's order of
/// summation: the raw 0–1 value and the 0–100 integer pypss reports.
pub fn pss_with(sub: &SubScores, extra: &[(f64, f64)], p: &ScoreParams) -> (f64, f64) {
    let w = p.weights().to_array();
    let sub = sub.to_array();
    let mut raw = w[0] * sub[0] + w[1] * sub[1] + w[2] * sub[2] + w[3] * sub[3] + w[4] * sub[4];
    let mut total = w[0] + w[1] + w[2] + w[3] + w[4];
    for (weight, score) in extra {
        raw += weight * score;
        total += weight;
    }
    if total > 0.0 {
        raw /= total;
    }
    (raw, py_round(0.0f64.max(raw.min(1.0)) * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn perfect_statistics_score_one() {
        let p = ScoreParams::default();
        assert_eq!(timing(0.0, 1.0, &p), 1.0);
        assert_eq!(errors(0.0, 0.0, 0.0, &p), 1.0);
        assert_eq!(concurrency(None, None, &p), 1.0);
        assert_eq!(pss_with(&SubScores::from_array([1.0; 5]), &[], &p), (1.0, 100.0));
    }

    #[test]
    fn each_parameter_moves_its_formula() {
        let p = ScoreParams::default();
        let more = |f: &dyn Fn(&ScoreParams) -> f64, q: ScoreParams| (f(&p), f(&q));
        let (a, b) = more(&|q| timing(0.5, 2.0, q), ScoreParams { alpha: p.alpha * 2.0, ..p.clone() });
        assert!(b < a);
        let (a, b) = more(&|q| timing(0.5, 2.0, q), ScoreParams { beta: p.beta * 2.0, ..p.clone() });
        assert!(b < a);
        let (a, b) = more(&|q| memory(100.0, 10.0, 150.0, q), ScoreParams { gamma: p.gamma * 2.0, ..p.clone() });
        assert!(b < a);
        let (a, b) = more(&|q| errors(0.2, 0.8, 1.0, q), ScoreParams { delta: p.delta * 2.0, ..p.clone() });
        assert!(b < a);
        let (a, b) = more(
            &|q| concurrency(Some((0.5, 1.0)), None, q),
            ScoreParams { concurrency_wait_threshold: 1.0, ..p.clone() },
        );
        assert!(b > a, "above the threshold only");
    }

    #[test]
    fn weights_average_the_sub_scores() {
        let p = ScoreParams { w_ts: 1.0, w_ms: 1.0, w_ev: 0.0, w_be: 0.0, w_cc: 0.0, ..ScoreParams::default() };
        let (raw, pss_) = pss_with(&SubScores::from_array([0.5, 1.0, 0.0, 0.0, 0.0]), &[], &p);
        assert_relative_eq!(raw, 0.75);
        assert_eq!(pss_, 75.0);
    }
}
