//! Configuration with pypss 1.3.1's key names and defaults, read from
//! pypss's own files unchanged: `pypss.toml` (`[pypss]`), `pyproject.toml`
//! (`[tool.pypss]`), and pss's `pss.toml` (`[pss]`). Nested tables are
//! flattened as pypss does (`[pypss.alert] threshold_ts` is `alert_threshold_ts`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::domain::SubScores;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid TOML: {msg}")]
    Toml { path: String, msg: String },
    #[error("{path}: no [pss], [pypss] or [tool.pypss] table")]
    NoTable { path: String },
    #[error("{path}: key `{key}`: {msg}")]
    Invalid { path: String, key: String, msg: String },
}

/// The type pypss gives a key.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Float,
    Int,
    /// An int or a float (pypss only compares or adds it).
    Number,
    Str,
    Bool,
    List,
    Dict,
}

/// Every key of pypss 1.3.1's `PSSConfig`, plus pss's own, with its type.
const KEYS: &[(&str, Kind)] = &[
    ("sample_rate", Kind::Float),
    ("max_traces", Kind::Int),
    ("w_ts", Kind::Float),
    ("w_ms", Kind::Float),
    ("w_ev", Kind::Float),
    ("w_be", Kind::Float),
    ("w_cc", Kind::Float),
    ("custom_metric_weights", Kind::Dict),
    ("alpha", Kind::Float),
    ("beta", Kind::Float),
    ("gamma", Kind::Float),
    ("mem_spike_threshold_ratio", Kind::Float),
    ("delta", Kind::Float),
    ("error_spike_threshold", Kind::Float),
    ("consecutive_error_threshold", Kind::Number),
    ("concurrency_wait_threshold", Kind::Float),
    ("discovery_ignore_dirs", Kind::List),
    ("ui_theme_primary", Kind::Str),
    ("ui_theme_secondary", Kind::Str),
    ("ui_theme_accent", Kind::Str),
    ("ui_theme_positive", Kind::Str),
    ("ui_theme_negative", Kind::Str),
    ("ui_theme_info", Kind::Str),
    ("ui_theme_warning", Kind::Str),
    ("ui_port", Kind::Int),
    ("ui_title", Kind::Str),
    ("dashboard_critical_pss_threshold", Kind::Float),
    ("dashboard_warning_error_rate", Kind::Float),
    ("background_dump_interval", Kind::Int),
    ("background_archive_dir", Kind::Str),
    ("default_trace_file", Kind::Str),
    ("default_html_report_title", Kind::Str),
    ("score_latency_tail_percentile", Kind::Int),
    ("score_memory_epsilon", Kind::Float),
    ("score_error_vmr_multiplier", Kind::Float),
    ("score_error_spike_impact_multiplier", Kind::Float),
    ("score_consecutive_error_decay_multiplier", Kind::Float),
    ("collector_max_traces_sharding_threshold", Kind::Int),
    ("collector_shard_count", Kind::Int),
    ("adaptive_sampler_min_interval", Kind::Float),
    ("adaptive_sampler_lag_threshold", Kind::Float),
    ("adaptive_sampler_churn_threshold", Kind::Float),
    ("adaptive_sampler_error_threshold", Kind::Float),
    ("adaptive_sampler_increase_step", Kind::Float),
    ("adaptive_sampler_decrease_step", Kind::Float),
    ("adaptive_sampler_max_rate", Kind::Float),
    ("adaptive_sampler_min_rate", Kind::Float),
    ("adaptive_sampler_mode", Kind::Str),
    ("adaptive_sampler_high_qps_threshold", Kind::Float),
    ("adaptive_sampler_low_noise_sample_rate", Kind::Float),
    ("thread_starvation_sensitivity", Kind::Float),
    ("plugins", Kind::List),
    ("error_sample_rate", Kind::Float),
    ("context_sampling_rules", Kind::List),
    ("advisor_threshold_excellent", Kind::Number),
    ("advisor_threshold_good", Kind::Number),
    ("advisor_threshold_warning", Kind::Number),
    ("advisor_metric_score_critical", Kind::Float),
    ("advisor_metric_score_warning", Kind::Float),
    ("advisor_error_critical", Kind::Float),
    ("advisor_error_warning", Kind::Float),
    ("advisor_entropy_threshold", Kind::Float),
    ("header_pss_latency", Kind::Str),
    ("header_pss_wait", Kind::Str),
    ("integration_celery_trace_prefix", Kind::Str),
    ("integration_flask_trace_prefix", Kind::Str),
    ("integration_flask_header_latency", Kind::Str),
    ("integration_flask_header_wait", Kind::Str),
    ("integration_rq_trace_prefix", Kind::Str),
    ("integration_pytest_trace_prefix", Kind::Str),
    ("integration_otel_metric_prefix", Kind::Str),
    ("integration_otel_meter_name", Kind::Str),
    ("integration_otel_meter_version", Kind::Str),
    ("discovery_file_extension", Kind::Str),
    ("discovery_ignore_modules", Kind::List),
    ("discovery_ignore_funcs_prefix", Kind::Str),
    ("discovery_unknown_module_name", Kind::Str),
    ("llm_openai_model", Kind::Str),
    ("llm_ollama_url", Kind::Str),
    ("llm_ollama_model", Kind::Str),
    ("llm_max_tokens", Kind::Int),
    ("alerts_enabled", Kind::Bool),
    ("alerts_slack_webhook", Kind::Str),
    ("alerts_teams_webhook", Kind::Str),
    ("alerts_generic_webhook", Kind::Str),
    ("alerts_alertmanager_url", Kind::Str),
    ("alerts_cooldown_seconds", Kind::Int),
    ("custom_alert_rules", Kind::List),
    ("alert_threshold_ts", Kind::Float),
    ("alert_threshold_ms", Kind::Float),
    ("alert_threshold_ev", Kind::Float),
    ("alert_threshold_be", Kind::Float),
    ("alert_threshold_cc", Kind::Float),
    ("dashboard_layout", Kind::List),
    ("storage_backend", Kind::Str),
    ("storage_uri", Kind::Str),
    ("regression_threshold_drop", Kind::Float),
    ("regression_history_limit", Kind::Int),
    // pss's own keys.
    ("alert_threshold_pss", Kind::Float),
    ("window", Kind::Str),
    ("min_window_traces", Kind::Int),
    ("retention", Kind::Str),
    ("window_seconds", Kind::Number),
    ("llm_base_url", Kind::Str),
    ("llm_timeout_seconds", Kind::Number),
    ("llm_prompt_budget_chars", Kind::Int),
];

/// The parameters of the five sub-scores and the PSS (pypss's names).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreParams {
    pub w_ts: f64,
    pub w_ms: f64,
    pub w_ev: f64,
    pub w_be: f64,
    pub w_cc: f64,
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
    pub mem_spike_threshold_ratio: f64,
    pub delta: f64,
    pub error_spike_threshold: f64,
    pub consecutive_error_threshold: f64,
    pub concurrency_wait_threshold: f64,
    /// Index into `statistics.quantiles(n=100)`: 94 is the 95th percentile.
    pub score_latency_tail_percentile: usize,
    pub score_memory_epsilon: f64,
    pub score_error_vmr_multiplier: f64,
    pub score_error_spike_impact_multiplier: f64,
    pub score_consecutive_error_decay_multiplier: f64,
}

impl ScoreParams {
    /// The weights `w_ts` … `w_cc`, one per sub-score.
    pub fn weights(&self) -> SubScores {
        SubScores::from_array([self.w_ts, self.w_ms, self.w_ev, self.w_be, self.w_cc])
    }
}

impl Default for ScoreParams {
    fn default() -> Self {
        ScoreParams {
            w_ts: 0.30,
            w_ms: 0.20,
            w_ev: 0.20,
            w_be: 0.15,
            w_cc: 0.15,
            alpha: 2.0,
            beta: 1.0,
            gamma: 2.0,
            mem_spike_threshold_ratio: 1.5,
            delta: 1.0,
            error_spike_threshold: 0.1,
            consecutive_error_threshold: 3.0,
            concurrency_wait_threshold: 0.001,
            score_latency_tail_percentile: 94,
            score_memory_epsilon: 1e-9,
            score_error_vmr_multiplier: 0.5,
            score_error_spike_impact_multiplier: 0.5,
            score_consecutive_error_decay_multiplier: 2.0,
        }
    }
}

/// Thresholds of pypss's `StabilityAdvisor`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvisorParams {
    pub threshold_excellent: f64,
    pub threshold_good: f64,
    pub threshold_warning: f64,
    pub metric_score_critical: f64,
    pub metric_score_warning: f64,
    pub error_critical: f64,
    pub error_warning: f64,
    pub entropy_threshold: f64,
}

impl Default for AdvisorParams {
    fn default() -> Self {
        AdvisorParams {
            threshold_excellent: 90.0,
            threshold_good: 75.0,
            threshold_warning: 50.0,
            metric_score_critical: 0.6,
            metric_score_warning: 0.85,
            error_critical: 0.7,
            error_warning: 0.9,
            entropy_threshold: 0.8,
        }
    }
}

/// Alarm thresholds: a window alarms when PSS < `pss` or a sub-score is
/// below its threshold (`alert_threshold_ts` …; 0 disables that rule).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertParams {
    pub pss: f64,
    pub sub: SubScores,
}

impl Default for AlertParams {
    fn default() -> Self {
        AlertParams { pss: 60.0, sub: SubScores::from_array([0.70, 0.70, 0.80, 0.70, 0.70]) }
    }
}

/// A loaded configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub score: ScoreParams,
    pub advisor: AdvisorParams,
    pub alert: AlertParams,
    /// Module name for traces without one (`discovery_unknown_module_name`).
    pub unknown_module: String,
    /// Window length in seconds (pss's `window`, default 60 s).
    pub window_seconds: f64,
    /// The configuration set the window length (`window` or `window_seconds`);
    /// when it did not, commands that read windows use the length the history
    /// holds, if it holds one.
    pub window_configured: bool,
    /// Windows with fewer traces are too small to score (pss's `min_window_traces`).
    pub min_window_traces: u64,
    /// Automatic prune: `pss ingest` deletes traces and windows older than
    /// this many seconds (pss's `retention`, e.g. "90d"; off by default).
    pub retention_seconds: Option<f64>,
    /// pypss plugin modules named in the config (pss cannot load Python plugins).
    pub plugins: Vec<String>,
    /// Bounds for `pss-tune`, from `[pss.tune_bounds]` (`alpha = [0.01, 5.0]`).
    pub tune_bounds: Vec<(String, f64, f64)>,
    /// Every other pypss key that was set, kept as read.
    #[serde(skip)]
    pub other: BTreeMap<String, toml::Value>,
    /// Where the configuration came from (`defaults` or a path).
    pub source: String,
    /// Keys that were not recognised (warned about, not fatal).
    #[serde(skip)]
    pub unknown_keys: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            score: ScoreParams::default(),
            advisor: AdvisorParams::default(),
            alert: AlertParams::default(),
            unknown_module: "unknown".into(),
            window_seconds: 60.0,
            window_configured: false,
            min_window_traces: 10,
            retention_seconds: None,
            tune_bounds: Vec::new(),
            plugins: Vec::new(),
            other: BTreeMap::new(),
            source: "defaults".into(),
            unknown_keys: Vec::new(),
        }
    }
}

impl Config {
    fn other_str(&self, key: &str, default: &str) -> String {
        self.other.get(key).and_then(|v| v.as_str()).unwrap_or(default).to_string()
    }

    fn other_f64(&self, key: &str, default: f64) -> f64 {
        self.other.get(key).and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64))).unwrap_or(default)
    }

    /// pypss's `regression_threshold_drop` (default 10 points).
    pub fn regression_threshold_drop(&self) -> f64 {
        self.other_f64("regression_threshold_drop", 10.0)
    }

    /// pypss's `llm_openai_model` (default `gpt-4o`).
    pub fn llm_openai_model(&self) -> String {
        self.other_str("llm_openai_model", "gpt-4o")
    }

    /// pypss's `llm_ollama_url` (default `http://localhost:11434/api/generate`).
    pub fn llm_ollama_url(&self) -> String {
        self.other_str("llm_ollama_url", "http://localhost:11434/api/generate")
    }

    /// pypss's `llm_ollama_model` (default `llama3`).
    pub fn llm_ollama_model(&self) -> String {
        self.other_str("llm_ollama_model", "llama3")
    }

    /// pypss's `llm_max_tokens` (default 1000).
    pub fn llm_max_tokens(&self) -> u32 {
        self.other_f64("llm_max_tokens", 1000.0).clamp(1.0, 1e6) as u32
    }

    /// pss's `llm_base_url` for OpenAI-compatible APIs (default `https://api.openai.com/v1`).
    pub fn llm_base_url(&self) -> String {
        self.other_str("llm_base_url", "https://api.openai.com/v1")
    }

    /// pss's `llm_timeout_seconds` (default 60).
    pub fn llm_timeout_seconds(&self) -> f64 {
        self.other_f64("llm_timeout_seconds", 60.0).max(0.1)
    }

    /// pss's `llm_prompt_budget_chars` (default 12,000).
    pub fn llm_prompt_budget_chars(&self) -> usize {
        self.other_f64("llm_prompt_budget_chars", 12000.0).max(500.0) as usize
    }
}

/// Parses pypss's duration strings: `5s`, `2m`, `1.5h`, `1d`, `1w`.
pub fn parse_duration(s: &str) -> Option<f64> {
    let t = s.trim().to_ascii_lowercase();
    let unit = t.chars().last()?;
    let mult = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86400.0,
        'w' => 604800.0,
        _ => return None,
    };
    let num = &t[..t.len() - 1];
    // pypss: (\d+(?:\.\d+)?)
    let mut parts = num.splitn(2, '.');
    let int = parts.next()?;
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(frac) = parts.next() {
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    Some(num.parse::<f64>().ok()? * mult)
}

impl Config {
    /// Finds the configuration the way pypss does, in the current directory:
    /// `pss.toml`, else `pypss.toml`, else `pyproject.toml` with `[tool.pypss]`.
    /// `explicit` (`--config FILE`) wins over all of them.
    pub fn discover(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        if let Some(p) = explicit {
            return Config::from_file(p);
        }
        for name in ["pss.toml", "pypss.toml"] {
            let p = PathBuf::from(name);
            if p.is_file() {
                return Config::from_file(&p);
            }
        }
        let p = PathBuf::from("pyproject.toml");
        if p.is_file() {
            match Config::from_file(&p) {
                Err(ConfigError::NoTable { .. }) => {}
                other => return other,
            }
        }
        Ok(Config::default())
    }

    /// Loads a file holding `[pss]`, `[pypss]` or `[tool.pypss]` (later wins
    /// when several are present: `[tool.pypss]`, then `[pypss]`, then `[pss]`).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io { path: name.clone(), source: e })?;
        Config::from_toml_str(&text, &name)
    }

    /// Loads from TOML text; `name` is used in messages.
    pub fn from_toml_str(text: &str, name: &str) -> Result<Config, ConfigError> {
        let doc: toml::Table = toml::from_str(text)
            .map_err(|e| ConfigError::Toml { path: name.into(), msg: e.to_string().trim().into() })?;
        let mut tables = Vec::new();
        if let Some(t) = doc.get("tool").and_then(|t| t.get("pypss")) {
            tables.push(("[tool.pypss]", t));
        }
        if let Some(t) = doc.get("pypss") {
            tables.push(("[pypss]", t));
        }
        if let Some(t) = doc.get("pss") {
            tables.push(("[pss]", t));
        }
        if tables.is_empty() {
            return Err(ConfigError::NoTable { path: name.into() });
        }
        let mut flat = BTreeMap::new();
        for (tname, t) in tables {
            let Some(t) = t.as_table() else {
                return Err(ConfigError::Invalid {
                    path: name.into(),
                    key: tname.into(),
                    msg: "must be a table".into(),
                });
            };
            flatten(t, "", &mut flat);
        }
        let mut cfg = Config { source: name.to_string(), ..Config::default() };
        for (k, v) in flat {
            cfg.set(&k, v, name)?;
        }
        cfg.validate(name)?;
        Ok(cfg)
    }

    fn set(&mut self, key: &str, v: toml::Value, file: &str) -> Result<(), ConfigError> {
        if let Some(param) = key.strip_prefix("tune_bounds_") {
            let pair = v.as_array().and_then(|a| {
                let n = |x: &toml::Value| x.as_float().or_else(|| x.as_integer().map(|i| i as f64));
                match a.as_slice() {
                    [lo, hi] => Some((n(lo)?, n(hi)?)),
                    _ => None,
                }
            });
            let (lo, hi) = pair.ok_or_else(|| ConfigError::Invalid {
                path: file.into(),
                key: key.into(),
                msg: "expected [low, high]".into(),
            })?;
            self.tune_bounds.push((param.to_string(), lo, hi));
            return Ok(());
        }
        let Some(&(_, kind)) = KEYS.iter().find(|(k, _)| *k == key) else {
            self.unknown_keys.push(key.to_string());
            return Ok(());
        };
        let bad = |msg: String| ConfigError::Invalid { path: file.into(), key: key.into(), msg };
        let type_name = v.type_str();
        let num = match (&v, kind) {
            (toml::Value::Float(f), Kind::Float | Kind::Number) => Some(*f),
            (toml::Value::Integer(i), Kind::Float | Kind::Number | Kind::Int) => Some(*i as f64),
            (_, Kind::Float | Kind::Number) => return Err(bad(format!("expected a number, found {type_name}"))),
            (_, Kind::Int) => return Err(bad(format!("expected an integer, found {type_name}"))),
            (toml::Value::String(_), Kind::Str)
            | (toml::Value::Boolean(_), Kind::Bool)
            | (toml::Value::Array(_), Kind::List) => None,
            (_, Kind::Str) => return Err(bad(format!("expected a string, found {type_name}"))),
            (_, Kind::Bool) => return Err(bad(format!("expected true or false, found {type_name}"))),
            (_, Kind::List) => return Err(bad(format!("expected a list, found {type_name}"))),
            (_, Kind::Dict) => None,
        };
        if let Some(n) = num {
            if !n.is_finite() {
                return Err(bad(format!("must be a finite number, found {n}")));
            }
        }
        let s = &mut self.score;
        let a = &mut self.advisor;
        let n = num.unwrap_or(0.0);
        match key {
            "w_ts" => s.w_ts = n,
            "w_ms" => s.w_ms = n,
            "w_ev" => s.w_ev = n,
            "w_be" => s.w_be = n,
            "w_cc" => s.w_cc = n,
            "alpha" => s.alpha = n,
            "beta" => s.beta = n,
            "gamma" => s.gamma = n,
            "mem_spike_threshold_ratio" => s.mem_spike_threshold_ratio = n,
            "delta" => s.delta = n,
            "error_spike_threshold" => s.error_spike_threshold = n,
            "consecutive_error_threshold" => s.consecutive_error_threshold = n,
            "concurrency_wait_threshold" => s.concurrency_wait_threshold = n,
            "score_latency_tail_percentile" => {
                if !(0.0..=98.0).contains(&n) {
                    return Err(bad(format!(
                        "must be an index into the 99 percentiles, 0 to 98 (94 is the 95th percentile), found {n}"
                    )));
                }
                s.score_latency_tail_percentile = n as usize
            }
            "score_memory_epsilon" => s.score_memory_epsilon = n,
            "score_error_vmr_multiplier" => s.score_error_vmr_multiplier = n,
            "score_error_spike_impact_multiplier" => s.score_error_spike_impact_multiplier = n,
            "score_consecutive_error_decay_multiplier" => s.score_consecutive_error_decay_multiplier = n,
            "advisor_threshold_excellent" => a.threshold_excellent = n,
            "advisor_threshold_good" => a.threshold_good = n,
            "advisor_threshold_warning" => a.threshold_warning = n,
            "advisor_metric_score_critical" => a.metric_score_critical = n,
            "advisor_metric_score_warning" => a.metric_score_warning = n,
            "advisor_error_critical" => a.error_critical = n,
            "advisor_error_warning" => a.error_warning = n,
            "advisor_entropy_threshold" => a.entropy_threshold = n,
            "alert_threshold_ts" => self.alert.sub.timing_stability = n,
            "alert_threshold_ms" => self.alert.sub.memory_stability = n,
            "alert_threshold_ev" => self.alert.sub.error_volatility = n,
            "alert_threshold_be" => self.alert.sub.branching_entropy = n,
            "alert_threshold_cc" => self.alert.sub.concurrency_chaos = n,
            "alert_threshold_pss" | "dashboard_critical_pss_threshold" => {
                if key == "alert_threshold_pss" || !self.other.contains_key("alert_threshold_pss") {
                    self.alert.pss = n;
                }
                self.other.insert(key.to_string(), v);
            }
            "discovery_unknown_module_name" => self.unknown_module = v.as_str().unwrap_or_default().to_string(),
            "window" => {
                let text = v.as_str().unwrap_or_default();
                self.window_seconds = parse_duration(text)
                    .filter(|w| *w > 0.0)
                    .ok_or_else(|| bad(format!("expected a duration like '60s', '5m', '1.5h', found '{text}'")))?;
                self.window_configured = true;
            }
            "retention" => {
                let text = v.as_str().unwrap_or_default();
                self.retention_seconds = match text.trim() {
                    "" | "none" | "off" => None,
                    t => Some(
                        parse_duration(t)
                            .filter(|w| *w > 0.0)
                            .ok_or_else(|| bad(format!("expected a duration like '90d' or 'none', found '{text}'")))?,
                    ),
                };
            }
            "window_seconds" => {
                if n <= 0.0 {
                    return Err(bad(format!("must be positive, found {n}")));
                }
                self.window_seconds = n;
                self.window_configured = true;
            }
            "min_window_traces" => {
                if n < 0.0 {
                    return Err(bad("must not be negative".into()));
                }
                self.min_window_traces = n as u64
            }
            "plugins" => {
                self.plugins = v
                    .as_array()
                    .map(|a| {
                        a.iter().map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())).collect()
                    })
                    .unwrap_or_default()
            }
            _ => {
                self.other.insert(key.to_string(), v);
            }
        }
        Ok(())
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let s = &self.score;
        let bad = |key: &str, msg: &str| ConfigError::Invalid { path: file.into(), key: key.into(), msg: msg.into() };
        for (k, w) in [("w_ts", s.w_ts), ("w_ms", s.w_ms), ("w_ev", s.w_ev), ("w_be", s.w_be), ("w_cc", s.w_cc)] {
            if w < 0.0 {
                return Err(bad(k, &format!("weights must not be negative, found {w}")));
            }
        }
        if s.w_ts + s.w_ms + s.w_ev + s.w_be + s.w_cc <= 0.0 {
            return Err(bad("w_ts", "the five weights (w_ts, w_ms, w_ev, w_be, w_cc) are all zero"));
        }
        if s.score_memory_epsilon < 0.0 {
            return Err(bad("score_memory_epsilon", "must not be negative"));
        }
        if s.error_spike_threshold >= 1.0 {
            return Err(bad("error_spike_threshold", "must be below 1 (pypss divides by 1 - error_spike_threshold)"));
        }
        Ok(())
    }
}

fn flatten(t: &toml::Table, prefix: &str, out: &mut BTreeMap<String, toml::Value>) {
    for (k, v) in t {
        let full = format!("{prefix}{k}");
        match v {
            toml::Value::Table(sub) => flatten(sub, &format!("{full}_"), out),
            other => {
                out.insert(full, other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pypss_tables_and_flattens() {
        let c = Config::from_toml_str("[pypss]\nalpha = 3\n[pypss.alert]\nthreshold_ts = 0.5\n", "pypss.toml").unwrap();
        assert_eq!(c.score.alpha, 3.0);
        assert_eq!(c.alert.sub.timing_stability, 0.5);
        let c = Config::from_toml_str("[tool.pypss]\nw_ts = 0.5\nbogus = 1\n", "pyproject.toml").unwrap();
        assert_eq!(c.score.w_ts, 0.5);
        assert_eq!(c.unknown_keys, vec!["bogus".to_string()]);
    }

    #[test]
    fn invalid_values_name_key_and_file() {
        for (text, key) in [
            ("[pss]\nw_ts = -1\n", "w_ts"),
            ("[pss]\nalpha = \"2\"\n", "alpha"),
            ("[pss]\nscore_latency_tail_percentile = 99\n", "score_latency_tail_percentile"),
            ("[pss]\nw_ts = 0\nw_ms = 0\nw_ev = 0\nw_be = 0\nw_cc = 0\n", "w_ts"),
            ("[pss]\nwindow = \"10 minutes\"\n", "window"),
        ] {
            let e = Config::from_toml_str(text, "x.toml").unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("x.toml"), "{e}");
        }
        assert!(matches!(Config::from_toml_str("[other]\n", "x.toml"), Err(ConfigError::NoTable { .. })));
        assert!(matches!(Config::from_toml_str("[pss\n", "x.toml"), Err(ConfigError::Toml { .. })));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Some(5.0));
        assert_eq!(parse_duration("1.5h"), Some(5400.0));
        assert_eq!(parse_duration("2M"), Some(120.0));
        assert_eq!(parse_duration("1.s"), None);
        assert_eq!(parse_duration("s"), None);
    }
}
