//! The five stability sub-scores and the PSS, computed exactly as pypss
//! 1.3.1's `compute_pss_from_traces` does, and per-module / per-name
//! breakdowns (pypss's `get_module_score_breakdown`).

pub mod custom;
pub(crate) mod formula;
pub mod rescore;

use std::borrow::Cow;

use serde::Serialize;

use crate::config::ScoreParams;
use crate::domain::SubScores;
use crate::pystats::{self, py_builtin_sum, py_div_count, py_round2, ExactSums, Num};
use crate::trace::{Stage, TraceColumns, NONE};

/// A scored set of traces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// The PSS, 0–100, an integer as pypss reports it.
    pub pss: i64,
    /// Sub-scores rounded to two decimals (pypss's `breakdown`).
    pub breakdown: SubScores,
    /// Sub-scores before rounding.
    pub raw: SubScores,
    /// The weighted PSS before clamping and rounding (0–1 scale).
    pub pss_raw: f64,
    /// No traces: pypss returns PSS 0 and a breakdown of integer zeros.
    pub empty: bool,
    /// Non-system traces counted.
    pub count: usize,
    /// The custom metrics' scores, in the order they were configured
    /// (after the five in pypss's breakdown).
    pub custom: Vec<custom::CustomScore>,
}

impl Score {
    fn empty() -> Score {
        Score {
            pss: 0,
            breakdown: SubScores::default(),
            raw: SubScores::default(),
            pss_raw: 0.0,
            empty: true,
            count: 0,
            custom: Vec::new(),
        }
    }
}

/// Which rows of the columns to score.
#[derive(Clone, Copy)]
pub enum Selection<'a> {
    /// Every row and system trace.
    All,
    /// Only these rows and system traces (indices, in input order).
    Some { rows: &'a [u32], sys: &'a [u32] },
}

/// The per-trace data one score needs, gathered as pypss's lists are.
struct Gathered<'c> {
    count: usize,
    latencies: Cow<'c, [f64]>,
    memory: Cow<'c, [f64]>,
    waits: Cow<'c, [f64]>,
    errors: Cow<'c, [bool]>,
    /// Branch tag counts in order of first appearance (a Python `Counter`).
    tags: Vec<u64>,
    lags: Vec<Num>,
}

fn gather<'c>(c: &'c TraceColumns, sel: Selection<'_>) -> Gathered<'c> {
    let all_rows: Vec<u32>;
    let all_sys: Vec<u32>;
    let (rows, sys): (&[u32], &[u32]) = match sel {
        Selection::Some { rows, sys } => (rows, sys),
        Selection::All => {
            all_rows = Vec::new();
            all_sys = Vec::new();
            (&all_rows, &all_sys)
        }
    };
    let is_all = matches!(sel, Selection::All);
    let n = if is_all { c.len() } else { rows.len() };
    let idx = |k: usize| if is_all { k } else { rows[k] as usize };

    let (latencies, memory, waits, errors);
    if is_all && c.all_complete {
        latencies = Cow::Borrowed(&c.duration[..]);
        memory = Cow::Borrowed(&c.memory[..]);
        waits = Cow::Borrowed(&c.wait_time[..]);
        errors = Cow::Borrowed(&c.error[..]);
    } else {
        let mut l = Vec::with_capacity(n);
        let mut m = Vec::with_capacity(n);
        let mut w = Vec::with_capacity(n);
        let mut e = Vec::with_capacity(n);
        for k in 0..n {
            let i = idx(k);
            let st = c.stage[i];
            if st >= Stage::Duration {
                l.push(c.duration[i]);
            }
            if st >= Stage::Memory {
                m.push(c.memory[i]);
            }
            if st == Stage::Complete {
                w.push(c.wait_time[i]);
                e.push(c.error[i]);
            }
        }
        latencies = Cow::Owned(l);
        memory = Cow::Owned(m);
        waits = Cow::Owned(w);
        errors = Cow::Owned(e);
    }
    // Counter of tags in first-appearance order within this selection.
    let mut slot = vec![u32::MAX; c.tags.len()];
    let mut tags: Vec<u64> = Vec::new();
    for k in 0..n {
        let t = c.branch_tag[idx(k)];
        if t != NONE {
            let s = &mut slot[t as usize];
            if *s == u32::MAX {
                *s = tags.len() as u32;
                tags.push(0);
            }
            tags[*s as usize] += 1;
        }
    }
    let lags: Vec<Num> = if is_all {
        c.sys_lag.iter().flatten().copied().collect()
    } else {
        sys.iter().filter_map(|&i| c.sys_lag[i as usize]).collect()
    };
    Gathered { count: n, latencies, memory, waits, errors, tags, lags }
}

/// pypss's `calculate_cv`: exact stdev over exact mean, 0 when undefined.
pub fn cv(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let sums = ExactSums::of(xs, true);
    let mean = sums.mean().expect("non-empty");
    if mean == 0.0 {
        return 0.0;
    }
    sums.stdev().expect("n >= 2") / mean
}

/// Timing Stability: latency CV and tail ratio (p95 / p50).
pub fn timing_stability(latencies: &[f64], p: &ScoreParams) -> f64 {
    if latencies.is_empty() {
        return 1.0;
    }
    let cv = cv(latencies);
    let mut tail_ratio = 1.0;
    if latencies.len() > 1 {
        let mut work = latencies.to_vec(); // selection reorders
        let q = pystats::percentiles(&mut work, &[49, p.score_latency_tail_percentile]).expect("n > 1");
        if q[0] > 0.0 {
            tail_ratio = q[1] / q[0];
        }
    }
    formula::timing(cv, tail_ratio, p)
}

/// Memory Stability: spread and peak relative to the median, spike penalty.
pub fn memory_stability(memory: &[f64], p: &ScoreParams) -> f64 {
    if memory.len() < 2 {
        return 1.0;
    }
    let peak = memory.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sums = ExactSums::of(memory, true);
    let median = pystats::median(&mut memory.to_vec()).expect("n >= 2");
    formula::memory(median, sums.stdev().expect("n >= 2"), peak, p)
}

/// Error Volatility: error rate, variance-to-mean ratio, spikes and runs.
pub fn error_volatility(errors: &[bool], p: &ScoreParams) -> f64 {
    if errors.is_empty() {
        return 1.0;
    }
    let n = errors.len() as u64;
    let k = errors.iter().filter(|&&e| e).count() as u64;
    let mean_count = k as f64 / n as f64;
    let mut vmr = 0.0;
    if n > 1 && mean_count > 0.0 {
        vmr = pystats::variance_of_bools(k, n).expect("n > 1") / mean_count;
    }
    let (mut run, mut longest) = (0u64, 0u64);
    for &e in errors {
        run = if e { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    formula::errors(mean_count, vmr, longest as f64, p)
}

/// Branching Entropy: 1 − normalised Shannon entropy of branch tags.
/// `counts` are in first-appearance order (the summation order matters).
pub fn branching_entropy(counts: &[u64]) -> f64 {
    if counts.is_empty() {
        return 1.0;
    }
    let total: u64 = counts.iter().sum();
    let mut entropy = 0.0f64;
    if total > 0 {
        for &c in counts {
            if c > 0 {
                let pr = c as f64 / total as f64;
                entropy -= pr * pr.log2();
            }
        }
    }
    let unique = counts.len();
    if unique > 1 {
        let max_entropy = (unique as f64).log2();
        if max_entropy > 0.0 {
            return 1.0 - (entropy / max_entropy);
        }
    }
    1.0
}

/// Concurrency Chaos: wait-time CV above a threshold, event-loop lag penalty.
pub fn concurrency_chaos(waits: &[f64], lags: &[Num], p: &ScoreParams) -> f64 {
    // Python's built-in sum: plain left-to-right float addition. The CV is
    // computed only when the mean is over the threshold (it is exact, so dear).
    let wait = (waits.len() >= 2)
        .then(|| waits.iter().fold(0.0, |a, &b| a + b) / waits.len() as f64)
        .map(|mean| (mean, if mean > p.concurrency_wait_threshold { cv(waits) } else { 0.0 }));
    let lag = (!lags.is_empty()).then(|| py_div_count(py_builtin_sum(lags), lags.len()));
    formula::concurrency(wait, lag, p)
}

/// Scores a selection of traces: pypss's `compute_pss_from_traces`.
pub fn score(c: &TraceColumns, sel: Selection<'_>, p: &ScoreParams) -> Score {
    score_with(c, sel, p, &custom::CustomMetrics::default())
}

/// [`score`] with custom metrics: each adds `weight × score` to the PSS and
/// its weight to the total, and an empty selection is scored rather than
/// given pypss's zero report, as pypss does when plugins are registered.
pub fn score_with(c: &TraceColumns, sel: Selection<'_>, p: &ScoreParams, extra: &custom::CustomMetrics) -> Score {
    let g = gather(c, sel);
    if g.count == 0 && g.lags.is_empty() && extra.is_empty() {
        return Score::empty();
    }
    let ts = timing_stability(&g.latencies, p);
    let ms = memory_stability(&g.memory, p);
    let ev = error_volatility(&g.errors, p);
    let be = branching_entropy(&g.tags);
    let cc = concurrency_chaos(&g.waits, &g.lags, p);
    let raw = SubScores::from_array([ts, ms, ev, be, cc]);
    let custom = if extra.is_empty() {
        Vec::new()
    } else {
        let (rows, sys) = match sel {
            Selection::All => (None, None),
            Selection::Some { rows, sys } => (Some(rows), Some(sys)),
        };
        custom::score_all(c, rows, sys, p, extra)
    };
    let weighted: Vec<(f64, f64)> = custom.iter().map(|m| (m.weight, m.score)).collect();
    let (pss_raw, pss) = formula::pss_with(&raw, &weighted, p);
    Score { pss: pss as i64, breakdown: raw.map(py_round2), raw, pss_raw, empty: false, count: g.count, custom }
}

/// How to group traces for a breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Module,
    Name,
}

/// One group's score.
#[derive(Debug, Clone, Serialize)]
pub struct GroupScore {
    pub key: String,
    pub score: Score,
    /// Traces in the group (system traces included).
    pub traces: usize,
    pub errors: usize,
}

/// The rows of each group, to be scored group by group from several threads.
pub struct GroupPlan {
    by: GroupBy,
    rows: Vec<Vec<u32>>,
    sys: Vec<Vec<u32>>,
    live: Vec<usize>,
    next: std::sync::atomic::AtomicUsize,
    /// Scored groups with their ids (first-appearance order).
    done: std::sync::Mutex<Vec<(usize, GroupScore)>>,
}

impl GroupPlan {
    /// Splits the rows by module (or name); `None` when that column was not kept.
    pub fn new(c: &TraceColumns, by: GroupBy) -> Option<GroupPlan> {
        let (ids, groups) = match by {
            GroupBy::Module => (&c.module, c.modules.len()),
            GroupBy::Name => (&c.name, c.names.len()),
        };
        if ids.len() != c.len() {
            return None;
        }
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); groups];
        for (i, &g) in ids.iter().enumerate() {
            rows[g as usize].push(i as u32);
        }
        let mut sys: Vec<Vec<u32>> = vec![Vec::new(); groups];
        if by == GroupBy::Module {
            for (i, &g) in c.sys_module.iter().enumerate() {
                sys[g as usize].push(i as u32);
            }
        }
        // Largest groups first: better balance between workers.
        let mut live: Vec<usize> = (0..groups).filter(|&g| !rows[g].is_empty() || !sys[g].is_empty()).collect();
        live.sort_by_key(|&g| std::cmp::Reverse(rows[g].len() + sys[g].len()));
        Some(GroupPlan {
            by,
            rows,
            sys,
            live,
            next: std::sync::atomic::AtomicUsize::new(0),
            done: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Scores groups until none is left; call from as many threads as useful.
    pub fn work(&self, c: &TraceColumns, p: &ScoreParams, extra: &custom::CustomMetrics) {
        loop {
            let k = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&g) = self.live.get(k) else { return };
            let s = score_with(c, Selection::Some { rows: &self.rows[g], sys: &self.sys[g] }, p, extra);
            let key = match self.by {
                GroupBy::Module => c.modules.get(g as u32),
                GroupBy::Name => c.names.get(g as u32),
            };
            let errors = self.rows[g].iter().filter(|&&i| c.error[i as usize]).count();
            let gs =
                GroupScore { key: key.to_string(), score: s, traces: self.rows[g].len() + self.sys[g].len(), errors };
            self.done.lock().unwrap_or_else(|e| e.into_inner()).push((g, gs));
        }
    }

    /// The scores, worst PSS first; ties keep the order in which groups first appeared.
    pub fn finish(self) -> Vec<GroupScore> {
        let mut out = self.done.into_inner().unwrap_or_else(|e| e.into_inner());
        out.sort_by_key(|(g, s)| (s.score.pss, *g));
        out.into_iter().map(|(_, s)| s).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::read_bytes;

    fn score_text(text: &str) -> Score {
        let mut c = TraceColumns::new("unknown");
        read_bytes("t", text.as_bytes(), &mut c).unwrap();
        score(&c, Selection::All, &ScoreParams::default())
    }

    #[test]
    fn empty_is_zero() {
        let s = score_text("[]");
        assert!(s.empty);
        assert_eq!(s.pss, 0);
    }

    #[test]
    fn two_traces_known_result() {
        // pypss 1.3.1: compute_pss_from_traces([{'duration':0.1,'memory':10},{'duration':0.2,'memory':12}])
        // == {'pss': 69, 'breakdown': {ts 0.21, ms 0.64, ev 1.0, be 1.0, cc 1.0}}
        let s = score_text(r#"[{"duration":0.1,"memory":10},{"duration":0.2,"memory":12}]"#);
        assert_eq!(s.pss, 69);
        assert_eq!(s.breakdown.timing_stability, 0.21);
        assert_eq!(s.breakdown.memory_stability, 0.64);
    }

    #[test]
    fn only_unconvertible_durations_score_100_like_pypss() {
        let s = score_text(r#"[{"duration": null}, {"duration": "x"}]"#);
        assert_eq!(s.pss, 100);
        assert!(!s.empty);
    }

    #[test]
    fn entropy_of_two_equal_tags_is_zero_score() {
        assert_eq!(branching_entropy(&[5, 5]), 0.0);
        assert_eq!(branching_entropy(&[7]), 1.0);
    }
}
