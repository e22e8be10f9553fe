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

/// What a detection at one row would add to a series' raw score.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Effect {
    /// In the probationary period: nothing.
    Ignored,
    /// Inside window `window`: worth `value` if it is the window's first detection.
    Hit { window: usize, value: f64 },
    /// Outside every window: a false positive, its (negative) weight.
    False(f64),
}

/// The effect of a detection at each row of `s` under `p`, as NAB's sweeper
/// computes it: inside a window, the scaled sigmoid of the position
/// `-(end - i + 1) / width`; outside, −1 before the first window, else the
/// scaled sigmoid of `(i - end) / (width - 1)` of the window before.
fn effects(s: &Series, p: &Profile) -> Vec<Effect> {
    let start = probation(s.scores.len());
    let mut w = 0usize; // first window not entirely before i
    (0..s.scores.len())
        .map(|i| {
            while w < s.windows.len() && s.windows[w].1 < i {
                w += 1;
            }
            if i < start {
                return Effect::Ignored;
            }
            match s.windows.get(w) {
                Some(&(a, b)) if i >= a => {
                    let width = (b - a + 1) as f64;
                    Effect::Hit { window: w, value: p.tp * scaled_sigmoid(-((b - i + 1) as f64) / width) }
                }
                _ => Effect::False(match w.checked_sub(1).and_then(|k| s.windows.get(k)) {
                    Some(&(a, b)) => {
                        let width = ((b - a) as f64).max(1.0); // NAB: width - 1
                        p.fp * scaled_sigmoid((i - b) as f64 / width)
                    }
                    None => -p.fp,
                }),
            }
        })
        .collect()
}

/// Raw score of one series at `threshold` under `p`: rows scoring at least
/// `threshold` are detections.
pub fn raw_score(s: &Series, threshold: f64, p: &Profile) -> f64 {
    let mut first: Vec<Option<f64>> = vec![None; s.windows.len()];
    let mut total = 0.0;
    for (e, &score) in effects(s, p).iter().zip(&s.scores) {
        if score < threshold {
            continue;
        }
        match *e {
            Effect::Ignored => {}
            Effect::Hit { window, value } => {
                first[window].get_or_insert(value);
            }
            Effect::False(v) => total += v,
        }
    }
    total + first.iter().map(|f| f.unwrap_or(-p.fn_)).sum::<f64>()
}

/// The best single threshold for a corpus under `p` and its raw score,
/// trying every distinct score (NAB's sweep): rows are added from the
/// highest score down, keeping each window's earliest detection.
pub(crate) fn best_threshold(corpus: &[Series], p: &Profile) -> (f64, f64) {
    let mut rows: Vec<(f64, Effect)> = Vec::new();
    let mut offset = 0;
    let mut misses = 0usize;
    for s in corpus {
        for (e, &score) in effects(s, p).iter().zip(&s.scores) {
            let e = match *e {
                Effect::Hit { window, value } => Effect::Hit { window: offset + window, value },
                other => other,
            };
            if e != Effect::Ignored {
                rows.push((score, e));
            }
        }
        offset += s.windows.len();
        misses += s.windows.len();
    }
    // Within a window, the earliest row has the highest value, so "keep the
    // best value" is "keep the earliest detection".
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut best_in: Vec<Option<f64>> = vec![None; offset];
    let mut total = -p.fn_ * misses as f64;
    // No detections at all: a threshold above every score.
    let top = rows.first().map_or(1.0, |r| r.0);
    let mut best = (if top >= 1.0 { top + 1.0 } else { 1.0 }, total);
    let mut i = 0;
    while i < rows.len() {
        let level = rows[i].0;
        while i < rows.len() && rows[i].0 == level {
            match rows[i].1 {
                Effect::Hit { window, value } => match &mut best_in[window] {
                    Some(v) if *v >= value => {}
                    Some(v) => {
                        total += value - *v;
                        *v = value;
                    }
                    slot @ None => {
                        total += value + p.fn_;
                        *slot = Some(value);
                    }
                },
                Effect::False(v) => total += v,
                Effect::Ignored => {}
            }
            i += 1;
        }
        if total > best.1 {
            best = (level, total);
        }
    }
    best
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
/// (every distinct score is tried, as NAB's sweeper does).
pub fn score_corpus(corpus: &[Series]) -> Vec<ProfileScore> {
    PROFILES
        .iter()
        .map(|p| {
            let (null, perfect) = bounds(corpus, p);
            let (threshold, raw) = best_threshold(corpus, p);
            ProfileScore { profile: p.name, threshold, raw, null, perfect, normalized: normalize(raw, null, perfect) }
        })
        .collect()
}

/// The raw scores of the null detector (flags nothing) and the perfect one
/// (flags the first row of every window) on a corpus under `p`.
pub(crate) fn bounds(corpus: &[Series], p: &Profile) -> (f64, f64) {
    let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();
    let null = -p.fn_ * windows as f64;
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
    (null, perfect)
}

/// 0 for the null detector's raw score, 100 for the perfect one's.
pub(crate) fn normalize(raw: f64, null: f64, perfect: f64) -> f64 {
    if perfect > null {
        100.0 * (raw - null) / (perfect - null)
    } else {
        0.0
    }
}

/// A corpus's normalized score (0 null, 100 perfect) at a given threshold:
/// how a threshold chosen elsewhere does here.
pub fn normalized_at(corpus: &[Series], threshold: f64, p: &Profile) -> f64 {
    let (null, perfect) = bounds(corpus, p);
    normalize(corpus.iter().map(|s| raw_score(s, threshold, p)).sum(), null, perfect)
}

/// How one series fares at a corpus threshold: what the profile table
/// hides (which series the detector misses or floods with alarms).
#[derive(Debug, Clone, Serialize)]
pub struct SeriesResult {
    pub name: String,
    pub rows: usize,
    pub windows: usize,
    /// Windows with at least one detection inside them.
    pub detected: usize,
    /// Detections outside every window, after the probationary period.
    pub false_positives: usize,
    /// The series' share of the corpus raw score.
    pub raw: f64,
}

/// Each series' result at `threshold` under `p`; their `raw` values add up to
/// the corpus raw score at that threshold.
pub fn per_series(corpus: &[Series], threshold: f64, p: &Profile) -> Vec<SeriesResult> {
    corpus
        .iter()
        .map(|s| {
            let mut hit = vec![false; s.windows.len()];
            let mut false_positives = 0;
            for (e, &score) in effects(s, p).iter().zip(&s.scores) {
                match *e {
                    _ if score < threshold => {}
                    Effect::Hit { window, .. } => hit[window] = true,
                    Effect::False(_) => false_positives += 1,
                    Effect::Ignored => {}
                }
            }
            SeriesResult {
                name: s.name.clone(),
                rows: s.scores.len(),
                windows: s.windows.len(),
                detected: hit.iter().filter(|&&h| h).count(),
                false_positives,
                raw: raw_score(s, threshold, p),
            }
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
    fn the_sweep_finds_the_best_threshold_and_agrees_with_raw_score() {
        // Pseudo-random scores on three series, ties included.
        let mut x = 12345u64;
        let mut next = move || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 33) % 50) as f64 / 50.0
        };
        let corpus: Vec<Series> = [(600, vec![(200, 240), (400, 420)]), (300, vec![]), (500, vec![(100, 180)])]
            .into_iter()
            .map(|(n, w)| series((0..n).map(|_| next()).collect(), w))
            .collect();
        for p in &PROFILES {
            let (t, raw) = best_threshold(&corpus, p);
            let at = |t: f64| corpus.iter().map(|s| raw_score(s, t, p)).sum::<f64>();
            assert!((at(t) - raw).abs() < 1e-9, "{}: sweep {raw} vs raw_score {}", p.name, at(t));
            let mut all: Vec<f64> = corpus.iter().flat_map(|s| s.scores.iter().copied()).collect();
            all.push(2.0);
            for c in all {
                assert!(at(c) <= raw + 1e-9, "{}: threshold {c} gives {} > {raw}", p.name, at(c));
            }
        }
    }

    #[test]
    fn per_series_results_add_up_to_the_corpus_score() {
        let mut a = vec![0.0; 1000];
        a[405] = 0.9; // a hit
        a[600] = 0.95; // a false positive, above the hit
        a[10] = 1.0; // probation: ignored
        let b = vec![0.1; 500]; // its window missed
        let corpus = vec![series(a, vec![(400, 450)]), series(b, vec![(200, 220)])];
        let p = PROFILES[0];
        let (t, raw) = best_threshold(&corpus, &p);
        let rows = per_series(&corpus, t, &p);
        assert!((rows.iter().map(|r| r.raw).sum::<f64>() - raw).abs() < 1e-9);
        assert_eq!((rows[0].detected, rows[0].false_positives, rows[0].windows), (1, 1, 1));
        assert_eq!((rows[1].detected, rows[1].false_positives, rows[1].rows), (0, 0, 500));
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
