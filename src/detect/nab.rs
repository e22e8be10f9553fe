//! The Numenta Anomaly Benchmark's scoring: probationary period (the first
//! 15 % of each file, at most 750 rows, where detections are ignored), the
//! first detection in a window rewarded by a scaled sigmoid of its position,
//! false positives weighted by their distance after the previous window,
//! missed windows penalized, three application profiles, one threshold per
//! profile over the whole corpus, and normalization so the null detector
//! scores 0 and the perfect one 100.

use serde::Serialize;

/// An application profile: weights of true positives, false negatives and
/// false positives.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Profile {
    pub name: &'static str,
    pub tp: f64,
    pub fn_: f64,
    pub fp: f64,
}

/// NAB's three profiles.
pub const PROFILES: [Profile; 3] = [
    Profile { name: "standard", tp: 1.0, fn_: 1.0, fp: 0.11 },
    Profile { name: "reward_low_FP_rate", tp: 1.0, fn_: 1.0, fp: 0.22 },
    Profile { name: "reward_low_FN_rate", tp: 1.0, fn_: 2.0, fp: 0.11 },
];

/// One scored series: detector scores and label windows as row indices
/// (inclusive).
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub scores: Vec<f64>,
    pub windows: Vec<(usize, usize)>,
}

/// NAB's scaled sigmoid.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

fn probation(n: usize) -> usize {
    ((0.15 * n as f64).floor() as usize).min(750)
}

/// Raw score of one series at `threshold` under `p`.
pub fn raw_score(s: &Series, threshold: f64, p: &Profile) -> f64 {
    let start = probation(s.scores.len());
    let mut total = 0.0;
    let mut caught = vec![false; s.windows.len()];
    let mut w = 0usize; // first window not entirely before i
    for i in start..s.scores.len() {
        while w < s.windows.len() && s.windows[w].1 < i {
            w += 1;
        }
        if s.scores[i] < threshold {
            continue;
        }
        match s.windows.get(w) {
            Some(&(a, b)) if i >= a => {
                if !caught[w] {
                    caught[w] = true;
                    let len = (b - a + 1) as f64;
                    let pos = -((b - i + 1) as f64) / len;
                    total += p.tp * scaled_sigmoid(pos);
                }
            }
            _ => {
                // A false positive: weighted by its distance after the previous window.
                total += match w.checked_sub(1).and_then(|k| s.windows.get(k)) {
                    Some(&(a, b)) => {
                        let len = (b - a + 1) as f64;
                        p.fp * scaled_sigmoid((i - b) as f64 / len)
                    }
                    None => -p.fp,
                };
            }
        }
    }
    total - p.fn_ * caught.iter().filter(|c| !**c).count() as f64
}

/// A profile's result over a corpus.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileScore {
    pub profile: &'static str,
    pub threshold: f64,
    pub raw: f64,
    pub null: f64,
    pub perfect: f64,
    /// 0 for the null detector, 100 for the perfect one.
    pub normalized: f64,
}

/// Scores a corpus under each profile with the best single threshold
/// (searched over quantiles of all scores).
pub fn score_corpus(corpus: &[Series]) -> Vec<ProfileScore> {
    // Candidate thresholds: 500 quantiles of all scores, and 1.0.
    let mut all: Vec<f64> = corpus.iter().flat_map(|s| s.scores.iter().copied()).collect();
    all.sort_by(f64::total_cmp);
    let mut candidates: Vec<f64> =
        if all.is_empty() { vec![0.5] } else { (0..500).map(|k| all[(k * (all.len() - 1)) / 499]).collect() };
    candidates.extend([1.0, 0.999, 0.995, 0.99]);
    candidates.sort_by(f64::total_cmp);
    candidates.dedup();
    PROFILES
        .iter()
        .map(|p| {
            let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();
            let null = -p.fn_ * windows as f64;
            // The perfect detector flags the first row of every window.
            let perfect: f64 = corpus
                .iter()
                .map(|s| {
                    let mut ideal = vec![0.0; s.scores.len()];
                    for &(a, _) in &s.windows {
                        if a < ideal.len() {
                            ideal[a] = 1.0;
                        }
                    }
                    raw_score(&Series { name: s.name.clone(), scores: ideal, windows: s.windows.clone() }, 0.5, p)
                })
                .sum();
            let (threshold, raw) = candidates
                .iter()
                .map(|&t| (t, corpus.iter().map(|s| raw_score(s, t, p)).sum::<f64>()))
                .fold((1.0, f64::NEG_INFINITY), |best, x| if x.1 > best.1 { x } else { best });
            let normalized = if perfect > null { 100.0 * (raw - null) / (perfect - null) } else { 0.0 };
            ProfileScore { profile: p.name, threshold, raw, null, perfect, normalized }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(scores: Vec<f64>, windows: Vec<(usize, usize)>) -> Series {
        Series { name: "s".into(), scores, windows }
    }

    #[test]
    fn null_and_perfect_detectors_score_0_and_100() {
        let mut perfect = vec![0.0; 1000];
        perfect[400] = 1.0;
        let corpus = vec![series(perfect, vec![(400, 450)])];
        let s = score_corpus(&corpus);
        assert!((s[0].normalized - 100.0).abs() < 1e-9, "{:?}", s[0]);
        let null = vec![series(vec![0.0; 1000], vec![(400, 450)])];
        assert!(score_corpus(&null)[0].normalized.abs() < 1e-9);
    }

    #[test]
    fn late_detection_earns_less_and_false_positives_cost() {
        let p = PROFILES[0];
        let mut early = vec![0.0; 1000];
        early[402] = 1.0;
        let mut late = vec![0.0; 1000];
        late[448] = 1.0;
        let w = vec![(400, 450)];
        assert!(raw_score(&series(early, w.clone()), 0.5, &p) > raw_score(&series(late, w.clone()), 0.5, &p));
        let mut fp = vec![0.0; 1000];
        fp[300] = 1.0;
        assert!((raw_score(&series(fp, w.clone()), 0.5, &p) - (-0.11 - 1.0)).abs() < 1e-12);
        // Detections in the probationary period are ignored.
        let mut prob = vec![0.0; 1000];
        prob[10] = 1.0;
        assert_eq!(raw_score(&series(prob, w), 0.5, &p), -1.0);
    }
}
