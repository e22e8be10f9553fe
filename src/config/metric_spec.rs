//! Declared custom metrics (`[[pss.metrics]]`): the specification as
//! written, and its check (linfa's `check`: patterns compile, one kind of
//! filter, a known field and statistic, finite non-negative numbers). The
//! metric that scores traces from a checked spec is `score::custom`'s.

use regex::Regex;

/// A metric declared in configuration (`[[pss.metrics]]`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// The breakdown key (`PAY`).
    pub code: String,
    /// A name for people (default: the code).
    pub name: Option<String>,
    /// Traces whose name matches this regular expression (any of name,
    /// module and branch tag matching selects a trace).
    pub name_pattern: Option<String>,
    pub module_pattern: Option<String>,
    pub branch_tag_pattern: Option<String>,
    /// System traces with this numeric `metadata` member (its value is the field).
    pub metadata: Option<String>,
    /// `duration` (default), `wait_time`, `memory` or `memory_diff` for regular traces.
    pub field: Option<String>,
    /// `cv`, `p95_ratio`, `mean` or `rate`.
    pub statistic: String,
    /// The decay's sensitivity: score = exp(−sensitivity × statistic).
    pub sensitivity: f64,
    /// The weight in the PSS.
    pub weight: f64,
}

/// Why a declared metric is not usable, naming its field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("metric '{code}': {field}: {message}")]
pub struct SpecError {
    pub code: String,
    pub field: &'static str,
    pub message: String,
}

/// What a declared metric measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    /// Coefficient of variation of the field.
    Cv,
    /// 95th over 50th percentile of the field, minus one.
    P95Ratio,
    /// Mean of the field.
    Mean,
    /// Share of the selected traces that failed.
    Rate,
}

/// Which reading of a regular trace a declared metric measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Duration,
    WaitTime,
    Memory,
    MemoryDiff,
}

/// Which text of a trace a pattern is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Name,
    Module,
    BranchTag,
}

/// A declared metric, checked: its patterns compiled.
#[derive(Debug, Clone)]
pub struct CheckedSpec {
    pub code: String,
    pub name: String,
    pub patterns: Vec<(Regex, Target)>,
    pub metadata: Option<String>,
    pub field: Field,
    pub statistic: Statistic,
    pub sensitivity: f64,
    pub weight: f64,
}

impl MetricSpec {
    /// Checks the spec (linfa's `check`): patterns compile, one kind of
    /// filter, a known field and statistic, finite non-negative numbers.
    pub fn check(&self) -> Result<CheckedSpec, SpecError> {
        let err = |field: &'static str, message: String| SpecError { code: self.code.clone(), field, message };
        if self.code.trim().is_empty() {
            return Err(err("code", "must not be empty".into()));
        }
        let mut patterns: Vec<(Regex, Target)> = Vec::new();
        for (field, p, get) in [
            ("name_pattern", &self.name_pattern, Target::Name),
            ("module_pattern", &self.module_pattern, Target::Module),
            ("branch_tag_pattern", &self.branch_tag_pattern, Target::BranchTag),
        ] {
            if let Some(p) = p {
                patterns.push((Regex::new(p).map_err(|e| err(field, e.to_string()))?, get));
            }
        }
        if self.metadata.is_some() && !patterns.is_empty() {
            return Err(err("metadata", "a metric reads system metadata or filters regular traces, not both".into()));
        }
        let field = match self.field.as_deref() {
            None | Some("duration") => Field::Duration,
            Some("wait_time") => Field::WaitTime,
            Some("memory") => Field::Memory,
            Some("memory_diff") => Field::MemoryDiff,
            Some(other) => {
                return Err(err("field", format!("'{other}': expected duration, wait_time, memory or memory_diff")))
            }
        };
        let statistic = match self.statistic.as_str() {
            "cv" => Statistic::Cv,
            "p95_ratio" => Statistic::P95Ratio,
            "mean" => Statistic::Mean,
            "rate" => Statistic::Rate,
            other => return Err(err("statistic", format!("'{other}': expected cv, p95_ratio, mean or rate"))),
        };
        if statistic == Statistic::Rate && self.metadata.is_some() {
            return Err(err("statistic", "rate counts failed regular traces; system metadata has none".into()));
        }
        for (f, v) in [("sensitivity", self.sensitivity), ("weight", self.weight)] {
            if !v.is_finite() || v < 0.0 {
                return Err(err(f, format!("must be a finite number of at least 0, found {v}")));
            }
        }
        Ok(CheckedSpec {
            code: self.code.clone(),
            name: self.name.clone().unwrap_or_else(|| self.code.clone()),
            patterns,
            metadata: self.metadata.clone(),
            field,
            statistic,
            sensitivity: self.sensitivity,
            weight: self.weight,
        })
    }
}
