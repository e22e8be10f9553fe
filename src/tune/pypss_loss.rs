//! pypss 1.3.1's own tuning objective, for users with no labels who migrate
//! from `pypss tune --baseline FILE`: the same four synthetic faults injected
//! into the baseline (latency jitter ×3 on 30 % of traces, a 50 KiB-per-trace
//! memory leak, three bursts of five errors, +0.1 s wait on 20 % of traces),
//! the same loss (baseline PSS pushed to 100, each faulty PSS to 45, each
//! targeted sub-score below 0.7), over the same ten parameters and bounds.
//!
//! Faults are drawn from a seeded generator (pypss's are unseeded), and the
//! statistics of each trace set are computed once, so a candidate is scored
//! in constant time instead of re-reading every trace.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::space::{Dim, Scale, Space};
use crate::config::ScoreParams;
use crate::domain::Window;
use crate::score::rescore::rescore;
use crate::trace::TraceColumns;
use crate::window::features;

/// The four fault kinds pypss injects, with the sub-score each targets.
pub const FAULTS: [(&str, usize); 4] =
    [("latency_jitter", 0), ("memory_leak", 1), ("error_burst", 2), ("thread_starvation", 4)];

/// pypss's search space (its `ConfigOptimizer.optimize` dimensions).
pub fn pypss_space() -> Space {
    use super::space::Param::*;
    let d = |key, lo, hi| Dim { key, lo, hi, scale: Scale::Linear };
    Space {
        dims: vec![
            d(WTs, 0.0, 1.0),
            d(WMs, 0.0, 1.0),
            d(WEv, 0.0, 1.0),
            d(WBe, 0.0, 1.0),
            d(WCc, 0.0, 1.0),
            d(Alpha, 0.5, 5.0),
            d(Beta, 0.5, 5.0),
            d(Gamma, 0.5, 5.0),
            d(MemSpikeThresholdRatio, 1.1, 3.0),
            d(ConcurrencyWaitThreshold, 0.0001, 0.05),
        ],
        custom: Vec::new(),
    }
}

/// The baseline and the four faulty sets, as windows (one each) whose
/// features are computed once.
#[derive(Debug, Clone)]
pub struct FaultSets {
    pub baseline: Window,
    pub faults: Vec<(String, usize, Window)>,
    pub traces: usize,
}

fn as_window(name: &str, c: &TraceColumns) -> Window {
    // pypss's optimizer scores every trace (system ones too) with default
    // values; the branching score has no parameters and is taken as computed.
    let s = crate::score::score(c, crate::score::Selection::All, &ScoreParams::default());
    let mut f = features(c);
    f.be_raw = s.raw.branching_entropy;
    Window { traces: c.len() as u64, ..Window::unscored(name, 0.0, 0.0, f) }
}

/// Injects pypss's faults into `base` (seeded) and computes every set's statistics.
pub fn fault_sets(base: &TraceColumns, seed: u64) -> FaultSets {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = base.len();
    let mut jitter = base.clone();
    for d in jitter.duration.iter_mut() {
        if rng.random::<f64>() < 0.3 {
            *d *= 1.0 + rng.random::<f64>() * (3.0 - 1.0);
        }
    }
    let mut leak = base.clone();
    let growth = 1024.0 * 50.0;
    for (k, m) in leak.memory.iter_mut().enumerate() {
        *m += growth * (k + 1) as f64;
    }
    let mut burst = base.clone();
    let (size, count) = (5usize, 3usize);
    let mut used = vec![false; n];
    for _ in 0..count {
        let start = if n <= size {
            0
        } else {
            let mut pick = None;
            for _ in 0..50 {
                let c = rng.random_range(0..=n - size);
                if !used[c..c + size].iter().any(|&u| u) {
                    pick = Some(c);
                    break;
                }
            }
            pick.unwrap_or_else(|| rng.random_range(0..=n - size))
        };
        let end = (start + size).min(n);
        burst.error[start..end].iter_mut().for_each(|e| *e = true);
        used[start..end].iter_mut().for_each(|u| *u = true);
    }
    let mut starve = base.clone();
    for w in starve.wait_time.iter_mut() {
        if rng.random::<f64>() < 0.2 {
            *w += 0.1 * (0.8 + 0.4 * rng.random::<f64>());
        }
    }
    let faults = [jitter, leak, burst, starve];
    FaultSets {
        baseline: as_window("baseline", base),
        faults: FAULTS
            .iter()
            .zip(faults.iter())
            .map(|(&(name, m), c)| (name.to_string(), m, as_window(name, c)))
            .collect(),
        traces: n,
    }
}

/// The loss of pypss's `ConfigOptimizer.calculate_loss` for some parameters.
pub fn loss(sets: &FaultSets, p: &ScoreParams) -> f64 {
    let base = rescore(&sets.baseline, p);
    let mut loss = (100.0 - base.pss_raw * 100.0).powi(2);
    for (_, metric, w) in &sets.faults {
        let r = rescore(w, p);
        loss += (r.pss_raw * 100.0 - 45.0).powi(2);
        let m = r.raw.to_array()[*metric];
        if m > 0.7 {
            loss += (m - 0.7).powi(2) * 100.0;
        }
    }
    loss
}

/// Loss of the defaults, the tuned and the random-search parameters.
#[derive(Debug, Clone, Serialize)]
pub struct LossReport {
    pub default: f64,
    pub tuned: f64,
    pub random_search: f64,
}
