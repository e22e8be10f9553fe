//! What the board's pages show, computed from a history: the same
//! operations the CLI calls (a report of a time range as `pss analyze`
//! builds it, stored windows as `pss windows` reads them, `pss alarms`'
//! replay, the promoted detector's scores), shaped for charts. Nothing here
//! knows about HTTP.

use serde::Serialize;
use serde_json::Value;

use crate::alarm::backtest::{run as replay, Backtest, Episode, Judged};
use crate::alarm::AlarmPolicy;
use crate::config::Config;
use crate::detect::model::{window_features, DetectorModel};
use crate::domain::{Incident, Window};
use crate::report::model::{build, Detail};
use crate::score::GroupBy;
use crate::store::{Store, StoreError};

/// Why a board query failed: the page shows the message.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Input(String),
    /// The query's thread ended without an answer.
    #[error("the query failed")]
    Failed,
}

/// A time range and window length asked for; `None`s mean everything and
/// the service's stored length.
#[derive(Debug, Clone, Default)]
pub struct Range {
    pub service: String,
    pub window: Option<f64>,
    pub from: Option<f64>,
    pub to: Option<f64>,
}

/// One service as the service picker shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceInfo {
    pub name: String,
    /// Window lengths stored for it, seconds.
    pub windows: Vec<f64>,
    /// The length shown when none is asked for ([`default_window`]).
    pub window: Option<f64>,
    /// First window start and last window end, epoch seconds.
    pub from: Option<f64>,
    pub to: Option<f64>,
    pub incidents: usize,
}

/// The services, their window lengths and time ranges.
pub fn services(store: &dyn Store) -> Result<Vec<ServiceInfo>, QueryError> {
    let mut out = Vec::new();
    for name in store.services()? {
        let windows = store.window_lengths(Some(&name))?;
        let (mut from, mut to) = (None, None);
        if let Some(&w) = windows.first() {
            if let Some(r) = store.window_span(&name, w)? {
                (from, to) = (Some(r.from), Some(r.to));
            }
        }
        let incidents = store.incidents(Some(&name))?.len();
        let window = default_window(store, &name, &windows)?;
        out.push(ServiceInfo { name, windows, window, from, to, incidents });
    }
    Ok(out)
}

/// The window length shown when none is asked for: the shortest of
/// `lengths` whose latest windows are mostly large enough to score, else the
/// one with the smallest share too small. (A short trace file's 10 s windows
/// can all be too small: shown by default, the PSS trend would be empty.)
pub fn default_window(store: &dyn Store, service: &str, lengths: &[f64]) -> Result<Option<f64>, StoreError> {
    // The latest windows only: `/api/meta` asks every 3 s, whatever the history's length.
    const LATEST: usize = 1000;
    let mut best: Option<(f64, f64)> = None;
    for &seconds in lengths {
        let c = store.window_counts(service, seconds, LATEST)?;
        if c.windows == 0 {
            continue;
        }
        let share = c.too_small as f64 / c.windows as f64;
        if share <= 0.5 {
            return Ok(Some(seconds));
        }
        if best.is_none_or(|(s, _)| share < s) {
            best = Some((share, seconds));
        }
    }
    Ok(best.map(|(_, seconds)| seconds).or(lengths.first().copied()))
}

fn window_of(store: &dyn Store, r: &Range) -> Result<f64, QueryError> {
    let lengths = store.window_lengths(Some(&r.service))?;
    match r.window {
        Some(w) if lengths.contains(&w) => Ok(w),
        Some(w) => Err(QueryError::Input(format!(
            "'{}' has no windows of {w} s (stored: {})",
            r.service,
            lengths.iter().map(|l| format!("{l} s")).collect::<Vec<_>>().join(", ")
        ))),
        None => default_window(store, &r.service, &lengths)?
            .ok_or_else(|| QueryError::Input(format!("'{}' has no windows", r.service))),
    }
}

fn known(store: &dyn Store, service: &str) -> Result<(), QueryError> {
    if store.services()?.iter().any(|s| s == service) {
        Ok(())
    } else {
        Err(QueryError::Input(format!("no service '{service}'")))
    }
}

/// The overview of a range: `pss analyze`'s JSON report of the range's
/// stored traces (PSS, sub-scores, modules worst first, the advisor,
/// latency), the range and how many traces it holds.
pub fn overview(store: &dyn Store, r: &Range, cfg: &Config) -> Result<Value, QueryError> {
    known(store, &r.service)?;
    let from = r.from.unwrap_or(f64::MIN);
    let to = r.to.unwrap_or(f64::MAX);
    let slice = store.trace_slice(&r.service, from, to, &cfg.unknown_module)?;
    let report = build(&slice.columns, &[], cfg, GroupBy::Module, Detail { summaries: true, charts: false });
    let mut v = crate::report::json::to_value(&report);
    // The module table, worst first (the JSON object keeps pypss's order).
    let mut modules: Vec<(String, i64, usize, usize)> =
        report.groups.iter().map(|g| (g.key.clone(), g.score.pss, g.traces, g.errors)).collect();
    modules.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    v["modules_worst_first"] = serde_json::json!(modules
        .iter()
        .map(|(m, p, t, e)| serde_json::json!({ "module": m, "pss": p, "traces": t, "errors": e }))
        .collect::<Vec<_>>());
    v["range"] = serde_json::json!({ "from": r.from, "to": r.to });
    // Readings the traces lack (OpenTelemetry spans without memory or wait time), in words.
    v["not_measured_note"] = report.unmeasured.describe(report.traces).into();
    Ok(v)
}

/// Window series for charts, downsampled to at most `points` buckets of
/// consecutive windows: per bucket the lowest PSS and sub-scores (a dip
/// stays visible), the highest latency percentiles, summed traces and
/// errors. `step` says how many windows a point stands for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    pub service: String,
    pub module: String,
    pub window: f64,
    pub step: usize,
    pub t: Vec<f64>,
    pub pss: Vec<Option<f64>>,
    pub ts: Vec<Option<f64>>,
    pub ms: Vec<Option<f64>>,
    pub ev: Vec<Option<f64>>,
    pub be: Vec<Option<f64>>,
    pub cc: Vec<Option<f64>>,
    pub traces: Vec<u64>,
    pub errors: Vec<u64>,
    pub p50: Vec<Option<f64>>,
    pub p95: Vec<Option<f64>>,
    pub p99: Vec<Option<f64>>,
    pub wait_mean: Vec<Option<f64>>,
    pub error_rate: Vec<Option<f64>>,
    pub tag_entropy: Vec<Option<f64>>,
    /// Custom metrics' scores (lowest per bucket), in the order they were configured.
    pub custom: Vec<CustomSeries>,
    /// Windows too small to score: their scores are gaps (`null`).
    pub too_small: usize,
}

/// One custom metric's scores over the buckets of a [`Series`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CustomSeries {
    pub code: String,
    pub values: Vec<Option<f64>>,
}

fn fold(xs: impl Iterator<Item = f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    xs.fold(None, |acc, x| Some(acc.map_or(x, |a| pick(a, x))))
}

/// Downsamples scored windows (in time order) into `points` buckets.
pub fn downsample(service: &str, module: &str, window: f64, ws: &[Window], points: usize) -> Series {
    let step = ws.len().div_ceil(points.max(1)).max(1);
    let mut s = Series {
        service: service.into(),
        module: module.into(),
        window,
        step,
        too_small: ws.iter().filter(|w| w.too_small).count(),
        ..Series::default()
    };
    for w in ws {
        for c in &w.custom {
            if !s.custom.iter().any(|x| x.code == c.code) {
                s.custom.push(CustomSeries { code: c.code.clone(), values: Vec::new() });
            }
        }
    }
    for chunk in ws.chunks(step) {
        let scored: Vec<&Window> = chunk.iter().filter(|w| !w.too_small).collect();
        let min = |f: fn(&Window) -> f64| fold(scored.iter().map(|w| f(w)), f64::min);
        let max = |f: fn(&Window) -> f64| fold(scored.iter().map(|w| f(w)), f64::max);
        s.t.push(chunk[0].start);
        s.pss.push(min(|w| w.pss));
        s.ts.push(min(|w| w.sub.timing_stability));
        s.ms.push(min(|w| w.sub.memory_stability));
        s.ev.push(min(|w| w.sub.error_volatility));
        s.be.push(min(|w| w.sub.branching_entropy));
        s.cc.push(min(|w| w.sub.concurrency_chaos));
        s.traces.push(chunk.iter().map(|w| w.traces).sum());
        s.errors.push(chunk.iter().map(|w| w.errors).sum());
        s.p50.push(max(|w| w.features.lat_p50));
        s.p95.push(max(|w| w.features.lat_p95));
        s.p99.push(max(|w| w.features.lat_p99));
        s.wait_mean.push(max(|w| w.features.wait_mean));
        s.error_rate.push(max(|w| w.features.error_rate));
        s.tag_entropy.push(max(|w| w.features.tag_entropy));
        for cs in &mut s.custom {
            let of =
                |w: &&Window| w.custom.iter().find(|c| c.code == cs.code).map(|c| crate::pystats::py_round2(c.score));
            cs.values.push(fold(scored.iter().filter_map(of), f64::min));
        }
    }
    s
}

/// A service's (or one module's) stored windows in the range, downsampled.
pub fn series(store: &dyn Store, r: &Range, module: Option<&str>, points: usize) -> Result<Series, QueryError> {
    known(store, &r.service)?;
    let w = window_of(store, r)?;
    let ws: Vec<Window> = store.windows(&r.service, module, w, r.from, r.to)?.into_iter().map(|l| l.window).collect();
    Ok(downsample(&r.service, module.unwrap_or(""), w, &ws, points))
}

/// A time × module matrix of one window feature (errors: error rate;
/// entropy: branch-tag entropy), modules as rows, downsampled like
/// [`series`] (highest value per bucket).
#[derive(Debug, Clone, Serialize)]
pub struct Heatmap {
    pub kind: String,
    pub t: Vec<f64>,
    pub modules: Vec<String>,
    /// `values[module][bucket]`, `null` where the module had no window.
    pub values: Vec<Vec<Option<f64>>>,
    pub max: f64,
}

/// The heatmap of `kind` (`errors` or `entropy`) over the range.
pub fn heatmap(store: &dyn Store, r: &Range, kind: &str, points: usize) -> Result<Heatmap, QueryError> {
    known(store, &r.service)?;
    let pick: fn(&Window) -> f64 = match kind {
        "errors" => |w| w.features.error_rate,
        "entropy" => |w| w.features.tag_entropy,
        other => return Err(QueryError::Input(format!("heatmap kind '{other}': use errors or entropy"))),
    };
    let w = window_of(store, r)?;
    let service: Vec<Window> =
        store.windows(&r.service, None, w, r.from, r.to)?.into_iter().map(|l| l.window).collect();
    let step = service.len().div_ceil(points.max(1)).max(1);
    let t: Vec<f64> = service.chunks(step).map(|c| c[0].start).collect();
    let bucket = |start: f64| -> Option<usize> {
        let first = service.first()?.start;
        let k = ((start - first) / w).round();
        (k >= 0.0).then(|| (k as usize / step).min(t.len().saturating_sub(1)))
    };
    let modules = store.window_modules(&r.service, w)?;
    let mut values = Vec::with_capacity(modules.len());
    let mut max = 0.0f64;
    for m in &modules {
        let mut row: Vec<Option<f64>> = vec![None; t.len()];
        for lw in store.windows(&r.service, Some(m), w, r.from, r.to)? {
            if lw.window.too_small && lw.window.traces == 0 {
                continue;
            }
            if let Some(b) = bucket(lw.window.start) {
                let v = pick(&lw.window);
                max = max.max(v);
                row[b] = Some(row[b].map_or(v, |x: f64| x.max(v)));
            }
        }
        values.push(row);
    }
    Ok(Heatmap { kind: kind.into(), t, modules, values, max })
}

/// One failed trace, for the module drill-down.
#[derive(Debug, Clone, Serialize)]
pub struct FailedTrace {
    pub timestamp: f64,
    pub name: String,
    pub duration: f64,
}

/// A module's latency percentiles and its failed traces over the range.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleDetail {
    pub service: String,
    pub module: String,
    pub traces: usize,
    pub errors: usize,
    /// p50, p90, p95, p99 and max of its traces' durations, seconds.
    pub latency: Vec<(String, f64)>,
    /// Its failed traces, latest first (at most 200).
    pub failed: Vec<FailedTrace>,
}

/// The module drill-down.
pub fn module_detail(store: &dyn Store, r: &Range, module: &str, cfg: &Config) -> Result<ModuleDetail, QueryError> {
    known(store, &r.service)?;
    let slice =
        store.trace_slice(&r.service, r.from.unwrap_or(f64::MIN), r.to.unwrap_or(f64::MAX), &cfg.unknown_module)?;
    let c = &slice.columns;
    let rows: Vec<usize> = (0..c.duration.len()).filter(|&i| c.modules.get(c.module[i]) == module).collect();
    if rows.is_empty() {
        return Err(QueryError::Input(format!("no traces of module '{module}' in '{}' in this range", r.service)));
    }
    let mut d: Vec<f64> = rows.iter().map(|&i| c.duration[i]).collect();
    let max = d.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let q = crate::pystats::percentiles(&mut d, &[49, 89, 94, 98]).unwrap_or_else(|| vec![max; 4]);
    let latency = ["p50", "p90", "p95", "p99"].iter().zip(&q).map(|(k, v)| (k.to_string(), *v)).collect::<Vec<_>>();
    let mut failed: Vec<FailedTrace> = rows
        .iter()
        .filter(|&&i| c.error[i])
        .map(|&i| FailedTrace {
            timestamp: c.timestamp[i],
            name: c.names.get(c.name[i]).to_string(),
            duration: c.duration[i],
        })
        .collect();
    let errors = failed.len();
    failed.sort_by(|a, b| b.timestamp.total_cmp(&a.timestamp));
    failed.truncate(200);
    let mut latency = latency;
    latency.push(("max".into(), max));
    Ok(ModuleDetail { service: r.service.clone(), module: module.into(), traces: rows.len(), errors, latency, failed })
}

/// Incidents of a service that overlap the range.
pub fn incidents(store: &dyn Store, r: &Range) -> Result<Vec<Incident>, QueryError> {
    known(store, &r.service)?;
    let (from, to) = (r.from.unwrap_or(f64::MIN), r.to.unwrap_or(f64::MAX));
    Ok(store.incidents(Some(&r.service))?.into_iter().filter(|i| i.end > from && i.start < to).collect())
}

/// The alarm episodes the policy in force would have paged in the range
/// (`pss alarms`' replay), the policy and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Alarms {
    pub policy_file: Option<String>,
    pub policy: AlarmPolicy,
    pub detector: String,
    pub episodes: Vec<Episode>,
    pub judged: Judged,
    /// The policy's model card (pss-tune's `.card.json` beside it), when there is one.
    pub card: Option<Value>,
}

/// Replays the range through the policy in force (see [`AlarmPolicy::in_force`]).
pub fn alarms(
    store: &dyn Store,
    r: &Range,
    cfg: &Config,
    policy_file: Option<&std::path::Path>,
    models: &std::path::Path,
) -> Result<Alarms, QueryError> {
    known(store, &r.service)?;
    let w = window_of(store, r)?;
    let (mut policy, file) =
        AlarmPolicy::in_force(policy_file, &r.service, cfg, models).map_err(|e| QueryError::Input(e.to_string()))?;
    let detector = policy.attach_promoted(store, &r.service, w)?.to_string();
    let b = Backtest {
        service: r.service.clone(),
        window_seconds: w,
        from: r.from,
        to: r.to,
        unknown_module: cfg.unknown_module.clone(),
        lead: 2.0 * w,
    };
    let rep = replay(store, &policy, &b).map_err(|e| QueryError::Input(e.to_string()))?;
    let card = file.as_ref().and_then(|f| {
        let p = crate::tune::nightly::sibling(f, ".card.json");
        serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
    });
    Ok(Alarms {
        policy_file: file.map(|f| f.display().to_string()),
        policy,
        detector,
        episodes: rep.episodes,
        judged: rep.judged,
        card,
    })
}

/// The service's promoted window detector, when it reads and is one of `w` seconds.
fn promoted(store: &dyn Store, service: &str, w: f64) -> Result<Option<DetectorModel>, StoreError> {
    Ok(crate::detect::registry::active_window_detector(store, service)?
        .and_then(|a| a.model.ok())
        .filter(|m| m.window_seconds == Some(w)))
}

/// The promoted window detector's score of each window in the range
/// (downsampled: the highest per bucket), and its flag threshold.
#[derive(Debug, Clone, Serialize)]
pub struct DetectorScores {
    pub model: Option<String>,
    pub t: Vec<f64>,
    pub score: Vec<Option<f64>>,
    pub threshold: Option<f64>,
    /// Why there are no scores, when there are none.
    pub note: Option<String>,
}

/// The detector overlay.
pub fn detector_scores(store: &dyn Store, r: &Range, points: usize) -> Result<DetectorScores, QueryError> {
    known(store, &r.service)?;
    let w = window_of(store, r)?;
    let none =
        |note: String| DetectorScores { model: None, t: vec![], score: vec![], threshold: None, note: Some(note) };
    let Some(active) = crate::detect::registry::active_window_detector(store, &r.service)? else {
        return Ok(none("no promoted window detector (pss-tune promotes one)".into()));
    };
    let path = active.path;
    let model = match active.model {
        Ok(m) if m.window_seconds == Some(w) => m,
        Ok(_) => return Ok(none(format!("{path}: a detector of another window length"))),
        Err(e) => return Ok(none(e.to_string())),
    };
    let ws: Vec<Window> = store.windows(&r.service, None, w, r.from, r.to)?.into_iter().map(|l| l.window).collect();
    let step = ws.len().div_ceil(points.max(1)).max(1);
    let mut t = Vec::new();
    let mut score = Vec::new();
    for chunk in ws.chunks(step) {
        let scored: Vec<&Window> = chunk.iter().filter(|w| !w.too_small).collect();
        t.push(chunk[0].start);
        score.push(if scored.is_empty() {
            None
        } else {
            model.score(&window_features(&scored)).into_iter().reduce(f64::max)
        });
    }
    Ok(DetectorScores { model: Some(path), t, score, threshold: model.forest.threshold, note: None })
}

/// A pattern as the Diagnostics tab lists it.
#[derive(Debug, Clone, Serialize)]
pub struct PatternRow {
    pub id: usize,
    pub description: String,
    pub windows: usize,
    pub first: f64,
    /// End of its last window.
    pub last: f64,
    pub incidents: Vec<String>,
}

/// The flagged windows' patterns (`pss detect patterns`) over the range,
/// scored by the promoted window detector (else one trained on the range).
pub fn patterns(store: &dyn Store, r: &Range) -> Result<Value, QueryError> {
    use crate::detect::patterns::{service_patterns, PatternParams};
    known(store, &r.service)?;
    let w = window_of(store, r)?;
    let model = promoted(store, &r.service, w)?;
    let forest = crate::detect::IsolationForestParams { contamination: Some(0.05), seed: 7, ..Default::default() };
    let sp = match service_patterns(
        store,
        &r.service,
        w,
        r.from,
        r.to,
        model.as_ref(),
        &forest,
        &PatternParams::default(),
    ) {
        Ok(sp) => sp,
        // Too few windows is what the range holds, not a bad request.
        Err(crate::detect::patterns::PatternError::Data(note)) => {
            return Ok(
                serde_json::json!({ "detector": "none", "flagged": 0, "windows": 0, "patterns": [], "note": note }),
            )
        }
        Err(e) => return Err(QueryError::Input(e.to_string())),
    };
    let rows: Vec<PatternRow> = sp
        .patterns
        .iter()
        .map(|p| PatternRow {
            id: p.id,
            description: p.description.clone(),
            windows: p.windows.len(),
            first: p.windows.iter().copied().fold(f64::INFINITY, f64::min),
            last: p.windows.iter().copied().fold(f64::NEG_INFINITY, f64::max) + w,
            incidents: p.incidents.clone(),
        })
        .collect();
    Ok(serde_json::json!({
        "detector": sp.detector,
        "flagged": sp.scores.iter().filter(|s| s.2).count(),
        "windows": sp.scores.len(),
        "patterns": rows,
    }))
}

/// The incident's diagnosis document (what `pss diagnose` writes), as HTML;
/// source files are not read (no source root on the board).
pub fn diagnosis_html(store: &dyn Store, service: &str, incident: &str, cfg: &Config) -> Result<String, QueryError> {
    use crate::diagnose::incident::{diagnose, DiagnoseParams, Subject};
    known(store, service)?;
    let i = store
        .incidents(Some(service))?
        .into_iter()
        .find(|i| i.id == incident)
        .ok_or_else(|| QueryError::Input(format!("no incident '{incident}' of '{service}'")))?;
    let w = window_of(store, &Range { service: service.into(), ..Range::default() })?;
    let detector = promoted(store, service, w)?;
    let p = DiagnoseParams {
        window_seconds: w,
        detector,
        seed: 7,
        baseline_days: 7,
        source: crate::diagnose::source::SourcePolicy::under(None),
    };
    let d = diagnose(store, Subject::incident(&i), cfg, &p).map_err(|e| QueryError::Input(e.to_string()))?;
    Ok(crate::diagnose::render::html(&d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Features, SubScores};

    fn w(k: usize, pss: f64, small: bool) -> Window {
        let f = Features { lat_p99: k as f64, ..Features::default() };
        Window {
            traces: 10,
            errors: 1,
            too_small: small,
            pss,
            sub: SubScores { timing_stability: pss / 100.0, ..SubScores::default() },
            ..Window::unscored("s", k as f64 * 60.0, 60.0, f)
        }
    }

    #[test]
    fn downsampling_keeps_dips_and_sums_counts() {
        let ws: Vec<Window> = (0..10).map(|k| w(k, if k == 7 { 20.0 } else { 90.0 }, k == 9)).collect();
        let s = downsample("s", "", 60.0, &ws, 3);
        assert_eq!(s.step, 4);
        assert_eq!(s.t, vec![0.0, 240.0, 480.0]);
        assert_eq!(s.pss, vec![Some(90.0), Some(20.0), Some(90.0)], "the dip at 7 is the second bucket's value");
        assert_eq!(s.traces, vec![40, 40, 20]);
        assert_eq!(s.p99, vec![Some(3.0), Some(7.0), Some(8.0)], "too-small window 9 is left out");
        assert_eq!(s.too_small, 1);
        assert!(s.custom.is_empty(), "no custom metrics, no custom series");
        let all = downsample("s", "", 60.0, &ws, 1000);
        assert_eq!((all.step, all.t.len()), (1, 10));
        assert_eq!(all.pss[9], None, "a too-small window is a gap");
    }

    /// The board opens on the shortest length that mostly scores: a short
    /// file's 10 s windows all too small would leave its trend empty.
    #[test]
    fn the_default_window_is_the_shortest_that_mostly_scores() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = crate::store::SqliteStore::open(&dir.path().join("h.db")).unwrap();
        let put = |store: &mut crate::store::SqliteStore, seconds: f64, n: usize, small: usize| {
            let ws: Vec<Window> = (0..n)
                .map(|k| Window {
                    too_small: k < small,
                    ..Window::unscored("s", k as f64 * seconds, seconds, Features::default())
                })
                .collect();
            let range = crate::store::TimeRange { from: 0.0, to: n as f64 * seconds };
            store.replace_windows("s", seconds, range, &ws).unwrap();
        };
        put(&mut store, 10.0, 90, 90);
        put(&mut store, 30.0, 30, 20);
        put(&mut store, 60.0, 15, 5);
        put(&mut store, 300.0, 3, 0);
        let lengths = store.window_lengths(Some("s")).unwrap();
        assert_eq!(lengths, vec![10.0, 30.0, 60.0, 300.0]);
        assert_eq!(default_window(&store, "s", &lengths).unwrap(), Some(60.0));
        assert_eq!(default_window(&store, "s", &[10.0, 30.0]).unwrap(), Some(30.0), "else the fewest too small");
        assert_eq!(default_window(&store, "s", &[]).unwrap(), None);
    }

    /// Custom metrics get a series each, lowest score per bucket, too-small windows gaps.
    #[test]
    fn custom_metrics_are_series_beside_the_five() {
        let cv =
            |code: &str, score: f64| crate::domain::CustomValue { code: code.into(), score, weight: 0.1, decay: None };
        let ws: Vec<Window> = (0..5)
            .map(|k| Window { custom: vec![cv("CACHE", 0.9 - k as f64 * 0.1), cv("IO", 0.5)], ..w(k, 90.0, k == 4) })
            .collect();
        let s = downsample("s", "", 60.0, &ws, 3);
        let got: Vec<(&str, &[Option<f64>])> =
            s.custom.iter().map(|c| (c.code.as_str(), c.values.as_slice())).collect();
        assert_eq!(got, vec![("CACHE", &[Some(0.8), Some(0.6), None][..]), ("IO", &[Some(0.5), Some(0.5), None][..])]);
    }
}
