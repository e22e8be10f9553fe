//! A causal streaming detector for a metric series (latency, CPU, error rate,
//! event-loop lag): each point is scored by an isolation forest trained only
//! on the shingles (runs of consecutive values) that ended before it, within
//! a sliding window, retrained every few points. Scoring the first k points
//! of a series gives them exactly the scores they get in the whole series:
//! nothing uses the series' length, later values or whole-series statistics,
//! and each retrain's seed depends only on the seed and its position.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::iforest::IsolationForestParams;

/// Streaming detector parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesParams {
    /// Values per shingle.
    pub shingle: usize,
    /// Past shingles the model learns from.
    pub window: usize,
    /// Retrain after this many points.
    pub retrain_every: usize,
    /// Past shingles needed before the first score (earlier points score 0).
    pub min_history: usize,
    pub n_estimators: usize,
    pub max_samples: usize,
    pub seed: u64,
}

impl Default for SeriesParams {
    fn default() -> Self {
        SeriesParams {
            shingle: 8,
            window: 1024,
            retrain_every: 64,
            min_history: 128,
            n_estimators: 64,
            max_samples: 256,
            seed: 7,
        }
    }
}

impl SeriesParams {
    /// Validates the parameters.
    pub fn check(&self) -> Result<(), String> {
        if self.shingle == 0 || self.shingle > 256 {
            return Err(format!("shingle must be 1 to 256, got {}", self.shingle));
        }
        if self.retrain_every == 0 {
            return Err("retrain_every must be at least 1".into());
        }
        if self.min_history < 2 || self.window < self.min_history {
            return Err(format!("need 2 <= min_history ({}) <= window ({})", self.min_history, self.window));
        }
        Ok(())
    }
}

/// Scores every point of `values` in [0, 1], causally.
pub fn score_series(values: &[f64], p: &SeriesParams) -> Vec<f64> {
    let k = p.shingle;
    let mut out = vec![0.0; values.len()];
    let mut model = None;
    let shingle = |t: usize| &values[t + 1 - k..=t];
    for (t, slot) in out.iter_mut().enumerate() {
        if t + 1 < k {
            continue;
        }
        // Shingles ending strictly before t: indices k-1 ..= t-1.
        let available = t.saturating_sub(k - 1);
        if t % p.retrain_every == 0 && available >= p.min_history {
            let first = (t - available.min(p.window)).max(k - 1);
            let rows: Vec<f64> = (first..t).flat_map(|e| shingle(e).iter().copied()).collect();
            let x = Array2::from_shape_vec((t - first, k), rows).expect("shape");
            let params = IsolationForestParams {
                n_estimators: p.n_estimators,
                max_samples: p.max_samples,
                contamination: None,
                extended: false,
                // The seed of a retrain depends only on where it happens.
                seed: p.seed ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            };
            model = params.check().ok().and_then(|c| c.fit(&x.view()).ok());
        }
        if let Some(m) = &model {
            let x = Array2::from_shape_vec((1, k), shingle(t).to_vec()).expect("shape");
            *slot = m.score(&x.view())[0].clamp(0.0, 1.0);
        }
    }
    rank_recent(&out, p.window)
}

/// Each raw score as the share of the previous `w` scored points it
/// exceeds: a causal, per-series calibration that makes one threshold mean
/// the same on every series (raw isolation scores sit at different levels).
fn rank_recent(raw: &[f64], w: usize) -> Vec<f64> {
    let mut out = vec![0.0; raw.len()];
    let mut first = None;
    for (t, o) in out.iter_mut().enumerate() {
        if raw[t] == 0.0 && first.is_none() {
            continue; // warm-up: no model yet
        }
        let f = *first.get_or_insert(t);
        let lo = t.saturating_sub(w).max(f);
        let past = &raw[lo..t];
        if past.len() < 32 {
            continue;
        }
        let below = past.iter().filter(|&&x| x < raw[t]).count();
        *o = below as f64 / past.len() as f64;
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
        let p = SeriesParams::default();
        let all = score_series(&v, &p);
        for k in [1, 7, 129, 500, 701] {
            assert_eq!(score_series(&v[..k], &p), all[..k].to_vec(), "prefix {k}");
        }
    }

    #[test]
    fn a_spike_scores_highest_and_scores_are_in_range() {
        let v = series(1000);
        let s = score_series(&v, &SeriesParams::default());
        assert!(s.iter().all(|x| (0.0..=1.0).contains(x)));
        let top = s.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert!((700..708).contains(&top), "top at {top}");
    }
}
