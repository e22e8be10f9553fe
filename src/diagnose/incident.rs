//! The evidence for an incident review: the incident (or any period) against
//! a baseline, the score timeline, the onset, the detectors' anomalous
//! windows and traces, the patterns, the per-module breakdown and the
//! rule-based diagnosis. Built from the history store; rendered by
//! [`super::render`]; summarized for an LLM by [`super::prompt`].

use serde::Serialize;

use super::source::SourcePolicy;
use crate::config::Config;
use crate::detect::model::{trace_features, DetectorModel, DetectorParams};
use crate::detect::patterns::{service_patterns, Pattern, PatternParams};
use crate::detect::Fit;
use crate::detect::IsolationForestParams;
use crate::domain::SubScores;
use crate::report::advisor::Advice;
use crate::report::model::{build, Detail, ExceptionCount, Report, Summary};
use crate::score::GroupBy;
use crate::store::{Store, StoreError};
use crate::trace::TraceColumns;

/// What is being reviewed.
#[derive(Debug, Clone, Serialize)]
pub struct Subject {
    /// `incident`, `period` or `trace file`.
    pub kind: &'static str,
    pub id: Option<String>,
    pub service: String,
    pub title: String,
    pub severity: String,
    pub start: f64,
    pub end: f64,
}

impl Subject {
    /// A labeled incident.
    pub fn incident(i: &crate::domain::Incident) -> Subject {
        Subject {
            kind: "incident",
            id: Some(i.id.clone()),
            service: i.service.clone(),
            title: i.title.clone(),
            severity: i.severity.clone(),
            start: i.start,
            end: i.end,
        }
    }

    /// Any period of a service.
    pub fn period(service: &str, start: f64, end: f64) -> Subject {
        Subject {
            kind: "period",
            id: None,
            service: service.to_string(),
            title: String::new(),
            severity: String::new(),
            start,
            end,
        }
    }
}

/// The scores and distributions of one side (the subject or the baseline).
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub traces: usize,
    pub errors: usize,
    pub error_rate: f64,
    pub pss: i64,
    /// Rounded, as pypss reports them.
    pub sub_scores: SubScores,
    pub latency: Summary,
    pub wait_time: Summary,
    pub memory: Summary,
    pub exceptions: Vec<ExceptionCount>,
}

impl Side {
    /// The subject side of an analysis report.
    pub fn from_report(r: &Report) -> Side {
        let b = &r.score.breakdown;
        Side {
            traces: r.traces,
            errors: r.errors,
            error_rate: if r.traces > 0 { r.errors as f64 / r.traces as f64 } else { 0.0 },
            pss: r.score.pss,
            sub_scores: *b,
            latency: r.latency.clone(),
            wait_time: r.wait_time.clone(),
            memory: r.memory.clone(),
            exceptions: r.exceptions.iter().take(8).cloned().collect(),
        }
    }
}

/// The baseline the subject is compared with, and why this one.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// `same-hours-earlier-days` or `preceding-healthy-period`.
    pub kind: &'static str,
    pub description: String,
    pub ranges: Vec<(f64, f64)>,
}

/// One module, subject against baseline, worst first.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleRow {
    pub module: String,
    pub pss: i64,
    pub baseline_pss: Option<i64>,
    pub traces: usize,
    pub errors: usize,
    /// The lowest sub-score: (name, value).
    pub weakest: (String, f64),
}

/// One window of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelinePoint {
    pub start: f64,
    pub pss: f64,
    pub sub_scores: SubScores,
    pub traces: u64,
    pub in_subject: bool,
    /// Fewer than `min_window_traces` traces when ingested: scored here for
    /// the record, but such a window never alarms.
    pub too_small: bool,
    /// The window detector's score and flag, when it scored this window.
    pub detector_score: Option<f64>,
    pub flagged: bool,
}

/// Where departure from baseline began.
#[derive(Debug, Clone, Serialize)]
pub struct Onset {
    pub at: f64,
    /// What departed: "PSS", "detector", or both.
    pub by: String,
    /// Seconds from onset to the subject's start (positive: before it was declared).
    pub lead_seconds: f64,
}

impl Onset {
    /// "12m before" or "3m after" (the start), for every rendering.
    pub fn lead(&self) -> String {
        format!(
            "{} {}",
            crate::timefmt::human_duration(self.lead_seconds.abs()),
            if self.lead_seconds >= 0.0 { "before" } else { "after" }
        )
    }
}

/// An unusual trace in the subject, by the trace detector.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalousTrace {
    /// Of the worst example.
    pub at: f64,
    pub function: String,
    /// How many of the subject's most anomalous traces (the top 100) are
    /// this function's: near-identical rows are one line with a count.
    pub count: usize,
    pub duration: f64,
    pub wait_time: f64,
    pub error: bool,
    pub score: f64,
}

/// The few lines of the slowest function, when its source file is readable.
#[derive(Debug, Clone, Serialize)]
pub struct SourceSnippet {
    pub function: String,
    pub filename: String,
    pub lineno: i64,
    pub duration: f64,
    /// `None` when the file cannot be read here (the reason is in `note`).
    pub code: Option<String>,
    pub note: String,
}

/// The LLM part's outcome.
#[derive(Debug, Clone, Serialize)]
pub enum Narrative {
    /// Written by this provider and model.
    Written(super::llm::LlmReply),
    /// Asked for but failed; the reason.
    Failed(String),
}

/// Everything a review needs.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub subject: Subject,
    pub baseline: Option<Baseline>,
    pub during: Side,
    pub before: Option<Side>,
    pub modules: Vec<ModuleRow>,
    pub window_seconds: f64,
    pub timeline: Vec<TimelinePoint>,
    pub onset: Option<Onset>,
    /// Where the onset was looked for from (epoch seconds; see [`onset_lookback`]).
    pub onset_from: f64,
    pub detector: Option<String>,
    pub patterns: Vec<Pattern>,
    pub anomalous_traces: Vec<AnomalousTrace>,
    pub regression: Option<String>,
    /// pypss's advisor on the subject's traces.
    pub advice: Advice,
    /// What the detectors, patterns, onset and baseline add to it.
    pub findings: Vec<String>,
    pub source: Option<SourceSnippet>,
    pub narrative: Option<Narrative>,
    pub skipped_traces: u64,
    /// Optional evidence that could not be computed, with the reason: shown
    /// in the document, so "no anomalies" and "the detector failed" differ.
    pub unavailable: Vec<Unavailable>,
}

/// Asks the LLM for the narrative (the prompt bounded to `budget`
/// characters) and records it, or why it failed, in the diagnosis. Returns
/// the failure, if any; the document is complete either way.
pub fn narrate(d: &mut Diagnosis, p: &super::llm::LlmParams, budget: usize) -> Option<String> {
    let prompt = super::prompt::build_prompt(d, budget);
    match super::llm::complete(p, super::prompt::SYSTEM, &prompt) {
        Ok(r) => {
            d.narrative = Some(Narrative::Written(r));
            None
        }
        Err(e) => {
            d.narrative = Some(Narrative::Failed(e.to_string()));
            Some(e.to_string())
        }
    }
}

/// A step of the diagnosis that failed, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unavailable {
    /// What is missing, e.g. "Window detector and patterns".
    pub step: String,
    pub reason: String,
}

/// How to build a diagnosis.
#[derive(Debug, Clone)]
pub struct DiagnoseParams {
    pub window_seconds: f64,
    /// A saved window detector for the service (else one is trained on its history).
    pub detector: Option<DetectorModel>,
    pub seed: u64,
    /// Earlier days to look at for a same-hours baseline.
    pub baseline_days: u32,
    /// Where the slowest function's source may be read from.
    pub source: SourcePolicy,
}

/// Why a diagnosis could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DiagnoseError {
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

const SUB_NAMES: [&str; 5] =
    ["timing_stability", "memory_stability", "error_volatility", "branching_entropy", "concurrency_chaos"];

fn detail() -> Detail {
    Detail { summaries: true, charts: false }
}

/// What the baseline step found: where, and the scorable baseline
/// windows' PSS (for the onset).
struct BaselineFound {
    baseline: Option<Baseline>,
    pss: Vec<f64>,
}

/// Step 1, the baseline: the same hours on earlier days when there are
/// windows then and no incident; else the healthy period just before (up to
/// six hours, at least the subject's length, cut at the latest earlier
/// incident's end).
fn find_baseline(
    store: &dyn Store,
    subject: &Subject,
    w: f64,
    days: u32,
    incidents: &[crate::domain::Incident],
) -> Result<BaselineFound, StoreError> {
    let (svc, s, e) = (subject.service.as_str(), subject.start, subject.end);
    let scorable_pss =
        |ws: Vec<crate::domain::LabeledWindow>| ws.into_iter().filter(|x| !x.window.too_small).map(|x| x.window.pss);
    let mut ranges = Vec::new();
    let mut pss: Vec<f64> = Vec::new();
    for k in 1..=days {
        let (a, b) = (s - k as f64 * 86400.0, e - k as f64 * 86400.0);
        if incidents.iter().any(|i| i.start < b && i.end > a) {
            continue;
        }
        let ws = store.windows(svc, None, w, Some(a), Some(b))?;
        if !ws.is_empty() {
            ranges.push((a, b));
            pss.extend(scorable_pss(ws));
        }
    }
    if !ranges.is_empty() {
        let description = format!("the same hours on {} earlier day(s) without an incident", ranges.len());
        return Ok(BaselineFound {
            baseline: Some(Baseline { kind: "same-hours-earlier-days", description, ranges }),
            pss,
        });
    }
    let len = (e - s).clamp(3600.0, 6.0 * 3600.0);
    let mut a = s - len;
    for i in incidents {
        if i.end <= s && i.end > a {
            a = i.end;
        }
    }
    if s - a < w {
        return Ok(BaselineFound { baseline: None, pss });
    }
    pss.extend(scorable_pss(store.windows(svc, None, w, Some(a), Some(s))?));
    // Fewer than a dozen windows is a thin baseline: said, not hidden.
    let windows = ((s - a) / w).floor() as u64;
    let thin = if windows < 12 { format!(" — a thin baseline ({windows} windows)") } else { String::new() };
    let description = format!(
        "the {} before it, without an incident (no earlier day at the same hours had clean data){thin}",
        crate::timefmt::human_duration(s - a)
    );
    Ok(BaselineFound {
        baseline: Some(Baseline { kind: "preceding-healthy-period", description, ranges: vec![(a, s)] }),
        pss,
    })
}

/// Step 2: the baseline's traces, scored (`None` without a baseline or traces).
fn baseline_traces(
    store: &dyn Store,
    svc: &str,
    baseline: Option<&Baseline>,
    cfg: &Config,
) -> Result<Option<(Report, TraceColumns)>, StoreError> {
    let Some(b) = baseline else { return Ok(None) };
    let mut all: Option<TraceColumns> = None;
    for &(a, z) in &b.ranges {
        let c = store.trace_slice(svc, a, z, &cfg.unknown_module)?.columns;
        match &mut all {
            None => all = Some(c),
            Some(x) => x.absorb(c),
        }
    }
    Ok(all.filter(|c| !c.is_empty()).map(|c| (build(&c, &[], cfg, GroupBy::Module, detail()), c)))
}

/// Step 3, the timeline: the subject with context on both sides, each window
/// with the window detector's score (the detector sees up to a week of the
/// service's history), and the patterns in that range.
struct Timeline {
    points: Vec<TimelinePoint>,
    patterns: Vec<Pattern>,
    detector: Option<String>,
}

fn timeline(
    store: &dyn Store,
    subject: &Subject,
    p: &DiagnoseParams,
    unavailable: &mut Vec<Unavailable>,
) -> Result<Timeline, StoreError> {
    let (svc, s, e, w) = (subject.service.as_str(), subject.start, subject.end, p.window_seconds);
    let ctx = (e - s).clamp(3600.0, 6.0 * 3600.0);
    let (from, to) = (s - ctx, e + ctx);
    let forest =
        IsolationForestParams { contamination: Some(0.05), seed: p.seed, extended: true, ..Default::default() };
    let week = Some(s - 7.0 * 86400.0);
    let sp = match service_patterns(
        store,
        svc,
        w,
        week,
        Some(to),
        p.detector.as_ref(),
        &forest,
        &PatternParams::default(),
    ) {
        Ok(sp) => Some(sp),
        Err(e) => {
            unavailable.push(Unavailable { step: "Window detector and patterns".into(), reason: e.to_string() });
            None
        }
    };
    let points = store
        .windows(svc, None, w, Some(from), Some(to))?
        .iter()
        .map(|lw| {
            let x = &lw.window;
            let det = sp.as_ref().and_then(|sp| sp.scores.iter().find(|t| t.0 == x.start));
            TimelinePoint {
                start: x.start,
                pss: x.pss,
                sub_scores: x.sub,
                traces: x.traces,
                in_subject: x.start < e && x.start + w > s,
                too_small: x.too_small,
                detector_score: det.map(|d| d.1),
                flagged: det.is_some_and(|d| d.2),
            }
        })
        .collect();
    let patterns = sp
        .as_ref()
        .map(|sp| sp.patterns.iter().filter(|p| p.windows.iter().any(|&t| t >= from && t < to)).cloned().collect())
        .unwrap_or_default();
    Ok(Timeline { points, patterns, detector: sp.map(|x| x.detector) })
}

/// Step 5, trace-level anomalies: a forest fitted on the baseline's traces
/// scores the subject's; the 100 highest, grouped by function (worst
/// example and count), the ten worst functions.
fn anomalous_traces(
    baseline: &TraceColumns,
    cols: &TraceColumns,
    svc: &str,
    seed: u64,
) -> Result<Vec<AnomalousTrace>, String> {
    let fp = IsolationForestParams { contamination: Some(0.01), seed, ..Default::default() };
    let m = DetectorParams::traces(fp, svc)
        .check()
        .and_then(|p| p.fit(&trace_features(baseline)))
        .map_err(|e| e.to_string())?;
    let sc = m.score(&trace_features(cols));
    let mut idx: Vec<usize> = (0..sc.len()).collect();
    idx.sort_by(|a, b| sc[*b].total_cmp(&sc[*a]));
    let mut groups: Vec<AnomalousTrace> = Vec::new();
    for &i in idx.iter().take(100) {
        let function = format!("{}:{}", cols.modules.get(cols.module[i]), cols.names.get(cols.name[i]));
        // In score order: the first of a function is its worst example.
        match groups.iter_mut().find(|g| g.function == function) {
            Some(g) => g.count += 1,
            None => groups.push(AnomalousTrace {
                at: cols.timestamp[i],
                function,
                count: 1,
                duration: cols.duration[i],
                wait_time: cols.wait_time[i],
                error: cols.error[i],
                score: sc[i],
            }),
        }
    }
    groups.truncate(10);
    Ok(groups)
}

/// Step 6, regression: against the baseline, and against the service's
/// stored run history before the start (pypss's `check_regression`, when
/// `pss analyze --store-history` has recorded runs for it).
fn regression(
    store: &dyn Store,
    cfg: &Config,
    subject: &Subject,
    before: Option<&Side>,
    during: &Side,
) -> Result<Option<String>, StoreError> {
    let mut out = before.and_then(|b| {
        let drop = b.pss - during.pss;
        (drop as f64 > cfg.regression_threshold_drop())
            .then(|| format!("PSS {} during vs {} in the baseline: a drop of {drop} points.", during.pss, b.pss))
    });
    let limit = cfg.regression_history_limit();
    let runs: Vec<_> = store
        .history(limit, None, Some(&subject.service))?
        .into_iter()
        .filter(|h| h.timestamp < subject.start)
        .collect();
    if let Some(w) = crate::domain::check_regression(during.pss as f64, &runs, limit, cfg.regression_threshold_drop()) {
        out = Some(match out {
            Some(r) => format!("{r} {w}"),
            None => w,
        });
    }
    Ok(out)
}

/// Step 7, the findings in words: the onset, the patterns here, windows too
/// small to alarm, the module that fell furthest, latency and errors.
fn findings(d: &Diagnosis) -> Vec<String> {
    let (s, e, w, kind) = (d.subject.start, d.subject.end, d.window_seconds, d.subject.kind);
    let mut out = Vec::new();
    match &d.onset {
        Some(o) => out.push(format!(
            "Departure from baseline began at {} ({}), {} the {kind} start.",
            crate::timefmt::format_time(o.at),
            o.by,
            o.lead()
        )),
        None if !d.timeline.is_empty() => out.push(format!(
            "No clear onset: no window departed from the baseline and stayed away into the {kind} (looked back {}).",
            crate::timefmt::human_duration(s - d.onset_from)
        )),
        None => {}
    }
    for pat in d.patterns.iter().filter(|p| p.id > 0) {
        let inside = pat.windows.iter().filter(|&&t| t < e && t + w > s).count();
        if inside > 0 {
            out.push(format!(
                "Pattern {}: {} ({} of its {} windows here).",
                pat.id,
                pat.description,
                inside,
                pat.windows.len()
            ));
        }
    }
    let inside: Vec<&TimelinePoint> = d.timeline.iter().filter(|p| p.in_subject).collect();
    if !inside.is_empty() && inside.iter().all(|p| p.too_small) {
        out.push(format!(
            "Every window of the {kind} had fewer application traces than min_window_traces: no PSS alarm could \
             fire; the evidence below is from its traces."
        ));
    }
    let Some(b) = &d.before else { return out };
    let during = &d.during;
    // The module that fell furthest from its own baseline.
    let fell = d
        .modules
        .iter()
        .filter_map(|m| m.baseline_pss.map(|bp| (bp - m.pss, m)))
        .filter(|(drop, _)| *drop > 0)
        .max_by_key(|(drop, m)| (*drop, std::cmp::Reverse(m.module.clone())));
    if let Some((drop, m)) = fell {
        out.push(format!(
            "Largest drop: module {} at PSS {} ({drop} below its baseline), weakest on {} ({:.2}).",
            crate::domain::module_label(&m.module),
            m.pss,
            m.weakest.0,
            m.weakest.1
        ));
    }
    if b.latency.p99 > 0.0 && during.latency.p99 > 2.0 * b.latency.p99 {
        out.push(format!("p99 latency ×{:.1} against the baseline.", during.latency.p99 / b.latency.p99));
    }
    if during.error_rate > 2.0 * b.error_rate + 0.01 {
        out.push(format!(
            "Error rate {:.1}% against {:.1}% in the baseline{}.",
            during.error_rate * 100.0,
            b.error_rate * 100.0,
            during.exceptions.first().map(|x| format!("; most often {}", x.exception_type)).unwrap_or_default()
        ));
    }
    out
}

/// Builds the diagnosis of `subject` from the history in `store`, in steps:
/// the subject's traces, the baseline, the timeline with the window
/// detector and patterns, the onset, anomalous traces, regression,
/// findings. An optional step that fails is recorded in `unavailable`.
pub fn diagnose(
    store: &dyn Store,
    subject: Subject,
    cfg: &Config,
    p: &DiagnoseParams,
) -> Result<Diagnosis, DiagnoseError> {
    let (s, e, w) = (subject.start, subject.end, p.window_seconds);
    let svc = subject.service.clone();
    let crate::store::TraceSlice { columns: cols, slowest } = store.trace_slice(&svc, s, e, &cfg.unknown_module)?;
    if cols.is_empty() && cols.sys_module.is_empty() {
        return Err(DiagnoseError::Data(format!(
            "no traces of '{svc}' between {} and {} in {}",
            crate::timefmt::format_time(s),
            crate::timefmt::format_time(e),
            store.location()
        )));
    }
    let during = build(&cols, &[], cfg, GroupBy::Module, detail());
    let incidents = store.incidents(Some(&svc))?;
    let base = find_baseline(store, &subject, w, p.baseline_days, &incidents)?;
    let before_report = baseline_traces(store, &svc, base.baseline.as_ref(), cfg)?;
    let mut unavailable = Vec::new();
    let tl = timeline(store, &subject, p, &mut unavailable)?;
    // Step 4, the onset: where the run of departing windows that reaches
    // into the subject began (see `onset`), looked for at the subject's own
    // scale and never across an earlier incident.
    let previous_end = incidents.iter().map(|i| i.end).filter(|&x| x <= s).fold(f64::NEG_INFINITY, f64::max);
    let onset = onset(&tl.points, &base.pss, s, e, w, previous_end);
    let mut traces = Vec::new();
    if let Some((_, bc)) = &before_report {
        if bc.len() >= 2 && !cols.is_empty() {
            match anomalous_traces(bc, &cols, &svc, p.seed) {
                Ok(t) => traces = t,
                Err(reason) => unavailable.push(Unavailable { step: "Trace detector".into(), reason }),
            }
        }
    }
    let before = before_report.as_ref().map(|(r, _)| Side::from_report(r));
    let during_side = Side::from_report(&during);
    let regression = regression(store, cfg, &subject, before.as_ref(), &during_side)?;
    let mut d = Diagnosis {
        subject,
        baseline: base.baseline,
        modules: module_rows(&during, before_report.as_ref().map(|(r, _)| r)),
        during: during_side,
        before,
        window_seconds: w,
        timeline: tl.points,
        onset,
        onset_from: onset_lookback(s, e, w, previous_end),
        detector: tl.detector,
        patterns: tl.patterns,
        anomalous_traces: traces,
        regression,
        advice: during.advice.clone(),
        findings: Vec::new(),
        source: slowest
            .map(|t| snippet(&p.source, &t.filename, t.lineno, t.duration, &format!("{}:{}", t.module, t.name))),
        narrative: None,
        skipped_traces: cols.skipped.total(),
        unavailable,
    };
    d.findings = findings(&d);
    Ok(d)
}

/// Per-module rows of `during`, worst first, with each module's PSS in
/// `baseline` when there is one.
pub fn module_rows(during: &Report, baseline: Option<&Report>) -> Vec<ModuleRow> {
    let mut modules: Vec<ModuleRow> = during
        .groups
        .iter()
        .map(|g| {
            let b = &g.score.breakdown;
            let subs =
                [b.timing_stability, b.memory_stability, b.error_volatility, b.branching_entropy, b.concurrency_chaos];
            let (k, v) =
                subs.iter().enumerate().fold((0, f64::INFINITY), |m, (k, &v)| if v < m.1 { (k, v) } else { m });
            ModuleRow {
                module: g.key.clone(),
                pss: g.score.pss,
                baseline_pss: baseline.and_then(|r| r.groups.iter().find(|x| x.key == g.key).map(|x| x.score.pss)),
                traces: g.traces,
                errors: g.errors,
                weakest: (SUB_NAMES[k].to_string(), v),
            }
        })
        .collect();
    modules.sort_by_key(|m| (m.pss, m.module.clone()));
    modules
}

/// How far before the start the onset is looked for: three subject lengths
/// or six windows, whichever is longer, at most two hours — and never
/// before an earlier incident's end plus two windows (its recovery).
pub fn onset_lookback(s: f64, e: f64, w: f64, previous_end: f64) -> f64 {
    let scale = (3.0 * (e - s)).max(6.0 * w).min(7200.0);
    (s - scale).max(previous_end + 2.0 * w)
}

/// The onset: a window departs when its PSS is below the baseline windows'
/// median − max(3 robust σ, 5), or the detector flags it. Among the
/// windows from [`onset_lookback`] to the end, the first departing window
/// inside the subject is found and its run followed back (one clean window
/// may interrupt it): the onset is where that run began. A departure that
/// does not persist into the subject is not an onset; `None` when nothing
/// inside the subject departs ("no clear onset").
fn onset(t: &[TimelinePoint], base: &[f64], s: f64, e: f64, w: f64, previous_end: f64) -> Option<Onset> {
    let limit = if base.len() >= 3 {
        let mut v = base.to_vec();
        v.sort_by(f64::total_cmp);
        let med = v[v.len() / 2];
        let mut dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
        dev.sort_by(f64::total_cmp);
        let mad = 1.4826 * dev[dev.len() / 2];
        Some(med - (3.0 * mad).max(5.0))
    } else {
        None
    };
    let from = onset_lookback(s, e, w, previous_end);
    let cands: Vec<&TimelinePoint> = t.iter().filter(|p| p.start >= from && p.start < e).collect();
    let departs = |p: &TimelinePoint| (limit.is_some_and(|l| p.traces > 0 && !p.too_small && p.pss < l), p.flagged);
    let d: Vec<bool> = cands.iter().map(|p| departs(p).0 || departs(p).1).collect();
    let first_in = cands.iter().enumerate().position(|(k, p)| p.start + w > s && d[k])?;
    let mut k = first_in;
    loop {
        if k >= 1 && d[k - 1] {
            k -= 1;
        } else if k >= 2 && d[k - 2] {
            k -= 2;
        } else {
            break;
        }
    }
    let p = cands[k];
    let by = match departs(p) {
        (true, true) => "PSS below baseline and detector flag",
        (true, false) => "PSS below baseline",
        _ => "detector flag",
    };
    Some(Onset { at: p.start, by: by.into(), lead_seconds: s - p.start })
}

/// pypss's `extract_function_code`: the function starting at `lineno`, up
/// to the first line indented no deeper (at most 40 lines here).
pub fn snippet(policy: &SourcePolicy, filename: &str, lineno: i64, duration: f64, function: &str) -> SourceSnippet {
    let mut s = SourceSnippet {
        function: function.into(),
        filename: filename.into(),
        lineno,
        duration,
        code: None,
        note: String::new(),
    };
    if filename.is_empty() || filename == "unknown" {
        s.note = "the trace names no source file".into();
        return s;
    }
    let text = match policy.read(filename) {
        Ok(t) => t,
        Err(why) => {
            s.note = format!("source not read: {why}");
            return s;
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    if lineno < 1 || lineno as usize > lines.len() {
        s.note = format!("line {lineno} is past the end of the file ({} lines)", lines.len());
        return s;
    }
    let start = lineno as usize - 1;
    let indent = |l: &str| l.len() - l.trim_start().len();
    let base = indent(lines[start]);
    let mut block = vec![lines[start]];
    for l in &lines[start + 1..] {
        if !l.trim().is_empty() && indent(l) <= base {
            break;
        }
        block.push(l);
    }
    let total = block.len();
    block.truncate(40);
    s.code = Some(block.join("\n"));
    s.note = if total > 40 { format!("first 40 of {total} lines") } else { String::new() };
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 5-second windows from t=0: PSS 90 except where `bad` says, flagged where `flag` says.
    fn series(n: usize, bad: &[usize], flag: &[usize]) -> Vec<TimelinePoint> {
        (0..n)
            .map(|k| TimelinePoint {
                start: k as f64 * 5.0,
                pss: if bad.contains(&k) { 40.0 } else { 90.0 + (k % 3) as f64 },
                sub_scores: SubScores::default(),
                traces: 50,
                in_subject: false,
                too_small: false,
                detector_score: None,
                flagged: flag.contains(&k),
            })
            .collect()
    }
    const BASE: [f64; 6] = [90.0, 91.0, 92.0, 90.0, 91.0, 92.0];

    #[test]
    fn an_earlier_unrelated_flag_is_not_the_onset_of_a_short_incident() {
        // A 19 s incident at 600 s (windows 120-123); a lone flag 8 minutes
        // earlier (window 22); the incident's windows depart.
        let t = series(200, &[120, 121, 122, 123], &[22]);
        let o = onset(&t, &BASE, 600.0, 619.0, 5.0, f64::NEG_INFINITY).unwrap();
        assert_eq!((o.at, o.lead_seconds), (600.0, 0.0), "{o:?}");
        assert!(onset_lookback(600.0, 619.0, 5.0, f64::NEG_INFINITY) >= 540.0, "a few incident lengths back");
    }

    #[test]
    fn a_departure_that_persists_into_the_incident_is_its_onset() {
        // Departing from window 115 (25 s before), one clean window in the run.
        let t = series(200, &[115, 116, 118, 119, 120, 121], &[]);
        let o = onset(&t, &BASE, 600.0, 619.0, 5.0, f64::NEG_INFINITY).unwrap();
        assert_eq!(o.at, 575.0, "{o:?}");
        assert_eq!(crate::timefmt::human_duration(o.lead_seconds), "25 s");
        assert_eq!(o.by, "PSS below baseline");
        // A departure that recovered before the incident is not its onset.
        let t = series(200, &[112, 113, 120], &[]);
        assert_eq!(onset(&t, &BASE, 600.0, 619.0, 5.0, f64::NEG_INFINITY).unwrap().at, 600.0);
    }

    #[test]
    fn nothing_departing_inside_means_no_clear_onset_and_earlier_incidents_bound_the_search() {
        let t = series(200, &[100, 101], &[]);
        assert!(onset(&t, &BASE, 600.0, 619.0, 5.0, f64::NEG_INFINITY).is_none());
        // An earlier incident ended at 590 s: the search starts two windows after it.
        assert_eq!(onset_lookback(600.0, 619.0, 5.0, 590.0), 600.0);
        let t = series(200, &[117, 118, 119, 120], &[]);
        let o = onset(&t, &BASE, 600.0, 619.0, 5.0, 590.0).unwrap();
        assert_eq!(o.at, 600.0, "the run is not followed into the earlier incident's recovery: {o:?}");
        // Long incidents look back further, at most two hours.
        assert_eq!(onset_lookback(10_000.0, 13_600.0, 60.0, f64::NEG_INFINITY), 10_000.0 - 7200.0);
    }
}
