//! What an analysis report holds, built once from the columns and rendered
//! by every format.

use serde::Serialize;

use crate::config::Config;
use crate::pystats;
use crate::report::advisor::{advise, Advice};
use crate::score::{GroupBy, GroupPlan, GroupScore, Score, Selection};
use crate::trace::{FileSummary, Skipped, TraceColumns};

/// Latency or memory distribution summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub count: usize,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

fn summarize(xs: &[f64]) -> Summary {
    if xs.is_empty() {
        return Summary::default();
    }
    let mut v = xs.to_vec();
    // A display figure: a plain floating-point mean is enough here.
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (p50, p95, p99) = match pystats::percentiles(&mut v, &[49, 94, 98]) {
        Some(q) => (q[0], q[1], q[2]),
        None => (xs[0], xs[0], xs[0]),
    };
    Summary { count: xs.len(), mean, p50, p95, p99, max }
}

/// An exception type and how often it occurred.
#[derive(Debug, Clone, Serialize)]
pub struct ExceptionCount {
    pub exception_type: String,
    pub count: usize,
    pub example_message: String,
}

/// Data behind the charts, already reduced to a few hundred points.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChartData {
    /// Latency histogram: (bin start, bin end, count); the last bin holds
    /// everything above p99.
    pub latency_bins: Vec<(f64, f64, u64)>,
    /// Errors and traces per time bucket: (bucket start, traces, errors).
    pub error_timeline: Vec<(f64, u64, u64)>,
    /// True when the timeline's x axis is time (else trace index).
    pub timeline_is_time: bool,
    /// Memory over time: (x, min, max) per bucket.
    pub memory: Vec<(f64, f64, f64)>,
}

/// A complete analysis, ready to render.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub score: Score,
    pub groups: Vec<GroupScore>,
    pub group_by: GroupBy,
    pub advice: Advice,
    pub traces: usize,
    pub system_traces: usize,
    pub errors: usize,
    pub skipped: Skipped,
    /// Traces without a memory or wait_time reading.
    pub unmeasured: crate::trace::Unmeasured,
    pub latency: Summary,
    pub memory: Summary,
    pub wait_time: Summary,
    pub exceptions: Vec<ExceptionCount>,
    /// Sources read: (path, format, threads).
    pub files: Vec<(String, String, u8)>,
    pub config_source: String,
    /// The HTML report's title (`default_html_report_title`, pypss's "PyPSS Stability Report").
    pub title: String,
    pub unknown_config_keys: Vec<String>,
    pub charts: ChartData,
    /// Time range of the traces (epoch seconds), when they carry timestamps.
    pub time_range: Option<(f64, f64)>,
}

const BUCKETS: usize = 60;

/// Analyses columns: the overall score, the breakdown by module or name,
/// the advisor, summaries and chart data.
/// How much of a report to prepare: distribution summaries and chart data
/// cost a few passes over a million traces, so formats that do not show
/// them do not compute them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detail {
    /// Latency, memory and wait-time distributions (JSON, Markdown, HTML).
    pub summaries: bool,
    /// Chart data (HTML).
    pub charts: bool,
}

/// Analyses columns: the overall score, the breakdown by module or name,
/// the advisor, and the summaries and chart data `detail` asks for; with
/// the custom metrics `cfg` names.
pub fn build(c: &TraceColumns, files: &[FileSummary], cfg: &Config, by: GroupBy, detail: Detail) -> Report {
    build_with(c, files, cfg, &crate::score::custom::CustomMetrics::from_config(cfg).0, by, detail)
}

/// [`build`] with custom metrics already resolved from `cfg`.
pub fn build_with(
    c: &TraceColumns,
    files: &[FileSummary],
    cfg: &Config,
    custom: &crate::score::custom::CustomMetrics,
    by: GroupBy,
    detail: Detail,
) -> Report {
    // The breakdown re-scores every group: run it beside the overall score
    // and the summaries.
    let plan = std::sync::OnceLock::new();
    let (s, latency, memory, wait_time) = std::thread::scope(|scope| {
        // The second thread splits the rows by group and starts scoring
        // groups; this thread scores the whole set, then helps.
        scope.spawn(|| {
            let p = plan.get_or_init(|| GroupPlan::new(c, by));
            if let Some(p) = p {
                p.work(c, &cfg.score, custom);
            }
        });
        let s = crate::score::score_with(c, Selection::All, &cfg.score, custom);
        let sums = if detail.summaries || detail.charts {
            (summarize(&c.duration), summarize(&c.memory), summarize(&c.wait_time))
        } else {
            Default::default()
        };
        if let Some(p) = plan.wait() {
            p.work(c, &cfg.score, custom);
        }
        (s, sums.0, sums.1, sums.2)
    });
    let groups = plan.into_inner().flatten().map(GroupPlan::finish).unwrap_or_default();
    let advice = advise(&s, &cfg.advisor);
    let errors = c.error.iter().filter(|&&e| e).count();
    let mut exc: Vec<ExceptionCount> = {
        c.exception_counts
            .iter()
            .map(|&n| n as usize)
            .enumerate()
            .map(|(i, n)| ExceptionCount {
                exception_type: c.exception_types.get(i as u32).to_string(),
                count: n,
                example_message: c.exception_examples.get(i).cloned().unwrap_or_default(),
            })
            .filter(|e| e.count > 0)
            .collect()
    };
    exc.sort_by_key(|e| std::cmp::Reverse(e.count));
    exc.truncate(10);

    let ts: Vec<f64> = c.timestamp.iter().copied().filter(|t| t.is_finite()).collect();
    let time_range = if ts.is_empty() {
        None
    } else {
        Some((ts.iter().copied().fold(f64::INFINITY, f64::min), ts.iter().copied().fold(f64::NEG_INFINITY, f64::max)))
    };

    Report {
        groups,
        group_by: by,
        advice,
        traces: c.len(),
        system_traces: c.sys_module.len(),
        errors,
        skipped: c.skipped,
        unmeasured: c.unmeasured,
        charts: if detail.charts { charts(c, time_range, &latency) } else { ChartData::default() },
        latency,
        memory,
        wait_time,
        exceptions: exc,
        files: files
            .iter()
            .map(|f| (f.source.clone(), format!("{:?}{}", f.format, if f.gzip { " (gzip)" } else { "" }), f.threads))
            .collect(),
        config_source: cfg.source.clone(),
        title: cfg.pypss.default_html_report_title.clone().unwrap_or_else(|| "PyPSS Stability Report".into()),
        unknown_config_keys: cfg.unknown_keys.clone(),
        time_range,
        score: s,
    }
}

fn charts(c: &TraceColumns, time_range: Option<(f64, f64)>, lat: &Summary) -> ChartData {
    let mut out = ChartData::default();
    let n = c.len();
    if n == 0 {
        return out;
    }
    // Latency histogram up to p99, then one overflow bin.
    let lo = c.duration.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = if lat.p99 > lo { lat.p99 } else { lat.max };
    let bins = 40;
    let width = if hi > lo { (hi - lo) / bins as f64 } else { 1.0 };
    let mut counts = vec![0u64; bins + 1];
    for &d in &c.duration {
        let k = if d > hi { bins } else { (((d - lo) / width) as usize).min(bins - 1) };
        counts[k] += 1;
    }
    for (k, &cnt) in counts.iter().enumerate() {
        if k < bins {
            out.latency_bins.push((lo + k as f64 * width, lo + (k + 1) as f64 * width, cnt));
        } else if cnt > 0 {
            out.latency_bins.push((hi, lat.max, cnt));
        }
    }
    // Timeline on timestamps when every trace has one, else on trace index.
    let all_ts = c.timestamp.len() == n && c.timestamp.iter().all(|t| t.is_finite());
    let (x0, x1) = match (time_range, all_ts) {
        (Some(r), true) if r.1 > r.0 => r,
        _ => (0.0, n as f64),
    };
    out.timeline_is_time = all_ts && time_range.is_some_and(|r| r.1 > r.0);
    let span = (x1 - x0) / BUCKETS as f64;
    let xof = |i: usize| {
        if out.timeline_is_time {
            c.timestamp[i]
        } else {
            i as f64
        }
    };
    let bucket = |x: f64| (((x - x0) / span) as usize).min(BUCKETS - 1);
    let mut tl = vec![(0u64, 0u64); BUCKETS];
    let mut mem = vec![(f64::INFINITY, f64::NEG_INFINITY); BUCKETS];
    for i in 0..n {
        let b = bucket(xof(i));
        tl[b].0 += 1;
        if c.error[i] {
            tl[b].1 += 1;
        }
        let m = c.memory[i];
        mem[b].0 = mem[b].0.min(m);
        mem[b].1 = mem[b].1.max(m);
    }
    for (k, (t, e)) in tl.into_iter().enumerate() {
        out.error_timeline.push((x0 + k as f64 * span, t, e));
    }
    for (k, (lo, hi)) in mem.into_iter().enumerate() {
        if lo.is_finite() {
            out.memory.push((x0 + (k as f64 + 0.5) * span, lo, hi));
        }
    }
    out
}
