//! Windows: the unit tuning and detection learn on. A window is
//! `[k·w, (k+1)·w)` in epoch seconds for one service (module `""`) or one
//! module of it; it holds the five sub-scores and PSS under a configuration
//! and the raw features the tuner and detectors read.

use serde::{Deserialize, Serialize};

use crate::config::ScoreParams;
use crate::score::{self, pystats, Selection};
use crate::trace::TraceColumns;

/// Start of the window holding `t`, for windows of `w` seconds.
pub fn window_start(t: f64, w: f64) -> f64 {
    (t / w).floor() * w
}

/// Raw per-window features (names are the column names in the store and in
/// exports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Features {
    pub lat_mean: f64,
    pub lat_p50: f64,
    pub lat_p95: f64,
    pub lat_p99: f64,
    pub lat_cv: f64,
    pub tail_ratio: f64,
    pub mem_median: f64,
    pub mem_peak: f64,
    /// Least-squares slope of memory against time, bytes per second.
    pub mem_slope: f64,
    pub error_rate: f64,
    /// Variance-to-mean ratio of the 0/1 error series.
    pub error_vmr: f64,
    pub error_longest_run: f64,
    pub wait_mean: f64,
    pub wait_cv: f64,
    /// Distinct branch tags.
    pub tag_count: f64,
    /// Shannon entropy of branch tags, bits.
    pub tag_entropy: f64,
    /// Mean event-loop lag of system traces (0 when none).
    pub lag_mean: f64,
    /// Sample standard deviation of memory (pypss's `statistics.stdev`).
    pub mem_std: f64,
    /// Regular (non-system) traces with every value converted.
    pub rows: f64,
    /// Branching Entropy sub-score before rounding (it has no parameters).
    pub be_raw: f64,
    /// System traces with a lag reading.
    pub lag_count: f64,
}

impl Features {
    /// Feature names, in the order of [`Features::values`].
    pub const NAMES: [&'static str; 21] = [
        "lat_mean",
        "lat_p50",
        "lat_p95",
        "lat_p99",
        "lat_cv",
        "tail_ratio",
        "mem_median",
        "mem_peak",
        "mem_slope",
        "error_rate",
        "error_vmr",
        "error_longest_run",
        "wait_mean",
        "wait_cv",
        "tag_count",
        "tag_entropy",
        "lag_mean",
        "mem_std",
        "rows",
        "be_raw",
        "lag_count",
    ];

    /// Values in the order of [`Features::NAMES`].
    pub fn values(&self) -> [f64; 21] {
        [
            self.lat_mean,
            self.lat_p50,
            self.lat_p95,
            self.lat_p99,
            self.lat_cv,
            self.tail_ratio,
            self.mem_median,
            self.mem_peak,
            self.mem_slope,
            self.error_rate,
            self.error_vmr,
            self.error_longest_run,
            self.wait_mean,
            self.wait_cv,
            self.tag_count,
            self.tag_entropy,
            self.lag_mean,
            self.mem_std,
            self.rows,
            self.be_raw,
            self.lag_count,
        ]
    }

    /// Builds from values in the order of [`Features::NAMES`].
    pub fn from_values(v: &[f64; 21]) -> Features {
        Features {
            lat_mean: v[0],
            lat_p50: v[1],
            lat_p95: v[2],
            lat_p99: v[3],
            lat_cv: v[4],
            tail_ratio: v[5],
            mem_median: v[6],
            mem_peak: v[7],
            mem_slope: v[8],
            error_rate: v[9],
            error_vmr: v[10],
            error_longest_run: v[11],
            wait_mean: v[12],
            wait_cv: v[13],
            tag_count: v[14],
            tag_entropy: v[15],
            lag_mean: v[16],
            mem_std: v[17],
            rows: v[18],
            be_raw: v[19],
            lag_count: v[20],
        }
    }
}

/// One scored window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub service: String,
    /// `""` for the whole service.
    pub module: String,
    pub start: f64,
    pub seconds: f64,
    pub traces: u64,
    pub errors: u64,
    /// Fewer than `min_window_traces` traces: kept, never alarms.
    pub too_small: bool,
    pub pss: f64,
    pub ts: f64,
    pub ms: f64,
    pub ev: f64,
    pub be: f64,
    pub cc: f64,
    pub features: Features,
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

/// Scores one window's columns.
pub fn score_window(
    service: &str,
    module: &str,
    start: f64,
    seconds: f64,
    c: &TraceColumns,
    p: &ScoreParams,
    min_traces: u64,
) -> Window {
    let s = score::score(c, Selection::All, p);
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
        ts: b.timing_stability,
        ms: b.memory_stability,
        ev: b.error_volatility,
        be: b.branching_entropy,
        cc: b.concurrency_chaos,
        features: Features { be_raw: s.raw.branching_entropy, ..features(c) },
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
}
