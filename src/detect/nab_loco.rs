//! Leave-one-category-out on a NAB-layout corpus: every choice the series
//! detector makes (its parameters among a few candidates, and the alarm
//! threshold) is made on the other categories and judged on the one left
//! out — the figure that says how it does on series it was not fitted to,
//! beside the in-sample one.

use std::collections::BTreeSet;

use serde::Serialize;

use super::nab::{best_threshold, bounds, normalize, normalized_at, raw_score, score_corpus, Series, PROFILES};
use super::nab_corpus::{score_all, LabeledSeries};
use super::series::{SeriesParams, View};

/// One candidate set of series parameters, with a name for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub name: String,
    pub params: SeriesParams,
}

/// The candidates tried: the defaults and single changes of time scale,
/// memory and views. Few on purpose — each is a full pass over the corpus,
/// and a wide menu over four categories is a way to fit the subset.
pub fn candidates(seed: u64) -> Vec<Candidate> {
    let d = SeriesParams { seed, ..SeriesParams::default() };
    let views = |s: &[(usize, bool)]| s.iter().map(|&(shingle, seasonal)| View { shingle, seasonal }).collect();
    vec![
        Candidate { name: "defaults".into(), params: d.clone() },
        Candidate { name: "short memory (1024)".into(), params: SeriesParams { memory: 1024, ..d.clone() } },
        Candidate { name: "long memory (16384)".into(), params: SeriesParams { memory: 16384, ..d.clone() } },
        Candidate {
            name: "plus a 16-point view".into(),
            params: SeriesParams {
                views: views(&[(4, true), (1, true), (1, false), (2, true), (16, false)]),
                ..d.clone()
            },
        },
        Candidate {
            name: "point views only".into(),
            params: SeriesParams { views: views(&[(1, true), (1, false)]), ..d },
        },
    ]
}

/// One fold: a category held out.
#[derive(Debug, Clone, Serialize)]
pub struct Fold {
    pub category: String,
    pub series: usize,
    /// The candidate chosen on the other categories, its threshold and its
    /// (standard-profile) score there.
    pub chosen: String,
    pub threshold: f64,
    pub train_score: f64,
    /// Anomaly windows in the held-out category.
    pub windows: usize,
    /// The held-out category's standard score at that candidate and
    /// threshold; `None` for a category without anomaly windows (its score
    /// is undefined: the null and the perfect detector both score 0 there —
    /// its false alarms count in the pooled score).
    pub held_out_score: Option<f64>,
    /// The held-out category's score with its own best threshold (what
    /// in-sample tuning would report for it).
    pub held_out_in_sample: Option<f64>,
    /// The held-out category's raw score (its share of the pooled score).
    pub held_out_raw: f64,
    /// False alarms in the held-out category (rows flagged outside windows,
    /// counted once per run).
    pub false_alarms: usize,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Loco {
    pub folds: Vec<Fold>,
    /// Mean of the folds' held-out scores (categories with anomaly windows).
    pub held_out_mean: f64,
    /// Every category scored at its fold's choice, normalized over the whole
    /// corpus as NAB normalizes: the held-out counterpart of `in_sample`.
    pub held_out_pooled: f64,
    /// The defaults on the whole corpus at its own best threshold (the figure
    /// `pss detect eval --nab` reports).
    pub in_sample: f64,
    pub candidates: Vec<String>,
}

/// Why it could not run.
#[derive(Debug, thiserror::Error)]
pub enum LocoError {
    #[error("leave-one-category-out needs at least two categories with labeled series, found {0}")]
    TooFewCategories(usize),
    #[error("candidate '{name}': {message}")]
    Candidate { name: String, message: String },
}

fn category(name: &str) -> &str {
    name.split('/').next().unwrap_or("")
}

/// Runs leave-one-category-out over `corpus` (standard profile);
/// `progress(done, total)` is called after each candidate's pass.
pub fn leave_one_category_out(
    corpus: &[LabeledSeries],
    candidates: &[Candidate],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Loco, LocoError> {
    let cats: BTreeSet<&str> = corpus.iter().map(|s| category(&s.name)).collect();
    if cats.len() < 2 {
        return Err(LocoError::TooFewCategories(cats.len()));
    }
    let mut scored: Vec<Vec<Series>> = Vec::with_capacity(candidates.len());
    for (k, c) in candidates.iter().enumerate() {
        let p = c
            .params
            .clone()
            .check()
            .map_err(|e| LocoError::Candidate { name: c.name.clone(), message: e.to_string() })?;
        scored.push(score_all(corpus, &p));
        progress(k + 1, candidates.len());
    }
    let standard = &PROFILES[0];
    let part = |all: &[Series], keep: &dyn Fn(&str) -> bool| -> Vec<Series> {
        all.iter().filter(|s| keep(category(&s.name))).cloned().collect()
    };
    let mut folds = Vec::new();
    for &held in &cats {
        // The candidate and threshold with the best score on the other
        // categories; the first candidate wins ties (the defaults).
        let mut best: Option<(usize, f64, f64)> = None;
        for (k, all) in scored.iter().enumerate() {
            let train = part(all, &|c| c != held);
            let (threshold, _) = best_threshold(&train, standard);
            let score = normalized_at(&train, threshold, standard);
            if best.is_none_or(|b| score > b.2) {
                best = Some((k, threshold, score));
            }
        }
        let (k, threshold, train_score) = best.expect("at least one candidate");
        let test = part(&scored[k], &|c| c == held);
        let windows: usize = test.iter().map(|s| s.windows.len()).sum();
        let rows = super::nab::per_series(&test, threshold, standard);
        folds.push(Fold {
            category: held.to_string(),
            series: test.len(),
            chosen: candidates[k].name.clone(),
            threshold,
            train_score,
            windows,
            held_out_score: (windows > 0).then(|| normalized_at(&test, threshold, standard)),
            held_out_in_sample: (windows > 0).then(|| score_corpus(&test)[0].normalized),
            held_out_raw: test.iter().map(|s| raw_score(s, threshold, standard)).sum(),
            false_alarms: rows.iter().map(|r| r.false_positives).sum(),
        });
    }
    let scoredf: Vec<f64> = folds.iter().filter_map(|f| f.held_out_score).collect();
    let held_out_mean = scoredf.iter().sum::<f64>() / scoredf.len().max(1) as f64;
    let (null, perfect) = bounds(&scored[0], standard);
    Ok(Loco {
        held_out_pooled: normalize(folds.iter().map(|f| f.held_out_raw).sum(), null, perfect),
        folds,
        held_out_mean,
        in_sample: score_corpus(&scored[0])[0].normalized,
        candidates: candidates.iter().map(|c| c.name.clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A series with a spike at `at` labeled as its window.
    fn spiky(name: &str, n: usize, at: usize, height: f64) -> LabeledSeries {
        let values = (0..n).map(|i| if i == at { height } else { (i % 10) as f64 * 0.1 }).collect();
        LabeledSeries { name: name.into(), values, windows: vec![(at.saturating_sub(5), at + 5)] }
    }

    #[test]
    fn each_category_is_judged_at_a_threshold_chosen_without_it() {
        let corpus = vec![
            spiky("a/1.csv", 600, 400, 50.0),
            spiky("a/2.csv", 600, 450, 40.0),
            spiky("b/1.csv", 600, 500, 30.0),
            spiky("c/1.csv", 600, 420, 60.0),
        ];
        let cands = &candidates(7)[..2];
        let mut calls = 0;
        let r = leave_one_category_out(&corpus, cands, &mut |_, _| calls += 1).unwrap();
        assert_eq!(calls, 2);
        assert_eq!(r.folds.iter().map(|f| f.category.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(r.folds[0].series, 2);
        for f in &r.folds {
            let (h, own) = (f.held_out_score.unwrap(), f.held_out_in_sample.unwrap());
            assert!(h <= own + 1e-9, "{f:?}: the fold's own best cannot lose");
            assert!((0.0..=100.0).contains(&own), "{f:?}");
        }
        let mean = r.folds.iter().map(|f| f.held_out_score.unwrap()).sum::<f64>() / 3.0;
        assert!((r.held_out_mean - mean).abs() < 1e-12);
        assert!(r.held_out_mean > 50.0, "clear spikes are found out of sample: {r:?}");
        assert!(r.held_out_pooled <= r.in_sample + 1e-9 || r.candidates.len() > 1, "{r:?}");
        // A category without anomalies has no score of its own; its false
        // alarms count in the pooled score only.
        let mut quiet = corpus.clone();
        quiet.push(LabeledSeries { name: "d/1.csv".into(), windows: vec![], ..spiky("d/1.csv", 600, 300, 45.0) });
        let r = leave_one_category_out(&quiet, cands, &mut |_, _| {}).unwrap();
        let d = r.folds.iter().find(|f| f.category == "d").unwrap();
        assert_eq!((d.windows, d.held_out_score), (0, None));
        assert!(d.false_alarms >= 1 && d.held_out_raw < 0.0, "its spike is a false alarm: {d:?}");
        let one = vec![spiky("a/1.csv", 300, 200, 9.0)];
        assert!(matches!(leave_one_category_out(&one, cands, &mut |_, _| {}), Err(LocoError::TooFewCategories(1))));
    }
}
