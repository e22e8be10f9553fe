//! Custom metrics: pypss's plugin system in pss. A custom metric scores a
//! set of traces 0–1; each adds `weight × score` to the PSS and its weight to
//! the total, and appears in the breakdown under its code, as pypss 1.3.1's
//! `compute_pss_from_traces` does with its `MetricRegistry`.
//!
//! Three kinds, one trait ([`CustomMetric`]): pypss's seven built-ins
//! (`IO`, `DB`, `GC`, `CACHE`, `STARVE`, `NET`, `KAFKA`; formulas from
//! `pypss/plugins/metrics.py`), declared metrics from `[[pss.metrics]]`
//! ([`DeclaredMetric`]), and a library user's own implementation.
//!
//! Where pypss's built-ins raise and score 0.0 (`DB`, `NET` and `CACHE` on a
//! trace whose `branch_tag`, `name` or `module` is null), pss computes what
//! the metric intends: a missing text is empty. The README lists this.

use std::sync::Arc;

use regex::Regex;

use crate::config::metric_spec::{CheckedSpec, Field, Statistic, Target};
use crate::config::{Config, ScoreParams};
use crate::pystats::{self, ExactSums};
use crate::trace::{Stage, TraceColumns, NONE};

/// A metric that scores a set of traces from 0 (unstable) to 1 (stable).
pub trait CustomMetric: Send + Sync + std::fmt::Debug {
    /// The breakdown key (`IO`).
    fn code(&self) -> &str;
    /// A name for people (`I/O Stability`).
    fn name(&self) -> &str;
    /// The weight when `custom_metric_weights` names none.
    fn default_weight(&self) -> f64;
    /// What the metric measures on `traces`: a score, or a statistic that
    /// pypss's `alpha` or `gamma` decays into one (so a stored window's score
    /// follows when the tuner moves them). Clamped to 0–1 by the caller.
    fn measure(&self, traces: &MetricInput<'_>) -> Measured;
}

/// A custom metric's measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measured {
    /// A score that no scoring parameter changes.
    Score(f64),
    /// `exp(-rate × statistic)`, pypss's `exponential_decay_score`, with the
    /// rate a tuned parameter.
    Decay(Decay),
}

pub use crate::domain::{Decay, Rate};

/// A decayed statistic's score under parameters `p`, clamped to 0–1 (NaN is 0).
pub fn decay_score(d: &Decay, p: &ScoreParams) -> f64 {
    let rate = match d.rate {
        Rate::Alpha => p.alpha,
        Rate::Gamma => p.gamma,
    };
    clamped(decay(d.statistic, rate))
}

impl Measured {
    /// The score under parameters `p`, clamped to 0–1 (NaN is 0).
    pub fn score(&self, p: &ScoreParams) -> f64 {
        match self {
            Measured::Score(s) => clamped(*s),
            Measured::Decay(d) => decay_score(d, p),
        }
    }

    /// The statistic and rate, when a parameter decays it.
    pub fn decay(&self) -> Option<Decay> {
        match self {
            Measured::Score(_) => None,
            Measured::Decay(d) => Some(*d),
        }
    }
}

fn clamped(s: f64) -> f64 {
    if s.is_nan() {
        0.0
    } else {
        s.clamp(0.0, 1.0)
    }
}

/// A metric with the weight it carries in the PSS.
#[derive(Debug, Clone)]
pub struct Weighted {
    pub metric: Arc<dyn CustomMetric>,
    pub weight: f64,
}

/// The custom metrics in force, and the two sensitivities pypss's built-ins
/// read from its configuration.
#[derive(Debug, Clone)]
pub struct CustomMetrics {
    pub metrics: Vec<Weighted>,
    /// `thread_starvation_sensitivity` (pypss's default 100).
    pub thread_starvation_sensitivity: f64,
    /// pypss reads `kafka_lag_sensitivity` with a default of 1.0 and has no
    /// key for it; pss's key sets it.
    pub kafka_lag_sensitivity: f64,
}

impl Default for CustomMetrics {
    fn default() -> Self {
        CustomMetrics { metrics: Vec::new(), thread_starvation_sensitivity: 100.0, kafka_lag_sensitivity: 1.0 }
    }
}

/// Equal when the same codes carry the same weights and sensitivities.
impl PartialEq for CustomMetrics {
    fn eq(&self, o: &Self) -> bool {
        self.metrics.len() == o.metrics.len()
            && self
                .metrics
                .iter()
                .zip(&o.metrics)
                .all(|(a, b)| a.metric.code() == b.metric.code() && a.weight == b.weight)
            && self.thread_starvation_sensitivity == o.thread_starvation_sensitivity
            && self.kafka_lag_sensitivity == o.kafka_lag_sensitivity
    }
}

impl CustomMetrics {
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// The same metrics at the weights `p` gives them (`custom_metric_weights`),
    /// each keeping its own where `p` names none.
    pub fn weighted_by(mut self, p: &ScoreParams) -> CustomMetrics {
        for w in &mut self.metrics {
            w.weight = p.custom_weight(w.metric.code()).unwrap_or(w.weight);
        }
        self
    }

    /// The metrics a configuration names (`plugins`, `[[pss.metrics]]`, at
    /// the weights `custom_metric_weights` gives), with the `plugins` entries
    /// that name no metric pss has (a Python module of the user's own: pss
    /// cannot run it).
    pub fn from_config(cfg: &Config) -> (CustomMetrics, Vec<String>) {
        let c = &cfg.custom;
        let declared = c
            .declared
            .iter()
            .map(|spec| DeclaredMetric::new(spec.check().expect("checked when the configuration was loaded")))
            .collect();
        let (metrics, unresolved) = resolve(&c.plugins, &cfg.score, declared);
        let m = CustomMetrics {
            metrics,
            thread_starvation_sensitivity: c.thread_starvation_sensitivity,
            kafka_lag_sensitivity: c.kafka_lag_sensitivity,
        };
        (m, unresolved)
    }
}

/// One custom metric's result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CustomScore {
    pub code: String,
    pub name: String,
    /// Clamped to 0–1, before rounding.
    pub score: f64,
    pub weight: f64,
    /// The statistic behind the score when `alpha` or `gamma` decays it.
    #[serde(skip)]
    pub decay: Option<Decay>,
}

impl CustomScore {
    /// Rounded to two decimals, as the breakdown shows it.
    pub fn rounded(&self) -> f64 {
        pystats::py_round2(self.score)
    }
}

/// Scores every metric on the selection.
pub(crate) fn score_all(
    c: &TraceColumns,
    rows: Option<&[u32]>,
    sys: Option<&[u32]>,
    p: &ScoreParams,
    custom: &CustomMetrics,
) -> Vec<CustomScore> {
    let input = MetricInput { c, rows, sys, custom };
    custom
        .metrics
        .iter()
        .map(|w| {
            let m = w.metric.measure(&input);
            CustomScore {
                code: w.metric.code().to_string(),
                name: w.metric.name().to_string(),
                score: m.score(p),
                weight: w.weight,
                decay: m.decay(),
            }
        })
        .collect()
}

/// The traces a metric scores: the regular traces (rows) and the system
/// traces of a selection.
pub struct MetricInput<'a> {
    c: &'a TraceColumns,
    rows: Option<&'a [u32]>,
    sys: Option<&'a [u32]>,
    custom: &'a CustomMetrics,
}

/// One regular trace as a metric sees it. Readings a trace lacks (or that
/// pypss's conversion stopped before) are 0, as in pypss's loop.
#[derive(Debug, Clone, Copy)]
pub struct TraceRow<'a> {
    pub name: &'a str,
    pub module: &'a str,
    /// The branch tag, "" when none.
    pub branch_tag: &'a str,
    pub duration: f64,
    pub wait_time: f64,
    pub memory: f64,
    /// `memory_diff` (0 when absent or when not kept).
    pub memory_diff: f64,
    pub error: bool,
}

/// One system trace: its `lag` and its other numeric metadata.
#[derive(Debug, Clone, Copy)]
pub struct SystemRow<'a> {
    pub module: &'a str,
    pub lag: Option<f64>,
    metadata: &'a [(Box<str>, f64)],
}

impl SystemRow<'_> {
    /// A numeric `metadata` member (`lag` included).
    pub fn metadata(&self, key: &str) -> Option<f64> {
        if key == "lag" {
            return self.lag;
        }
        self.metadata.iter().find(|(k, _)| k.as_ref() == key).map(|(_, v)| *v)
    }
}

impl<'a> MetricInput<'a> {
    /// The sensitivities of the metrics in force (`thread_starvation_sensitivity`, …).
    pub fn settings(&self) -> &CustomMetrics {
        self.custom
    }

    /// The regular traces, in input order.
    pub fn rows(&self) -> impl Iterator<Item = TraceRow<'a>> + '_ {
        let c = self.c;
        let n = self.rows.map_or(c.len(), <[u32]>::len);
        (0..n).map(move |k| {
            let i = self.rows.map_or(k, |r| r[k] as usize);
            let text = |ids: &[u32], names: &'a crate::trace::Interner| match ids.get(i) {
                Some(&id) if id != NONE => names.get(id),
                _ => "",
            };
            let st = c.stage[i];
            TraceRow {
                name: text(&c.name, &c.names),
                module: text(&c.module, &c.modules),
                branch_tag: text(&c.branch_tag, &c.tags),
                duration: if st >= Stage::Duration { c.duration[i] } else { 0.0 },
                memory: if st >= Stage::Memory { c.memory[i] } else { 0.0 },
                wait_time: if st == Stage::Complete { c.wait_time[i] } else { 0.0 },
                memory_diff: c.memory_diff.get(i).copied().unwrap_or(0.0),
                error: c.error[i],
            }
        })
    }

    /// The system traces, in input order.
    pub fn system(&self) -> impl Iterator<Item = SystemRow<'a>> + '_ {
        let c = self.c;
        let n = self.sys.map_or(c.sys_module.len(), <[u32]>::len);
        (0..n).map(move |k| {
            let i = self.sys.map_or(k, |r| r[k] as usize);
            SystemRow {
                module: c.modules.get(c.sys_module[i]),
                lag: c.sys_lag[i].map(|l| l.as_f64()),
                metadata: c.sys_meta.get(i).map_or(&[], Vec::as_slice),
            }
        })
    }
}

/// pypss's `exponential_decay_score`.
fn decay(metric: f64, sensitivity: f64) -> f64 {
    (-sensitivity * metric).exp()
}

/// pypss's `statistics.mean`, exact.
fn mean(xs: &[f64]) -> f64 {
    ExactSums::of(xs, false).mean().unwrap_or(0.0)
}

/// pypss's seven built-in metrics, by code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Io,
    Db,
    Gc,
    Cache,
    Starve,
    Net,
    Kafka,
}

const DB_KEYWORDS: &str = "(?i)db|sql|mongo|redis|query|database|orm|execute|fetch|commit|rollback|write";
const NET_KEYWORDS: &str =
    "(?i)http|https|request|fetch|api|get|post|put|delete|patch|connect|send|recv|socket|url|endpoint|remote";

impl Builtin {
    pub const ALL: [Builtin; 7] =
        [Builtin::Io, Builtin::Db, Builtin::Gc, Builtin::Cache, Builtin::Starve, Builtin::Net, Builtin::Kafka];

    /// (code, pypss's class name, name, default weight).
    fn facts(self) -> (&'static str, &'static str, &'static str, f64) {
        match self {
            Builtin::Io => ("IO", "IOStabilityMetric", "I/O Stability", 0.15),
            Builtin::Db => ("DB", "DBStabilityMetric", "Database Stability", 0.2),
            Builtin::Gc => ("GC", "GCStabilityMetric", "GC Stability", 0.1),
            Builtin::Cache => ("CACHE", "CacheStabilityMetric", "Cache Stability", 0.15),
            Builtin::Starve => ("STARVE", "ThreadStarvationMetric", "Thread Starvation", 0.1),
            Builtin::Net => ("NET", "NetworkStabilityMetric", "Network Jitter Stability", 0.15),
            Builtin::Kafka => ("KAFKA", "KafkaLagStabilityMetric", "Kafka Lag Stability", 0.15),
        }
    }

    /// The built-in a `plugins` entry names: its code (`IO`, any case), its
    /// pypss class name, or that class's dotted path
    /// (`pypss.plugins.metrics.IOStabilityMetric`).
    pub fn named(entry: &str) -> Option<Builtin> {
        let last = entry.rsplit('.').next().unwrap_or(entry);
        Builtin::ALL.into_iter().find(|b| {
            let (code, class, _, _) = b.facts();
            entry.eq_ignore_ascii_case(code) || last == class
        })
    }

    /// The metric.
    pub fn metric(self) -> Arc<dyn CustomMetric> {
        let pattern = match self {
            Builtin::Db => Some(DB_KEYWORDS),
            Builtin::Net => Some(NET_KEYWORDS),
            _ => None,
        };
        Arc::new(BuiltinMetric { which: self, pattern: pattern.map(|p| Regex::new(p).expect("a fixed pattern")) })
    }
}

#[derive(Debug)]
struct BuiltinMetric {
    which: Builtin,
    pattern: Option<Regex>,
}

impl CustomMetric for BuiltinMetric {
    fn code(&self) -> &str {
        self.which.facts().0
    }
    fn name(&self) -> &str {
        self.which.facts().2
    }
    fn default_weight(&self) -> f64 {
        self.which.facts().3
    }

    fn measure(&self, t: &MetricInput<'_>) -> Measured {
        let decayed = |statistic, rate| Measured::Decay(Decay { statistic, rate });
        let fixed = |statistic, sensitivity| Measured::Score(decay(statistic, sensitivity));
        match self.which {
            Builtin::Io => {
                let ratios: Vec<f64> = t
                    .rows()
                    .filter(|r| r.duration > 0.0001)
                    .map(|r| (r.wait_time / r.duration).clamp(0.0, 1.0))
                    .collect();
                if ratios.len() < 2 {
                    return Measured::Score(1.0);
                }
                decayed(super::cv(&ratios), Rate::Alpha)
            }
            Builtin::Db | Builtin::Net => {
                let re = self.pattern.as_ref().expect("DB and NET have a pattern");
                let durations: Vec<f64> = t
                    .rows()
                    .filter(|r| re.is_match(r.name) || re.is_match(r.module) || re.is_match(r.branch_tag))
                    .map(|r| r.duration)
                    .filter(|d| *d > 0.0)
                    .collect();
                if durations.len() < 2 {
                    return Measured::Score(1.0);
                }
                decayed(super::cv(&durations), Rate::Alpha)
            }
            Builtin::Gc => {
                let pauses: Vec<f64> =
                    t.system().filter_map(|s| s.metadata("gc_pause_duration")).filter(|v| *v > 0.0).collect();
                let freed: Vec<f64> = t.rows().map(|r| r.memory_diff).filter(|d| *d <= -100.0).map(f64::abs).collect();
                let cv = if pauses.len() >= 2 {
                    super::cv(&pauses)
                } else if freed.len() >= 2 {
                    super::cv(&freed)
                } else {
                    return Measured::Score(1.0);
                };
                decayed(cv, Rate::Gamma)
            }
            Builtin::Cache => {
                let (mut hits, mut misses) = (0u64, 0u64);
                for r in t.rows() {
                    let tag = r.branch_tag.to_lowercase();
                    if tag.contains("cache_hit") {
                        hits += 1;
                    } else if tag.contains("cache_miss") {
                        misses += 1;
                    }
                }
                if hits + misses == 0 {
                    return Measured::Score(1.0);
                }
                Measured::Score(hits as f64 / (hits + misses) as f64)
            }
            Builtin::Starve => {
                let lags: Vec<f64> = t.system().filter_map(|s| s.lag).filter(|l| *l > 0.0).collect();
                if lags.len() < 2 {
                    return Measured::Score(1.0);
                }
                fixed(mean(&lags), t.settings().thread_starvation_sensitivity)
            }
            Builtin::Kafka => {
                let lags: Vec<f64> = t.system().filter_map(|s| s.metadata("kafka_lag")).collect();
                if lags.len() < 2 {
                    return Measured::Score(1.0);
                }
                fixed(mean(&lags) / 100.0, t.settings().kafka_lag_sensitivity)
            }
        }
    }
}

/// A metric declared in configuration (`[[pss.metrics]]`), from its checked spec.
#[derive(Debug)]
pub struct DeclaredMetric(CheckedSpec);

impl DeclaredMetric {
    pub fn new(spec: CheckedSpec) -> Self {
        DeclaredMetric(spec)
    }

    fn selects(&self, r: &TraceRow<'_>) -> bool {
        let s = &self.0;
        s.patterns.is_empty()
            || s.patterns.iter().any(|(re, t)| {
                re.is_match(match t {
                    Target::Name => r.name,
                    Target::Module => r.module,
                    Target::BranchTag => r.branch_tag,
                })
            })
    }
}

impl CustomMetric for DeclaredMetric {
    fn code(&self) -> &str {
        &self.0.code
    }
    fn name(&self) -> &str {
        &self.0.name
    }
    fn default_weight(&self) -> f64 {
        self.0.weight
    }

    fn measure(&self, t: &MetricInput<'_>) -> Measured {
        let s = &self.0;
        let mut failed = 0u64;
        let values: Vec<f64> = match &s.metadata {
            Some(key) => t.system().filter_map(|s| s.metadata(key)).collect(),
            None => t
                .rows()
                .filter(|r| self.selects(r))
                .map(|r| {
                    failed += u64::from(r.error);
                    match s.field {
                        Field::Duration => r.duration,
                        Field::WaitTime => r.wait_time,
                        Field::Memory => r.memory,
                        Field::MemoryDiff => r.memory_diff,
                    }
                })
                .collect(),
        };
        let stat = match s.statistic {
            Statistic::Rate if !values.is_empty() => failed as f64 / values.len() as f64,
            _ if values.len() < 2 => return Measured::Score(1.0),
            Statistic::Cv => super::cv(&values),
            Statistic::Mean => mean(&values),
            Statistic::P95Ratio => {
                let mut w = values.clone();
                match pystats::percentiles(&mut w, &[49, 94]) {
                    Some(q) if q[0] > 0.0 => (q[1] / q[0] - 1.0).max(0.0),
                    _ => 0.0,
                }
            }
            Statistic::Rate => 0.0,
        };
        // A declared metric's sensitivity is its own, not a tuned parameter.
        Measured::Score(decay(stat, s.sensitivity))
    }
}

/// The metrics `plugins` and `[[pss.metrics]]` configure, at the weights
/// `p`'s `custom_metric_weights` give them, with the `plugins` entries pss
/// could not resolve (a Python module of the user's own, or an unknown code).
pub fn resolve(plugins: &[String], p: &ScoreParams, declared: Vec<DeclaredMetric>) -> (Vec<Weighted>, Vec<String>) {
    let mut out: Vec<Weighted> = Vec::new();
    let mut unresolved = Vec::new();
    let mut push = |m: Arc<dyn CustomMetric>, default: f64| {
        let w = Weighted { weight: p.custom_weight(m.code()).unwrap_or(default), metric: m };
        // A later registration of a code replaces the earlier (a dict by code in pypss).
        match out.iter().position(|x| x.metric.code() == w.metric.code()) {
            Some(i) => out[i] = w,
            None => out.push(w),
        }
    };
    for p in plugins {
        match Builtin::named(p) {
            Some(b) => {
                let m = b.metric();
                let d = m.default_weight();
                push(m, d);
            }
            None => unresolved.push(p.clone()),
        }
    }
    for d in declared {
        let w = d.default_weight();
        push(Arc::new(d), w);
    }
    (out, unresolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::metric_spec::MetricSpec;
    use crate::trace::read_bytes;

    fn cols(json: &str) -> TraceColumns {
        let mut c = TraceColumns::with_options(
            "unknown",
            crate::trace::ColumnOptions { timestamps: true, names: true, memory_diff: true },
        );
        read_bytes("t", json.as_bytes(), &mut c).unwrap();
        c
    }

    fn metrics(plugins: &[&str], declared: Vec<DeclaredMetric>) -> CustomMetrics {
        let (metrics, bad) =
            resolve(&plugins.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &ScoreParams::default(), declared);
        assert!(bad.is_empty());
        CustomMetrics { metrics, ..CustomMetrics::default() }
    }

    fn score(c: &TraceColumns, m: &CustomMetrics) -> crate::score::Score {
        crate::score::score_with(c, crate::score::Selection::All, &ScoreParams::default(), m)
    }

    #[test]
    fn plugins_are_named_by_code_class_or_path_and_unknown_ones_reported() {
        assert_eq!(Builtin::named("io"), Some(Builtin::Io));
        assert_eq!(Builtin::named("pypss.plugins.metrics.KafkaLagStabilityMetric"), Some(Builtin::Kafka));
        assert_eq!(Builtin::named("CacheStabilityMetric"), Some(Builtin::Cache));
        let (m, bad) = resolve(
            &["DB".into(), "my_pkg.metrics".into()],
            &ScoreParams { custom_weights: vec![("DB".into(), 0.5)], ..ScoreParams::default() },
            vec![],
        );
        assert_eq!((m.len(), m[0].weight), (1, 0.5));
        assert_eq!(bad, vec!["my_pkg.metrics".to_string()]);
    }

    #[test]
    fn cache_hit_ratio_and_null_tags_are_empty() {
        let c = cols(
            r#"[{"duration":1,"branch_tag":"cache_hit"},{"duration":1,"branch_tag":"CACHE_MISS"},
            {"duration":1,"branch_tag":null},{"duration":1,"branch_tag":"cache_hit:x"}]"#,
        );
        let s = score(&c, &metrics(&["CACHE"], vec![]));
        assert_eq!(s.custom[0].code, "CACHE");
        approx::assert_abs_diff_eq!(s.custom[0].score, 2.0 / 3.0);
        assert_eq!(s.custom[0].rounded(), 0.67);
    }

    #[test]
    fn system_metadata_feeds_kafka_and_gc() {
        let c = cols(
            r#"[{"system_metric":true,"metadata":{"kafka_lag":100,"gc_pause_duration":0.01}},
            {"system_metric":true,"metadata":{"kafka_lag":300,"gc_pause_duration":0.03}},{"duration":0.1}]"#,
        );
        let s = score(&c, &metrics(&["KAFKA", "GC"], vec![]));
        approx::assert_abs_diff_eq!(s.custom[0].score, (-2.0f64).exp(), epsilon = 1e-12);
        let cv = super::super::cv(&[0.01, 0.03]);
        approx::assert_abs_diff_eq!(s.custom[1].score, (-2.0 * cv).exp(), epsilon = 1e-12);
    }

    #[test]
    fn declared_metrics_are_checked_and_score() {
        let spec = |statistic: &str| MetricSpec {
            code: "PAY".into(),
            name: None,
            name_pattern: Some("^pay".into()),
            module_pattern: None,
            branch_tag_pattern: None,
            metadata: None,
            field: None,
            statistic: statistic.into(),
            sensitivity: 1.0,
            weight: 0.2,
        };
        assert_eq!(
            MetricSpec { name_pattern: Some("(".into()), ..spec("cv") }.check().unwrap_err().field,
            "name_pattern"
        );
        assert_eq!(spec("median").check().unwrap_err().field, "statistic");
        assert_eq!(MetricSpec { weight: -1.0, ..spec("cv") }.check().unwrap_err().field, "weight");
        let c = cols(
            r#"[{"name":"pay_card","duration":1.0,"error":true},{"name":"pay_card","duration":3.0},
            {"name":"browse","duration":100.0}]"#,
        );
        let s = score(&c, &metrics(&[], vec![DeclaredMetric::new(spec("rate").check().unwrap())]));
        approx::assert_abs_diff_eq!(s.custom[0].score, (-0.5f64).exp());
        let s = score(&c, &metrics(&[], vec![DeclaredMetric::new(spec("cv").check().unwrap())]));
        approx::assert_abs_diff_eq!(s.custom[0].score, (-super::super::cv(&[1.0, 3.0])).exp());
        // The PSS takes the metric's weight: (Σ w·s + 0.2·s_pay) / (1 + 0.2).
        let five = crate::score::score(&c, crate::score::Selection::All, &ScoreParams::default());
        approx::assert_abs_diff_eq!(s.pss_raw, (five.pss_raw + 0.2 * s.custom[0].score) / 1.2, epsilon = 1e-12);
    }
}
