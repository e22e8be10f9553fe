//! Patterns: anomalous windows of a service grouped by what is abnormal
//! about them, with a description a person can read in an incident review
//! ("p99 latency ×4.1 and wait-time CV ×3.0 in module `orders`, errors
//! normal").
//!
//! Each window's features become robust z-scores against the service's
//! normal windows (median and MAD), compressed with a signed log so one
//! enormous feature does not hide the others; DBSCAN (`linfa-clustering`)
//! groups them, its radius set from the data (the median distance to each
//! point's `min_points`-th neighbour), never per service by hand.

use linfa::traits::Transformer;
use linfa_clustering::Dbscan;
use ndarray::Array2;
use serde::Serialize;

use crate::domain::LabeledWindow;
use crate::domain::{Features, Window};

/// Features that describe behaviour (the others are bookkeeping or duplicates).
const USED: [usize; 18] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18];

/// A person's name for a feature.
pub fn feature_label(name: &str) -> &'static str {
    match name {
        "lat_mean" => "mean latency",
        "lat_p50" => "p50 latency",
        "lat_p95" => "p95 latency",
        "lat_p99" => "p99 latency",
        "lat_cv" => "latency CV",
        "tail_ratio" => "tail ratio (p99/p50)",
        "mem_median" => "median memory",
        "mem_peak" => "peak memory",
        "mem_slope" => "memory growth",
        "error_rate" => "error rate",
        "error_vmr" => "error burstiness",
        "error_longest_run" => "longest error run",
        "wait_mean" => "mean wait time",
        "wait_cv" => "wait-time CV",
        "tag_count" => "branch tags",
        "tag_entropy" => "branch entropy",
        "lag_mean" => "event-loop lag",
        "mem_std" => "memory spread",
        "rows" => "traffic",
        "be_raw" => "branching entropy score",
        "lag_count" => "lag readings",
        _ => "feature",
    }
}

/// Hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternParams {
    /// DBSCAN's minimum points per cluster (with the point itself).
    pub min_points: usize,
    /// Robust z beyond which a feature is called abnormal.
    pub z_abnormal: f64,
    /// At most this many features in a description.
    pub max_features: usize,
}

impl Default for PatternParams {
    fn default() -> Self {
        PatternParams { min_points: 3, z_abnormal: 3.0, max_features: 3 }
    }
}

/// One abnormal feature of a pattern.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deviation {
    pub feature: String,
    /// The pattern's median value.
    pub value: f64,
    /// The normal windows' median.
    pub normal: f64,
    /// Robust z-score of `value` against normal windows.
    pub z: f64,
}

/// A group of anomalous windows that are abnormal in the same way.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pattern {
    /// 1, 2, … by size; 0 for anomalous windows that fit no pattern.
    pub id: usize,
    pub description: String,
    /// Window starts, epoch seconds.
    pub windows: Vec<f64>,
    /// Windows overlapping a labeled incident, and those incidents' ids.
    pub in_incidents: usize,
    pub incidents: Vec<String>,
    pub deviations: Vec<Deviation>,
    /// The module where the leading deviation is strongest, with its ratio to
    /// that module's normal.
    pub module: Option<(String, f64)>,
}

/// Features that say the same thing in different ways.
fn family(feature: &str) -> String {
    match feature {
        "tail_ratio" | "lat_cv" => "latency-shape".into(),
        f => f.split('_').next().unwrap_or(f).to_string(),
    }
}

/// Median and robust scale (1.4826 × MAD; the standard deviation, then 1, when that is 0).
fn center_scale(v: &mut [f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 1.0);
    }
    let med = median(v);
    let mut dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
    let mad = 1.4826 * median(&mut dev);
    if mad > 0.0 {
        return (med, mad);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
    (med, if sd > 0.0 { sd } else { 1.0_f64.max(med.abs() * 1e-3) })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Robust z-scores of `rows` against `normal`, per feature.
struct Baseline {
    center: Vec<f64>,
    scale: Vec<f64>,
}

impl Baseline {
    fn fit(normal: &[&Window]) -> Baseline {
        let (mut center, mut scale) = (Vec::new(), Vec::new());
        for k in 0..Features::NAMES.len() {
            let mut v: Vec<f64> = normal.iter().map(|w| w.features.values()[k]).collect();
            let (c, s) = center_scale(&mut v);
            center.push(c);
            scale.push(s);
        }
        Baseline { center, scale }
    }

    fn z(&self, k: usize, x: f64) -> f64 {
        (x - self.center[k]) / self.scale[k]
    }
}

fn fmt_value(feature: &str, v: f64) -> String {
    match feature {
        f if f.starts_with("lat_") && f != "lat_cv" || f == "wait_mean" || f == "lag_mean" => {
            if v.abs() >= 1.0 {
                format!("{v:.2} s")
            } else {
                format!("{:.1} ms", v * 1e3)
            }
        }
        "error_rate" => format!("{:.1}%", v * 100.0),
        "mem_median" | "mem_peak" | "mem_std" => format!("{:.1} MB", v / 1e6),
        "mem_slope" => format!("{:.1} kB/s", v / 1e3),
        _ => format!("{v:.2}"),
    }
}

/// "p99 latency ×4.1" or "error rate 12.0% (normally 0.5%)".
pub fn describe(d: &Deviation) -> String {
    let label = feature_label(&d.feature);
    let ratio_ok = d.normal > 0.0 && d.value >= 0.0 && !matches!(d.feature.as_str(), "error_rate" | "mem_slope");
    if ratio_ok {
        format!("{label} ×{:.1}", d.value / d.normal)
    } else {
        format!("{label} {} (normally {})", fmt_value(&d.feature, d.value), fmt_value(&d.feature, d.normal))
    }
}

/// Groups `anomalous` windows of one service. `normal` are the service's
/// windows judged normal (the baseline); `modules` are per-module windows of
/// the same service and length (module name, its windows), used to say where.
pub fn find_patterns(
    anomalous: &[&LabeledWindow],
    normal: &[&Window],
    modules: &[(String, Vec<Window>)],
    p: &PatternParams,
) -> Vec<Pattern> {
    if anomalous.is_empty() {
        return Vec::new();
    }
    let base = Baseline::fit(normal);
    let d = USED.len();
    let mut x = Array2::<f64>::zeros((anomalous.len(), d));
    for (r, lw) in anomalous.iter().enumerate() {
        let v = lw.window.features.values();
        for (c, &k) in USED.iter().enumerate() {
            let z = base.z(k, v[k]);
            x[[r, c]] = z.signum() * z.abs().ln_1p();
        }
    }
    let labels: Vec<Option<usize>> = if p.min_points >= 2 && anomalous.len() >= p.min_points {
        let eps = radius(&x, p.min_points);
        // min_points ≥ 2 and eps > 0 here, the only things DBSCAN's guard checks.
        match Dbscan::params(p.min_points).tolerance(eps).transform(&x) {
            Ok(l) => l.to_vec(),
            Err(_) => vec![None; anomalous.len()],
        }
    } else {
        vec![None; anomalous.len()]
    };
    let clusters = labels.iter().flatten().max().map_or(0, |m| m + 1);
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); clusters];
    let mut noise = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        match l {
            Some(c) => groups[*c].push(i),
            None => noise.push(i),
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    let mut out: Vec<Pattern> =
        groups.iter().enumerate().map(|(k, g)| pattern(k + 1, g, anomalous, &base, modules, p)).collect();
    if !noise.is_empty() {
        let mut q = pattern(0, &noise, anomalous, &base, modules, p);
        q.description = format!("{} anomalous window(s) that fit no pattern", noise.len());
        out.push(q);
    }
    out
}

/// DBSCAN radius: the median over points of the distance to their
/// `k`-th nearest neighbour (k-distance heuristic), at least a small floor.
fn radius(x: &Array2<f64>, k: usize) -> f64 {
    let n = x.nrows();
    let mut kd = Vec::with_capacity(n);
    for i in 0..n {
        let mut ds: Vec<f64> = (0..n)
            .filter(|&j| j != i)
            .map(|j| x.row(i).iter().zip(x.row(j)).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt())
            .collect();
        ds.sort_by(f64::total_cmp);
        kd.push(ds[(k.saturating_sub(1)).min(ds.len() - 1)]);
    }
    median(&mut kd).max(1e-6)
}

fn pattern(
    id: usize,
    members: &[usize],
    anomalous: &[&LabeledWindow],
    base: &Baseline,
    modules: &[(String, Vec<Window>)],
    p: &PatternParams,
) -> Pattern {
    let ws: Vec<&LabeledWindow> = members.iter().map(|&i| anomalous[i]).collect();
    let mut devs: Vec<Deviation> = USED
        .iter()
        .map(|&k| {
            let mut v: Vec<f64> = ws.iter().map(|w| w.window.features.values()[k]).collect();
            let value = median(&mut v);
            Deviation { feature: Features::NAMES[k].into(), value, normal: base.center[k], z: base.z(k, value) }
        })
        .collect();
    devs.sort_by(|a, b| b.z.abs().total_cmp(&a.z.abs()));
    let error_z = devs.iter().find(|d| d.feature == "error_rate").map_or(0.0, |d| d.z);
    // One feature per family: "error rate" says what "longest error run" would repeat.
    let mut families = Vec::new();
    let mut top: Vec<Deviation> = devs
        .into_iter()
        .filter(|d| d.z.abs() >= p.z_abnormal)
        .filter(|d| {
            let f = family(&d.feature);
            let new = !families.contains(&f);
            families.push(f);
            new
        })
        .take(p.max_features)
        .collect();
    // The leading deviation of the most specific kind: a module's latency
    // or wait says more than the service's.
    let module = top.first().and_then(|lead| strongest_module(&lead.feature, &ws, modules));
    let mut text = if top.is_empty() {
        "no single feature far from normal (a combination is unusual)".to_string()
    } else {
        top.iter().map(describe).collect::<Vec<_>>().join(" and ")
    };
    if let Some((m, _)) = &module {
        text += &format!(" in module `{}`", crate::domain::module_label(m));
    }
    if !top.iter().any(|d| d.feature.starts_with("error")) && error_z.abs() < p.z_abnormal {
        text += ", errors normal";
    }
    let mut incidents: Vec<String> = ws.iter().filter_map(|w| w.incident.clone()).collect();
    incidents.sort();
    incidents.dedup();
    top.shrink_to_fit();
    Pattern {
        id,
        description: text,
        windows: ws.iter().map(|w| w.window.start).collect(),
        in_incidents: ws.iter().filter(|w| w.incident.is_some()).count(),
        incidents,
        deviations: top,
        module,
    }
}

/// The module whose `feature` departs most from its own normal (median
/// ratio over the pattern's windows), when there are several modules.
fn strongest_module(feature: &str, ws: &[&LabeledWindow], modules: &[(String, Vec<Window>)]) -> Option<(String, f64)> {
    let k = Features::NAMES.iter().position(|n| *n == feature)?;
    if modules.len() < 2 {
        return None;
    }
    let starts: Vec<f64> = ws.iter().map(|w| w.window.start).collect();
    let mut best: Option<(String, f64)> = None;
    for (name, mws) in modules {
        let mut normal: Vec<f64> =
            mws.iter().filter(|w| !starts.contains(&w.start)).map(|w| w.features.values()[k]).collect();
        let mut during: Vec<f64> =
            mws.iter().filter(|w| starts.contains(&w.start)).map(|w| w.features.values()[k]).collect();
        if normal.is_empty() || during.is_empty() {
            continue;
        }
        let (n, d) = (median(&mut normal), median(&mut during));
        if n <= 0.0 {
            continue;
        }
        let ratio = d / n;
        if best.as_ref().is_none_or(|b| ratio > b.1) {
            best = Some((name.clone(), ratio));
        }
    }
    best.filter(|b| b.1 > 1.0)
}

/// A service's windows scored by a window detector, with its patterns.
#[derive(Debug, Clone, Serialize)]
pub struct ServicePatterns {
    pub service: String,
    pub seconds: f64,
    /// (window start, detector score, flagged), in time order, scorable windows only.
    pub scores: Vec<(f64, f64, bool)>,
    pub patterns: Vec<Pattern>,
    /// How the windows were scored: the model file's kind and version, or
    /// "trained on these windows".
    pub detector: String,
}

/// Scores a service's windows in `[from, to)` with `model` (or, without one,
/// an extended isolation forest trained on those windows with `forest`),
/// and groups the flagged ones into patterns.
#[allow(clippy::too_many_arguments)]
pub fn service_patterns(
    store: &dyn crate::store::Store,
    service: &str,
    seconds: f64,
    from: Option<f64>,
    to: Option<f64>,
    model: Option<&super::model::DetectorModel>,
    forest: &super::iforest::IsolationForestParams,
    p: &PatternParams,
) -> Result<ServicePatterns, PatternError> {
    let ws: Vec<LabeledWindow> =
        store.windows(service, None, seconds, from, to)?.into_iter().filter(|w| !w.window.too_small).collect();
    if ws.len() < 2 {
        return Err(PatternError::Data(format!(
            "fewer than two scorable {} windows for '{service}'",
            crate::timefmt::format_duration(seconds)
        )));
    }
    let refs: Vec<&Window> = ws.iter().map(|w| &w.window).collect();
    let x = super::model::window_features(&refs);
    let trained;
    let (m, detector) = match model {
        Some(m) => (m, format!("{} (saved model, trained on {} rows)", m.kind, m.rows)),
        None => {
            let range = (refs[0].start, refs[refs.len() - 1].start + seconds);
            let params = super::model::DetectorParams {
                forest: super::iforest::IsolationForestParams { extended: true, ..forest.clone() },
                level: super::model::Level::Window,
                service: service.into(),
                window_seconds: Some(seconds),
                features: Features::NAMES.iter().map(|s| s.to_string()).collect(),
                range,
            };
            trained = super::Fit::fit(&params.check()?, &x)?;
            (&trained, format!("{} trained on these {} windows", trained.kind, ws.len()))
        }
    };
    let s = m.score(&x);
    let scores: Vec<(f64, f64, bool)> = refs.iter().zip(&s).map(|(w, &v)| (w.start, v, m.flag(v))).collect();
    let anomalous: Vec<&LabeledWindow> = ws.iter().zip(&scores).filter(|(_, s)| s.2).map(|(w, _)| w).collect();
    let normal: Vec<&Window> = ws.iter().zip(&scores).filter(|(_, s)| !s.2).map(|(w, _)| &w.window).collect();
    let mut modules = Vec::new();
    for name in store.window_modules(service, seconds)? {
        let mw: Vec<Window> = store
            .windows(service, Some(&name), seconds, from, to)?
            .into_iter()
            .map(|w| w.window)
            .filter(|w| !w.too_small)
            .collect();
        modules.push((name, mw));
    }
    Ok(ServicePatterns {
        service: service.into(),
        seconds,
        patterns: find_patterns(&anomalous, &normal, &modules, p),
        scores,
        detector,
    })
}

/// Why patterns could not be found.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Forest(#[from] super::iforest::ForestError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn win(start: f64, f: Features, incident: Option<&str>) -> LabeledWindow {
        LabeledWindow {
            window: Window {
                traces: 100,
                pss: 90.0,
                sub: crate::domain::SubScores::from_array([1.0; 5]),
                ..Window::unscored("s", start, 60.0, f)
            },
            incident: incident.map(str::to_string),
        }
    }

    #[test]
    fn two_kinds_of_anomaly_become_two_described_patterns() {
        let normal_f = |k: usize| Features {
            lat_p99: 0.1 + 0.001 * (k % 7) as f64,
            lat_p50: 0.05 + 0.0005 * (k % 5) as f64,
            error_rate: 0.01 + 0.001 * (k % 3) as f64,
            wait_cv: 0.5 + 0.01 * (k % 4) as f64,
            rows: 100.0 + (k % 9) as f64,
            ..Features::default()
        };
        let normal: Vec<LabeledWindow> = (0..200).map(|k| win(k as f64 * 60.0, normal_f(k), None)).collect();
        let mut anomalous = Vec::new();
        for k in 0..6 {
            let mut f = normal_f(k);
            f.lat_p99 *= 4.0 + 0.05 * k as f64;
            f.wait_cv *= 3.0;
            anomalous.push(win(1e5 + k as f64 * 60.0, f, Some("inc-1")));
        }
        for k in 0..5 {
            let mut f = normal_f(k);
            f.error_rate = 0.3 + 0.01 * k as f64;
            anomalous.push(win(2e5 + k as f64 * 60.0, f, None));
        }
        let nrefs: Vec<&Window> = normal.iter().map(|w| &w.window).collect();
        let arefs: Vec<&LabeledWindow> = anomalous.iter().collect();
        let ps = find_patterns(&arefs, &nrefs, &[], &PatternParams::default());
        let real: Vec<&Pattern> = ps.iter().filter(|p| p.id > 0).collect();
        assert_eq!(real.len(), 2, "{ps:#?}");
        assert_eq!(real[0].windows.len(), 6);
        assert!(real[0].description.contains("p99 latency ×4"), "{}", real[0].description);
        assert!(real[0].description.contains("wait-time CV ×3"), "{}", real[0].description);
        assert!(real[0].description.ends_with("errors normal"), "{}", real[0].description);
        assert_eq!((real[0].in_incidents, real[0].incidents.clone()), (6, vec!["inc-1".to_string()]));
        assert!(real[1].description.contains("error rate 3"), "{}", real[1].description);
        assert_eq!(real[1].in_incidents, 0);
    }
}
