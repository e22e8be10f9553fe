//! A NAB-layout folder (`data/<category>/<series>.csv`,
//! `combined_windows.json`) scored by the streaming series detector: the
//! three profiles and, per series, how it fares at the standard threshold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::nab::{per_series, score_corpus, ProfileScore, Series, SeriesResult, PROFILES};
use super::series::{score_series, CheckedSeriesParams, SeriesParams};
use super::series_csv::{read_series, SeriesFileError};

/// The corpus evaluation.
#[derive(Debug, Clone)]
pub struct NabEvaluation {
    pub dir: PathBuf,
    pub series: usize,
    pub windows: usize,
    pub seed: u64,
    /// NAB's three profiles.
    pub profiles: Vec<ProfileScore>,
    /// Per series at the standard profile's corpus threshold, worst first.
    pub per_series: Vec<SeriesResult>,
}

/// Why a corpus could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum NabError {
    #[error("{path}: {message}")]
    Labels { path: String, message: String },
    #[error(transparent)]
    Series(#[from] SeriesFileError),
    #[error("{0}: no series of combined_windows.json found under data/")]
    Empty(String),
}

/// One labeled series of a NAB-layout folder, before scoring.
#[derive(Debug, Clone)]
pub struct LabeledSeries {
    /// `<category>/<file>.csv`.
    pub name: String,
    pub values: Vec<f64>,
    /// Anomaly windows as row ranges (inclusive).
    pub windows: Vec<(usize, usize)>,
}

/// Reads every series of `combined_windows.json` found under `dir/data/`
/// (the labels cover NAB's full corpus; the folder may hold a subset).
pub fn load_dir(dir: &Path) -> Result<Vec<LabeledSeries>, NabError> {
    let windows_path = dir.join("combined_windows.json");
    let labels = |message: String| NabError::Labels { path: windows_path.display().to_string(), message };
    let text = std::fs::read_to_string(&windows_path).map_err(|e| labels(e.to_string()))?;
    let windows: BTreeMap<String, Vec<Vec<String>>> = serde_json::from_str(&text).map_err(|e| labels(e.to_string()))?;
    let parse = |t: &str| chrono::NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%d %H:%M:%S%.f").ok();
    let mut corpus = Vec::new();
    for (rel, wins) in &windows {
        let file = dir.join("data").join(rel);
        if !file.is_file() {
            continue;
        }
        let s = read_series(&file, "timestamp", "value")?;
        let times: Vec<Option<chrono::NaiveDateTime>> =
            s.timestamps.iter().map(|t| t.as_deref().and_then(parse)).collect();
        let mut idx = Vec::new();
        for w in wins {
            let (Some(a), Some(b)) = (w.first().and_then(|t| parse(t)), w.get(1).and_then(|t| parse(t))) else {
                return Err(labels(format!("{rel}: unreadable window {w:?}")));
            };
            let first = times.iter().position(|t| t.is_some_and(|t| t >= a));
            let last = times.iter().rposition(|t| t.is_some_and(|t| t <= b));
            if let (Some(f), Some(l)) = (first, last) {
                if f <= l {
                    idx.push((f, l));
                }
            }
        }
        corpus.push(LabeledSeries { name: rel.clone(), values: s.values, windows: idx });
    }
    if corpus.is_empty() {
        return Err(NabError::Empty(dir.display().to_string()));
    }
    Ok(corpus)
}

/// Scores each series with the streaming detector.
pub fn score_all(corpus: &[LabeledSeries], p: &CheckedSeriesParams) -> Vec<Series> {
    corpus
        .iter()
        .map(|s| Series { name: s.name.clone(), scores: score_series(&s.values, p), windows: s.windows.clone() })
        .collect()
}

/// Scores every series of `combined_windows.json` found under `dir/data/`
/// with the default parameters.
pub fn evaluate_dir(dir: &Path, seed: u64) -> Result<NabEvaluation, NabError> {
    let p = SeriesParams { seed, ..SeriesParams::default() }.check().expect("the default views are valid");
    let corpus = score_all(&load_dir(dir)?, &p);
    let profiles = score_corpus(&corpus);
    let mut rows = per_series(&corpus, profiles[0].threshold, &PROFILES[0]);
    rows.sort_by(|a, b| a.raw.total_cmp(&b.raw).then_with(|| a.name.cmp(&b.name)));
    Ok(NabEvaluation {
        dir: dir.to_path_buf(),
        series: corpus.len(),
        windows: corpus.iter().map(|s| s.windows.len()).sum(),
        seed,
        profiles,
        per_series: rows,
    })
}
