//! Windows: the unit tuning and detection learn on. A window is
//! `[k·w, (k+1)·w)` in epoch seconds for one service (module `""`) or one
//! module of it; it holds the five sub-scores and PSS under a configuration
//! and the raw features the tuner and detectors read.

use crate::config::ScoreParams;
pub use crate::domain::{Features, Window};
use crate::pystats;
use crate::score::{self, Selection};
use crate::trace::TraceColumns;

/// Start of the window holding `t`, for windows of `w` seconds.
pub fn window_start(t: f64, w: f64) -> f64 {
    (t / w).floor() * w
}

/// Computes the features of a set of columns (complete rows only).
pub fn features(c: &TraceColumns) -> Features {
    let n = c.len();
    let mut f = Features::default();
    if n > 0 {
        let lat = &c.duration;
        f.lat_mean = lat.iter().sum::<f64>() / n as f64;
        f.lat_cv = score::cv(lat);
        let mut work = lat.clone();
        if let Some(q) = pystats::percentiles(&mut work, &[49, 94, 98]) {
            f.lat_p50 = q[0];
            f.lat_p95 = q[1];
            f.lat_p99 = q[2];
            f.tail_ratio = if q[0] > 0.0 { q[1] / q[0] } else { 1.0 };
        } else {
            f.lat_p50 = lat[0];
            f.lat_p95 = lat[0];
            f.lat_p99 = lat[0];
            f.tail_ratio = 1.0;
        }
        f.mem_peak = c.memory.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        f.mem_median = pystats::median(&mut c.memory.clone()).unwrap_or(0.0);
        f.mem_slope = slope(&c.timestamp, &c.memory);
        let k = c.error.iter().filter(|&&e| e).count();
        f.error_rate = k as f64 / n as f64;
        if k > 0 && n > 1 {
            f.error_vmr = pystats::variance_of_bools(k as u64, n as u64).unwrap_or(0.0) / f.error_rate;
        }
        let (mut run, mut longest) = (0u64, 0u64);
        for &e in &c.error {
            run = if e { run + 1 } else { 0 };
            longest = longest.max(run);
        }
        f.error_longest_run = longest as f64;
        // Left to right, as Python's built-in sum (pypss's mean wait).
        f.wait_mean = c.wait_time.iter().fold(0.0, |a, &b| a + b) / n as f64;
        f.wait_cv = score::cv(&c.wait_time);
        let mut counts = vec![0u64; c.tags.len()];
        for &t in &c.branch_tag {
            if t != crate::trace::NONE {
                counts[t as usize] += 1;
            }
        }
        let total: u64 = counts.iter().sum();
        f.tag_count = counts.iter().filter(|&&x| x > 0).count() as f64;
        if total > 0 {
            f.tag_entropy = counts
                .iter()
                .filter(|&&x| x > 0)
                .map(|&x| {
                    let p = x as f64 / total as f64;
                    -p * p.log2()
                })
                .sum();
        }
    }
    let lags: Vec<f64> = c.sys_lag.iter().flatten().map(|l| l.as_f64()).collect();
    if !lags.is_empty() {
        // Left to right, as Python's built-in sum over floats.
        f.lag_mean = lags.iter().fold(0.0, |a, &b| a + b) / lags.len() as f64;
    }
    f.lag_count = lags.len() as f64;
    f.rows = c.stage.iter().filter(|&&s| s == crate::trace::Stage::Complete).count() as f64;
    if c.memory.len() >= 2 {
        f.mem_std = pystats::stdev(&c.memory).unwrap_or(0.0);
    }
    f
}

/// Least-squares slope of `y` against `x` over pairs with finite `x`.
fn slope(x: &[f64], y: &[f64]) -> f64 {
    let pts: Vec<(f64, f64)> = x.iter().zip(y).filter(|(a, _)| a.is_finite()).map(|(&a, &b)| (a, b)).collect();
    if pts.len() < 2 {
        return 0.0;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx > 0.0 {
        sxy / sxx
    } else {
        0.0
    }
}

/// What a window is scored with.
#[derive(Debug, Clone, Copy)]
pub struct Scoring<'a> {
    pub params: &'a ScoreParams,
    /// Fewer traces: the window is too small to alarm.
    pub min_traces: u64,
    pub custom: &'a crate::score::custom::CustomMetrics,
}

/// Scores one window's columns.
pub fn score_window(
    service: &str,
    module: &str,
    start: f64,
    seconds: f64,
    c: &TraceColumns,
    how: &Scoring<'_>,
) -> Window {
    let (p, min_traces, custom) = (how.params, how.min_traces, how.custom);
    let s = score::score_with(c, Selection::All, p, custom);
    let b = s.breakdown;
    let traces = (c.len() + c.sys_module.len()) as u64;
    Window {
        service: service.to_string(),
        module: module.to_string(),
        start,
        seconds,
        traces,
        errors: c.error.iter().filter(|&&e| e).count() as u64,
        too_small: (c.len() as u64) < min_traces,
        pss: s.pss as f64,
        sub: b,
        features: Features { be_raw: s.raw.branching_entropy, ..features(c) },
        custom: s
            .custom
            .iter()
            .map(|m| crate::domain::CustomValue {
                code: m.code.clone(),
                score: m.score,
                weight: m.weight,
                decay: m.decay,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_starts_align_to_epoch() {
        assert_eq!(window_start(125.0, 60.0), 120.0);
        assert_eq!(window_start(120.0, 60.0), 120.0);
        assert_eq!(window_start(-1.0, 60.0), -60.0);
    }

    #[test]
    fn slope_of_a_line() {
        assert!((slope(&[0.0, 1.0, 2.0], &[1.0, 3.0, 5.0]) - 2.0).abs() < 1e-12);
    }

    /// Every configuration key that changes a score from traces changes
    /// re-scoring from stored features the same way: both go through
    /// `score::formula`. (`score_latency_tail_percentile` is the exception
    /// re-scoring states: windows store the p95 tail only.)
    #[test]
    fn every_score_key_changes_rescoring_as_it_changes_scoring() {
        let traces: Vec<String> = (0..400)
            .map(|i| {
                format!(
                    r#"{{"duration":{},"memory":{},"wait_time":{},"error":{},"branch_tag":"b{}","timestamp":{}}}"#,
                    0.01 + (i % 13) as f64 * 0.004 + if i % 97 == 0 { 0.3 } else { 0.0 },
                    1_000_000 + (i % 29) * 5_000 + if i == 200 { 4_000_000 } else { 0 },
                    0.002 * (i % 7) as f64,
                    i % 7 == 0 || (150..156).contains(&i),
                    i % 3,
                    1000.0 + i as f64 * 0.1
                )
            })
            .collect();
        let text = format!("[{}]", traces.join(","));
        let keep = crate::trace::ColumnOptions { timestamps: true, names: false, memory_diff: false };
        let mut c = TraceColumns::with_options("unknown", keep);
        crate::trace::read_bytes("t", text.as_bytes(), &mut c).unwrap();
        let d = ScoreParams::default();
        let stored = score_window(
            "s",
            "",
            1000.0,
            60.0,
            &c,
            &Scoring { params: &d, min_traces: 1, custom: &Default::default() },
        );
        let variants: Vec<(&str, ScoreParams)> = vec![
            ("w_ts", ScoreParams { w_ts: 3.0, ..d.clone() }),
            ("w_ms", ScoreParams { w_ms: 3.0, ..d.clone() }),
            ("w_ev", ScoreParams { w_ev: 3.0, ..d.clone() }),
            ("w_be", ScoreParams { w_be: 3.0, ..d.clone() }),
            ("w_cc", ScoreParams { w_cc: 3.0, ..d.clone() }),
            ("alpha", ScoreParams { alpha: 0.3, ..d.clone() }),
            ("beta", ScoreParams { beta: 2.5, ..d.clone() }),
            ("gamma", ScoreParams { gamma: 0.2, ..d.clone() }),
            ("mem_spike_threshold_ratio", ScoreParams { mem_spike_threshold_ratio: 1.1, ..d.clone() }),
            ("delta", ScoreParams { delta: 4.0, ..d.clone() }),
            ("error_spike_threshold", ScoreParams { error_spike_threshold: 0.05, ..d.clone() }),
            ("consecutive_error_threshold", ScoreParams { consecutive_error_threshold: 2.0, ..d.clone() }),
            ("concurrency_wait_threshold", ScoreParams { concurrency_wait_threshold: 1.0, ..d.clone() }),
            ("score_memory_epsilon", ScoreParams { score_memory_epsilon: 1e5, ..d.clone() }),
            ("score_error_vmr_multiplier", ScoreParams { score_error_vmr_multiplier: 2.0, ..d.clone() }),
            (
                "score_error_spike_impact_multiplier",
                ScoreParams { score_error_spike_impact_multiplier: 0.9, ..d.clone() },
            ),
            (
                "score_consecutive_error_decay_multiplier",
                ScoreParams { score_consecutive_error_decay_multiplier: 3.0, ..d.clone() },
            ),
        ];
        let base = score::rescore::rescore(&stored, &d);
        for (key, p) in variants {
            let from_traces = score_window(
                "s",
                "",
                1000.0,
                60.0,
                &c,
                &Scoring { params: &p, min_traces: 1, custom: &Default::default() },
            );
            let r = score::rescore::rescore(&stored, &p);
            assert_eq!(r.pss, from_traces.pss, "{key}: PSS");
            assert_eq!(r.breakdown, from_traces.sub, "{key}: sub-scores");
            assert!(r.pss_raw != base.pss_raw, "{key} changed nothing: the test data does not exercise it");
        }
    }

    /// Custom metrics that `alpha` or `gamma` decay (IO, DB, GC) follow them
    /// when a stored window is re-scored, as scoring its traces would; the
    /// others keep their stored score, at the weights the parameters give.
    #[test]
    fn custom_metrics_rescore_as_they_score() {
        let traces: Vec<String> = (0..200)
            .map(|i| {
                format!(
                    r#"{{"name":"{}","duration":{},"wait_time":{},"memory_diff":{},"branch_tag":"{}","timestamp":{}}}"#,
                    if i % 4 == 0 { "db_query" } else { "render" },
                    0.01 + (i % 11) as f64 * 0.003,
                    0.001 * (i % 5) as f64,
                    if i % 6 == 0 { -200.0 - (i % 17) as f64 * 40.0 } else { 10.0 },
                    if i % 3 == 0 { "cache_miss" } else { "cache_hit" },
                    1000.0 + i as f64 * 0.1
                )
            })
            .collect();
        let keep = crate::trace::ColumnOptions { timestamps: true, names: true, memory_diff: true };
        let mut c = TraceColumns::with_options("unknown", keep);
        crate::trace::read_bytes("t", format!("[{}]", traces.join(",")).as_bytes(), &mut c).unwrap();
        let plugins: Vec<String> = ["IO", "DB", "GC", "CACHE"].map(String::from).to_vec();
        // The metrics as a configuration with `p`'s weights resolves them.
        let custom = |p: &ScoreParams| {
            let (metrics, _) = crate::score::custom::resolve(&plugins, p, vec![]);
            crate::score::custom::CustomMetrics { metrics, ..Default::default() }
        };
        let d = ScoreParams::default();
        let mut stored =
            score_window("s", "", 1000.0, 60.0, &c, &Scoring { params: &d, min_traces: 1, custom: &custom(&d) });
        assert_eq!(stored.custom.iter().filter(|v| v.decay.is_some()).count(), 3, "IO, DB and GC decay");
        // As the store keeps them.
        let json = serde_json::to_string(&stored.custom).unwrap();
        stored.custom = serde_json::from_str(&json).unwrap();
        let mut weights = d.clone();
        weights.custom_weights = vec![("CACHE".into(), 0.9), ("GC".into(), 0.05)];
        for p in [
            ScoreParams { alpha: 0.3, ..d.clone() },
            ScoreParams { gamma: 0.2, ..d.clone() },
            ScoreParams { alpha: 4.0, gamma: 3.0, ..weights },
        ] {
            let m = custom(&p);
            let want = score_window("s", "", 1000.0, 60.0, &c, &Scoring { params: &p, min_traces: 1, custom: &m });
            let got = score::rescore::rescore(&stored, &p);
            assert_eq!(got.pss, want.pss);
            let raw = score::score_with(&c, Selection::All, &p, &m).pss_raw;
            approx::assert_abs_diff_eq!(got.pss_raw, raw, epsilon = 1e-12);
            let moved = want.custom.iter().zip(&stored.custom).filter(|(a, b)| a.score != b.score).count();
            assert!(moved >= 1, "the parameters move a custom metric's score");
        }
    }
}
