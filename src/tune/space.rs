//! The search space: pypss's weights (on the simplex), sensitivities and
//! thresholds, the per-metric alert thresholds and `alert_threshold_pss`,
//! encoded as a point of the unit cube.

use serde::Serialize;

use crate::config::{AlertParams, ScoreParams};

/// How a parameter maps from [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Scale {
    Linear,
    Log,
    /// Linear, rounded to a whole number.
    Integer,
}

/// One tuned parameter with its bounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dim {
    pub key: &'static str,
    pub lo: f64,
    pub hi: f64,
    pub scale: Scale,
}

impl Dim {
    fn decode(&self, u: f64) -> f64 {
        let u = u.clamp(0.0, 1.0);
        match self.scale {
            Scale::Linear => self.lo + u * (self.hi - self.lo),
            Scale::Integer => (self.lo + u * (self.hi - self.lo)).round(),
            Scale::Log => self.lo * (self.hi / self.lo).powf(u),
        }
    }

    fn encode(&self, v: f64) -> f64 {
        let u = match self.scale {
            Scale::Linear | Scale::Integer => (v - self.lo) / (self.hi - self.lo),
            Scale::Log => (v / self.lo).ln() / (self.hi / self.lo).ln(),
        };
        if u.is_finite() {
            u.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// The tuned parameters and their bounds. Defaults are wide enough to turn a
/// sub-score's sensitivity almost off (`alpha`..`delta` down to 0.01).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Space {
    pub dims: Vec<Dim>,
}

/// The five weights come first, in this order.
const WEIGHTS: [&str; 5] = ["w_ts", "w_ms", "w_ev", "w_be", "w_cc"];

impl Default for Space {
    fn default() -> Self {
        use Scale::*;
        let d = |key, lo, hi, scale| Dim { key, lo, hi, scale };
        Space {
            dims: vec![
                d("w_ts", 0.0, 1.0, Linear),
                d("w_ms", 0.0, 1.0, Linear),
                d("w_ev", 0.0, 1.0, Linear),
                d("w_be", 0.0, 1.0, Linear),
                d("w_cc", 0.0, 1.0, Linear),
                d("alpha", 0.01, 5.0, Log),
                d("beta", 0.01, 5.0, Log),
                d("gamma", 0.01, 10.0, Log),
                d("delta", 0.01, 5.0, Log),
                d("mem_spike_threshold_ratio", 1.0, 5.0, Linear),
                d("concurrency_wait_threshold", 1e-5, 0.1, Log),
                d("error_spike_threshold", 0.0, 0.5, Linear),
                d("consecutive_error_threshold", 1.0, 20.0, Integer),
                d("alert_threshold_ts", 0.0, 1.0, Linear),
                d("alert_threshold_ms", 0.0, 1.0, Linear),
                d("alert_threshold_ev", 0.0, 1.0, Linear),
                d("alert_threshold_be", 0.0, 1.0, Linear),
                d("alert_threshold_cc", 0.0, 1.0, Linear),
                d("alert_threshold_pss", 0.0, 100.0, Linear),
            ],
        }
    }
}

/// A decoded candidate.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Candidate {
    pub score: ScoreParams,
    pub alert: AlertParams,
}

impl Space {
    /// Number of dimensions.
    pub fn len(&self) -> usize {
        self.dims.len()
    }

    /// True when there is nothing to tune.
    pub fn is_empty(&self) -> bool {
        self.dims.is_empty()
    }

    /// Replaces the bounds of `key`; an error names an unknown key or bad bounds.
    pub fn set_bounds(&mut self, key: &str, lo: f64, hi: f64) -> Result<(), String> {
        let d = self.dims.iter_mut().find(|d| d.key == key).ok_or_else(|| format!("no tunable parameter '{key}'"))?;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) || (d.scale == Scale::Log && lo <= 0.0) {
            return Err(format!("bounds of '{key}' must be finite with lo < hi (and lo > 0 on a log scale)"));
        }
        d.lo = lo;
        d.hi = hi;
        Ok(())
    }

    /// Decodes a unit-cube point; weights are normalised to sum to 1.
    pub fn decode(&self, u: &[f64]) -> Candidate {
        let mut s = ScoreParams::default();
        let mut a = AlertParams::default();
        let mut w = [0.0f64; 5];
        for (d, &x) in self.dims.iter().zip(u) {
            let v = d.decode(x);
            match d.key {
                "w_ts" => w[0] = v,
                "w_ms" => w[1] = v,
                "w_ev" => w[2] = v,
                "w_be" => w[3] = v,
                "w_cc" => w[4] = v,
                "alpha" => s.alpha = v,
                "beta" => s.beta = v,
                "gamma" => s.gamma = v,
                "delta" => s.delta = v,
                "mem_spike_threshold_ratio" => s.mem_spike_threshold_ratio = v,
                "concurrency_wait_threshold" => s.concurrency_wait_threshold = v,
                "error_spike_threshold" => s.error_spike_threshold = v,
                "consecutive_error_threshold" => s.consecutive_error_threshold = v,
                "alert_threshold_ts" => a.ts = v,
                "alert_threshold_ms" => a.ms = v,
                "alert_threshold_ev" => a.ev = v,
                "alert_threshold_be" => a.be = v,
                "alert_threshold_cc" => a.cc = v,
                "alert_threshold_pss" => a.pss = v,
                _ => {}
            }
        }
        let total: f64 = w.iter().sum();
        let w = if total > 1e-9 { w.map(|x| x / total) } else { [0.2; 5] };
        s.w_ts = w[0];
        s.w_ms = w[1];
        s.w_ev = w[2];
        s.w_be = w[3];
        s.w_cc = w[4];
        Candidate { score: s, alert: a }
    }

    /// Encodes parameters as a unit-cube point (the inverse of [`decode`](Self::decode)
    /// up to weight normalisation).
    pub fn encode(&self, c: &Candidate) -> Vec<f64> {
        let s = &c.score;
        let a = &c.alert;
        let wmax = [s.w_ts, s.w_ms, s.w_ev, s.w_be, s.w_cc].into_iter().fold(0.0, f64::max).max(1e-12);
        self.dims
            .iter()
            .map(|d| {
                let v = match d.key {
                    "w_ts" => s.w_ts / wmax,
                    "w_ms" => s.w_ms / wmax,
                    "w_ev" => s.w_ev / wmax,
                    "w_be" => s.w_be / wmax,
                    "w_cc" => s.w_cc / wmax,
                    "alpha" => s.alpha,
                    "beta" => s.beta,
                    "gamma" => s.gamma,
                    "delta" => s.delta,
                    "mem_spike_threshold_ratio" => s.mem_spike_threshold_ratio,
                    "concurrency_wait_threshold" => s.concurrency_wait_threshold,
                    "error_spike_threshold" => s.error_spike_threshold,
                    "consecutive_error_threshold" => s.consecutive_error_threshold,
                    "alert_threshold_ts" => a.ts,
                    "alert_threshold_ms" => a.ms,
                    "alert_threshold_ev" => a.ev,
                    "alert_threshold_be" => a.be,
                    "alert_threshold_cc" => a.cc,
                    "alert_threshold_pss" => a.pss,
                    _ => 0.0,
                };
                if WEIGHTS.contains(&d.key) {
                    v.clamp(0.0, 1.0)
                } else {
                    d.encode(v)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip() {
        let sp = Space::default();
        let def = Candidate { score: ScoreParams::default(), alert: AlertParams::default() };
        let back = sp.decode(&sp.encode(&def));
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * (1.0 + b.abs());
        assert!(close(back.score.alpha, 2.0) && close(back.score.w_ts, 0.3) && close(back.score.w_cc, 0.15));
        assert!(close(back.alert.pss, 60.0) && close(back.alert.ev, 0.8));
        assert_eq!(back.score.consecutive_error_threshold, 3.0);
    }

    #[test]
    fn bounds_are_checked() {
        let mut sp = Space::default();
        assert!(sp.set_bounds("alpha", 0.001, 3.0).is_ok());
        assert!(sp.set_bounds("alpha", 0.0, 3.0).is_err());
        assert!(sp.set_bounds("nope", 0.0, 1.0).is_err());
        assert!(sp.set_bounds("beta", 2.0, 1.0).is_err());
    }
}
