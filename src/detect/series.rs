//! A causal streaming detector for a metric series (latency, CPU, error rate,
//! event-loop lag).
//!
//! The series is looked at in a few *views*: shingles (runs of consecutive
//! values) of a few lengths, some with their differences from one period
//! earlier when the series repeats (daily traffic, say). In each view an
//! isolation forest with range-aware scoring is trained on the shingles
//! that ended before the point, within a sliding window, and retrained
//! every few points. Each view's raw score is calibrated against the
//! series' own recent scores ([`excess_over_bar`]), and the point's score
//! is the mean over the views: a surprise seen from several angles at once
//! outranks noise that one view happens to find odd.
//!
//! Causal: scoring the first k points of a series gives them exactly the
//! scores they get in the whole series. Nothing uses the series' length,
//! later values or whole-series statistics, and each retrain's seed depends
//! only on the seed, the view and its position.

use std::str::FromStr;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::iforest::IsolationForestParams;

/// One way of looking at the series: shingles of `shingle` values and, with
/// `seasonal`, their differences from one detected period earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub shingle: usize,
    pub seasonal: bool,
}

impl FromStr for View {
    type Err = String;

    /// `4` is a 4-value shingle; `4s` adds its differences from one period earlier.
    fn from_str(s: &str) -> Result<View, String> {
        let t = s.trim();
        let (n, seasonal) = match t.strip_suffix('s') {
            Some(n) => (n, true),
            None => (t, false),
        };
        let shingle = n.parse().map_err(|_| format!("view '{s}': expected a shingle length like 4 or 4s"))?;
        Ok(View { shingle, seasonal })
    }
}

impl std::fmt::Display for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.shingle, if self.seasonal { "s" } else { "" })
    }
}

/// Parses a comma-separated list of views (`4s,1s,1,2s`).
pub fn parse_views(s: &str) -> Result<Vec<View>, String> {
    s.split(',').filter(|p| !p.trim().is_empty()).map(View::from_str).collect()
}

/// Streaming detector parameters. The defaults are the ones measured on
/// NAB in the README; none is chosen per series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesParams {
    /// The views whose calibrated scores are averaged.
    pub views: Vec<View>,
    /// Past points the forests learn from.
    pub window: usize,
    /// Retrain after this many points.
    pub retrain_every: usize,
    /// Past shingles needed before the first score (earlier points score 0).
    pub min_history: usize,
    pub n_estimators: usize,
    pub max_samples: usize,
    /// Time constant, in points, of the alarm bar's decay back to normal
    /// after a high score (see [`excess_over_bar`]).
    pub memory: usize,
    /// Time constant, in points, of the running mean and spread of raw scores.
    pub spread_memory: usize,
    pub seed: u64,
}

impl Default for SeriesParams {
    fn default() -> Self {
        SeriesParams {
            views: vec![
                View { shingle: 4, seasonal: true },
                View { shingle: 1, seasonal: true },
                View { shingle: 1, seasonal: false },
                View { shingle: 2, seasonal: true },
            ],
            window: 2048,
            retrain_every: 64,
            min_history: 128,
            n_estimators: 32,
            max_samples: 256,
            memory: 4096,
            spread_memory: 512,
            seed: 7,
        }
    }
}

/// Why series parameters are invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SeriesParamsError(String);

/// [`SeriesParams`] that passed [`SeriesParams::check`]: what scoring takes.
#[derive(Debug, Clone)]
pub struct CheckedSeriesParams(SeriesParams);

impl std::ops::Deref for CheckedSeriesParams {
    type Target = SeriesParams;
    fn deref(&self) -> &SeriesParams {
        &self.0
    }
}

impl SeriesParams {
    /// Validates the parameters.
    pub fn check(self) -> Result<CheckedSeriesParams, SeriesParamsError> {
        let fail = |m: String| Err(SeriesParamsError(m));
        if self.views.is_empty() {
            return fail("give at least one view".into());
        }
        if let Some(v) = self.views.iter().find(|v| v.shingle == 0 || v.shingle > 256) {
            return fail(format!("view {v}: shingle must be 1 to 256"));
        }
        if self.retrain_every == 0 {
            return fail("retrain_every must be at least 1".into());
        }
        if self.min_history < 2 || self.window < self.min_history {
            return fail(format!("need 2 <= min_history ({}) <= window ({})", self.min_history, self.window));
        }
        if self.memory == 0 || self.spread_memory == 0 {
            return fail("memory and spread_memory must be at least 1".into());
        }
        Ok(CheckedSeriesParams(self))
    }
}

/// Scores every point of `values` in [0, 1], causally. Views are scored on
/// separate threads; the result does not depend on it.
pub fn score_series(values: &[f64], p: &CheckedSeriesParams) -> Vec<f64> {
    let periods = periods(values, p);
    let per_view: Vec<Vec<f64>> = std::thread::scope(|s| {
        let handles: Vec<_> = p
            .views
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let periods = &periods;
                s.spawn(move || {
                    let raw = raw_scores(values, periods, *v, i as u64, p);
                    excess_over_bar(&raw, p.memory, p.spread_memory)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a view's scoring does not panic")).collect()
    });
    let n = per_view.len().max(1) as f64;
    (0..values.len()).map(|t| per_view.iter().map(|v| v[t]).sum::<f64>() / n).collect()
}

/// The period in force at each point: re-estimated from the `window`
/// points before every fourth retrain, `None` while there is none.
fn periods(values: &[f64], p: &SeriesParams) -> Vec<Option<usize>> {
    if !p.views.iter().any(|v| v.seasonal) {
        return vec![None; values.len()];
    }
    let every = 4 * p.retrain_every;
    let mut current = None;
    (0..values.len())
        .map(|t| {
            if t > 0 && t % every == 0 {
                current = period(&values[t.saturating_sub(p.window)..t]);
            }
            current
        })
        .collect()
}

/// The strongest repeating period of `v`: the highest autocorrelation peak
/// above 0.3 at a lag of 4 to len/3, if any.
fn period(v: &[f64]) -> Option<usize> {
    let n = v.len();
    if n < 24 {
        return None;
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    let c: Vec<f64> = v.iter().map(|x| x - mean).collect();
    let var: f64 = c.iter().map(|x| x * x).sum();
    if var <= 0.0 {
        return None;
    }
    let acf: Vec<f64> = (0..=n / 3 + 1).map(|l| c[l..].iter().zip(&c).map(|(a, b)| a * b).sum::<f64>() / var).collect();
    (4..=n / 3)
        .filter(|&l| acf[l] > acf[l - 1] && acf[l] >= acf[l + 1] && acf[l] > 0.3)
        .max_by(|&a, &b| acf[a].total_cmp(&acf[b]))
}

/// Appends the features of the point at `t` in view `v` to `row`: its
/// shingle and, with a period, the shingle's differences from one period
/// earlier. False when `t` has too little history for them.
fn features(values: &[f64], t: usize, v: View, period: Option<usize>, row: &mut Vec<f64>) -> bool {
    let k = v.shingle;
    let lag = if v.seasonal { period.unwrap_or(0) } else { 0 };
    if t + 1 < k + lag {
        return false;
    }
    row.extend_from_slice(&values[t + 1 - k..=t]);
    if lag > 0 {
        row.extend((t + 1 - k..=t).map(|i| values[i] - values[i - lag]));
    }
    true
}

/// Raw isolation scores of one view (0 before the first model).
fn raw_scores(values: &[f64], periods: &[Option<usize>], v: View, view: u64, p: &SeriesParams) -> Vec<f64> {
    let mut out = vec![0.0; values.len()];
    let mut model = None;
    let mut row = Vec::new();
    for (t, slot) in out.iter_mut().enumerate() {
        if t + 1 < v.shingle {
            continue;
        }
        // Shingles ending strictly before t: indices shingle-1 ..= t-1.
        let available = t + 1 - v.shingle;
        if t % p.retrain_every == 0 && available >= p.min_history {
            let period = periods[t];
            let first = t - available.min(p.window);
            let mut rows = Vec::new();
            let n = (first..t).filter(|&e| features(values, e, v, period, &mut rows)).count();
            let params = IsolationForestParams {
                n_estimators: p.n_estimators,
                max_samples: p.max_samples,
                contamination: None,
                extended: false,
                bounded: true,
                // The seed of a retrain depends only on the view and where it happens.
                seed: p.seed
                    ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ view.wrapping_mul(0xD1B5_4A32_D192_ED03),
            };
            model = if n >= p.min_history / 2 {
                Array2::from_shape_vec((n, rows.len() / n), rows)
                    .ok()
                    .and_then(|x| params.check().ok()?.fit(&x.view()).ok())
                    .map(|m| (m, period))
            } else {
                None
            };
        }
        if let Some((m, period)) = &model {
            row.clear();
            if features(values, t, v, *period, &mut row) {
                *slot = m.score_one(&row).clamp(0.0, 1.0);
            }
        }
    }
    out
}

/// Calibrates raw scores so that one threshold means the same on every
/// series: how far a point's raw score rises above the *bar* — the highest
/// raw score seen so far, decaying back towards the running mean with time
/// constant `memory` — in units of the running mean absolute deviation
/// (time constant `spread`), mapped monotonically into [0, 1] (0.5 = at the
/// bar; 0 while the raw scores have not varied at all). A point must beat what this series has recently done, by a margin
/// measured in its own noise, to score high; after a large surprise the
/// bar comes back down, so the next incident can alarm again.
fn excess_over_bar(raw: &[f64], memory: usize, spread: usize) -> Vec<f64> {
    let mut out = vec![0.0; raw.len()];
    let Some(first) = raw.iter().position(|&x| x != 0.0) else { return out };
    let keep = (-1.0 / memory as f64).exp();
    let a = (-1.0 / spread as f64).exp();
    let (mut mean, mut dev, mut bar) = (raw[first], 0.0f64, raw[first]);
    for t in first + 1..raw.len() {
        let x = raw[t - 1];
        mean = a * mean + (1.0 - a) * x;
        dev = a * dev + (1.0 - a) * (x - mean).abs();
        bar = x.max(mean + (bar - mean) * keep);
        if t - first < 32 {
            continue; // too few scores to know what is usual
        }
        if dev <= 1e-12 && (raw[t] - bar).abs() <= 1e-12 {
            // Nothing has varied and nothing does now (a flat line): no
            // evidence of anything, not "at the bar" — else every point of
            // a constant series would tie with the bar of a noisy one, and
            // a threshold chosen on other series just below 0.5 floods it.
            continue;
        }
        let e = (raw[t] - bar) / dev.max(1e-9);
        out[t] = 0.5 + 0.5 * e / (1.0 + e.abs());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize) -> Vec<f64> {
        (0..n).map(|i| (i as f64 / 20.0).sin() * 10.0 + if i == 700 { 60.0 } else { 0.0 }).collect()
    }

    #[test]
    fn causal_prefix_gives_the_same_scores() {
        let v = series(1000);
        let p = SeriesParams::default().check().unwrap();
        let all = score_series(&v, &p);
        for k in [1, 7, 129, 500, 701] {
            assert_eq!(score_series(&v[..k], &p), all[..k].to_vec(), "prefix {k}");
        }
    }

    #[test]
    fn a_spike_scores_highest_and_scores_are_in_range() {
        let v = series(1000);
        let s = score_series(&v, &SeriesParams::default().check().unwrap());
        assert!(s.iter().all(|x| (0.0..=1.0).contains(x)));
        let top = s.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert!((700..708).contains(&top), "top at {top}");
    }

    #[test]
    fn a_flat_line_scores_zero_until_it_moves() {
        let mut v = vec![3.0; 1500];
        v[1200] = 9.0;
        let s = score_series(&v, &SeriesParams::default().check().unwrap());
        assert!(s[..1200].iter().all(|&x| x == 0.0), "{:?}", &s[1100..1200]);
        assert!(s[1200] > 0.9, "the first move stands out: {}", s[1200]);
    }

    #[test]
    fn finds_the_period_of_a_repeating_series() {
        let v: Vec<f64> = (0..900).map(|i| if i % 48 < 12 { 10.0 } else { 0.0 } + (i % 7) as f64 * 0.1).collect();
        assert_eq!(period(&v), Some(48));
        assert_eq!(period(&vec![3.0; 500]), None);
    }

    #[test]
    fn a_missing_daily_peak_is_found_with_seasonal_views() {
        // A daily pattern whose peak does not come on day 9: the values stay
        // in their usual range, only the period view can see it.
        let day = 96;
        let v: Vec<f64> = (0..day * 12)
            .map(|i| {
                let peak = i % day >= 40 && i % day < 60 && i / day != 9;
                (if peak { 50.0 } else { 10.0 }) + ((i * 7919) % 13) as f64 * 0.2
            })
            .collect();
        let s = score_series(&v, &SeriesParams::default().check().unwrap());
        let top = s.iter().enumerate().skip(day * 3).max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert!((day * 9 + 40..day * 9 + 60).contains(&top), "top at {top} (day {}, slot {})", top / day, top % day);
    }

    #[test]
    fn views_parse_and_bad_params_are_refused() {
        assert_eq!(
            parse_views("4s, 1").unwrap(),
            vec![View { shingle: 4, seasonal: true }, View { shingle: 1, seasonal: false }]
        );
        assert!(parse_views("x").is_err());
        assert!(SeriesParams { views: vec![], ..Default::default() }.check().is_err());
        assert!(SeriesParams { views: vec![View { shingle: 0, seasonal: false }], ..Default::default() }
            .check()
            .is_err());
        assert!(SeriesParams { window: 10, ..Default::default() }.check().is_err());
    }
}
