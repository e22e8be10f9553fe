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

/// Declares the tunable parameters once: the enum (a typo is a compile
/// error), each one's configuration key, and where it lives in a
/// [`Candidate`].
macro_rules! params {
    ($( $variant:ident => $key:literal, $part:ident $( . $field:ident )+; )+) => {
        /// A tunable parameter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum Param {
            $( #[serde(rename = $key)] $variant, )+
        }

        impl Param {
            /// Every parameter, in the default space's order.
            pub const ALL: &'static [Param] = &[$( Param::$variant ),+];

            /// The configuration key (pypss's name, or pss's `alert_threshold_*`).
            pub fn key(self) -> &'static str {
                match self { $( Param::$variant => $key, )+ }
            }

            /// The parameter of a configuration key.
            pub fn from_key(key: &str) -> Option<Param> {
                match key { $( $key => Some(Param::$variant), )+ _ => None }
            }

            /// An alarm threshold (in the candidate's alert part), not a
            /// parameter of the score.
            pub fn is_alert_threshold(self) -> bool {
                match self { $( Param::$variant => stringify!($part) == "alert", )+ }
            }

            /// Its value in a candidate.
            pub fn get(self, c: &Candidate) -> f64 {
                match self { $( Param::$variant => c.$part $( .$field )+, )+ }
            }

            /// Sets its value in a candidate.
            pub fn set(self, c: &mut Candidate, v: f64) {
                match self { $( Param::$variant => c.$part $( .$field )+ = v, )+ }
            }
        }
    };
}

params! {
    WTs => "w_ts", score.w_ts;
    WMs => "w_ms", score.w_ms;
    WEv => "w_ev", score.w_ev;
    WBe => "w_be", score.w_be;
    WCc => "w_cc", score.w_cc;
    Alpha => "alpha", score.alpha;
    Beta => "beta", score.beta;
    Gamma => "gamma", score.gamma;
    Delta => "delta", score.delta;
    MemSpikeThresholdRatio => "mem_spike_threshold_ratio", score.mem_spike_threshold_ratio;
    ConcurrencyWaitThreshold => "concurrency_wait_threshold", score.concurrency_wait_threshold;
    ErrorSpikeThreshold => "error_spike_threshold", score.error_spike_threshold;
    ConsecutiveErrorThreshold => "consecutive_error_threshold", score.consecutive_error_threshold;
    AlertTs => "alert_threshold_ts", alert.sub.timing_stability;
    AlertMs => "alert_threshold_ms", alert.sub.memory_stability;
    AlertEv => "alert_threshold_ev", alert.sub.error_volatility;
    AlertBe => "alert_threshold_be", alert.sub.branching_entropy;
    AlertCc => "alert_threshold_cc", alert.sub.concurrency_chaos;
    AlertPss => "alert_threshold_pss", alert.pss;
}

/// The five weights, in this order: decoded together onto the simplex.
const WEIGHTS: [Param; 5] = [Param::WTs, Param::WMs, Param::WEv, Param::WBe, Param::WCc];

/// One tuned parameter with its bounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dim {
    pub key: Param,
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
    /// Custom metrics whose weights are searched too (after `dims` in the
    /// unit cube, in [0, 1], on the simplex with the five weights).
    pub custom: Vec<CustomDim>,
}

/// A custom metric's weight as a dimension: its code and the weight the
/// windows were scored with (where a candidate that sets none sits).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomDim {
    pub code: String,
    pub weight: f64,
}

impl Default for Space {
    fn default() -> Self {
        use Param::*;
        use Scale::*;
        let d = |key, lo, hi, scale| Dim { key, lo, hi, scale };
        Space {
            dims: vec![
                d(WTs, 0.0, 1.0, Linear),
                d(WMs, 0.0, 1.0, Linear),
                d(WEv, 0.0, 1.0, Linear),
                d(WBe, 0.0, 1.0, Linear),
                d(WCc, 0.0, 1.0, Linear),
                d(Alpha, 0.01, 5.0, Log),
                d(Beta, 0.01, 5.0, Log),
                d(Gamma, 0.01, 10.0, Log),
                d(Delta, 0.01, 5.0, Log),
                d(MemSpikeThresholdRatio, 1.0, 5.0, Linear),
                d(ConcurrencyWaitThreshold, 1e-5, 0.1, Log),
                d(ErrorSpikeThreshold, 0.0, 0.5, Linear),
                d(ConsecutiveErrorThreshold, 1.0, 20.0, Integer),
                d(AlertTs, 0.0, 1.0, Linear),
                d(AlertMs, 0.0, 1.0, Linear),
                d(AlertEv, 0.0, 1.0, Linear),
                d(AlertBe, 0.0, 1.0, Linear),
                d(AlertCc, 0.0, 1.0, Linear),
                d(AlertPss, 0.0, 100.0, Linear),
            ],
            custom: Vec::new(),
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
        self.dims.len() + self.custom.len()
    }

    /// True when there is nothing to tune.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether dimension `i` is an alarm threshold (not a parameter of the score).
    pub fn is_alert_threshold(&self, i: usize) -> bool {
        self.dims.get(i).is_some_and(|d| d.key.is_alert_threshold())
    }

    /// Replaces the bounds of `key`; an error names an unknown key or bad bounds.
    pub fn set_bounds(&mut self, key: &str, lo: f64, hi: f64) -> Result<(), String> {
        let known = || Param::ALL.iter().map(|p| p.key()).collect::<Vec<_>>().join(", ");
        let p = Param::from_key(key).ok_or_else(|| format!("no tunable parameter '{key}' (tunable: {})", known()))?;
        let d = self.dims.iter_mut().find(|d| d.key == p).ok_or_else(|| format!("'{key}' is not searched here"))?;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) || (d.scale == Scale::Log && lo <= 0.0) {
            return Err(format!("bounds of '{key}' must be finite with lo < hi (and lo > 0 on a log scale)"));
        }
        d.lo = lo;
        d.hi = hi;
        Ok(())
    }

    /// Decodes a unit-cube point; weights (the five and the custom
    /// metrics') are normalised to sum to 1.
    pub fn decode(&self, u: &[f64]) -> Candidate {
        let mut c = Candidate::default();
        for (d, &x) in self.dims.iter().zip(u) {
            d.key.set(&mut c, d.decode(x));
        }
        let custom: Vec<f64> =
            (0..self.custom.len()).map(|k| u.get(self.dims.len() + k).map_or(0.0, |x| x.clamp(0.0, 1.0))).collect();
        let w = WEIGHTS.map(|p| p.get(&c));
        let total: f64 = w.iter().sum::<f64>() + custom.iter().sum::<f64>();
        let n = (5 + custom.len()) as f64;
        let norm = |x: f64| if total > 1e-9 { x / total } else { 1.0 / n };
        for (p, v) in WEIGHTS.iter().zip(w) {
            p.set(&mut c, norm(v));
        }
        c.score.custom_weights = self.custom.iter().zip(custom).map(|(d, x)| (d.code.clone(), norm(x))).collect();
        c
    }

    /// Encodes parameters as a unit-cube point (the inverse of [`decode`](Self::decode)
    /// up to weight normalisation).
    /// A custom metric `c` gives no weight sits at the weight the windows
    /// were scored with.
    pub fn encode(&self, c: &Candidate) -> Vec<f64> {
        let custom: Vec<f64> = self.custom.iter().map(|d| c.score.custom_weight(&d.code).unwrap_or(d.weight)).collect();
        let wmax = WEIGHTS.iter().map(|p| p.get(c)).chain(custom.iter().copied()).fold(0.0, f64::max).max(1e-12);
        self.dims
            .iter()
            .map(|d| {
                let v = d.key.get(c);
                if WEIGHTS.contains(&d.key) {
                    (v / wmax).clamp(0.0, 1.0)
                } else {
                    d.encode(v)
                }
            })
            .chain(custom.iter().map(|v| (v / wmax).clamp(0.0, 1.0)))
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
        assert!(close(back.alert.pss, 60.0) && close(back.alert.sub.error_volatility, 0.8));
        assert_eq!(back.score.consecutive_error_threshold, 3.0);
    }

    #[test]
    fn bounds_are_checked() {
        let mut sp = Space::default();
        assert!(sp.set_bounds("alpha", 0.001, 3.0).is_ok());
        assert!(sp.set_bounds("alpha", 0.0, 3.0).is_err());
        let e = sp.set_bounds("nope", 0.0, 1.0).unwrap_err();
        assert!(e.contains("'nope'") && e.contains("alert_threshold_pss"), "{e}");
        assert!(sp.set_bounds("beta", 2.0, 1.0).is_err());
    }

    #[test]
    fn every_key_names_its_parameter() {
        let mut c = Candidate::default();
        for (k, p) in Param::ALL.iter().enumerate() {
            assert_eq!(Param::from_key(p.key()), Some(*p));
            p.set(&mut c, 1000.0 + k as f64);
        }
        for (k, p) in Param::ALL.iter().enumerate() {
            assert_eq!(p.get(&c), 1000.0 + k as f64, "{} shares a field with another", p.key());
        }
        assert_eq!(serde_json::to_value(Param::AlertPss).unwrap(), "alert_threshold_pss");
    }
}
