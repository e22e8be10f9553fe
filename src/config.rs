//! Configuration with pypss 1.3.1's key names and defaults, read from
//! pypss's own files unchanged: `pypss.toml` (`[pypss]`), `pyproject.toml`
//! (`[tool.pypss]`), and pss's `pss.toml` (`[pss]`). Nested tables are
//! flattened as pypss does (`[pypss.alert] threshold_ts` is `alert_threshold_ts`).
//!
//! Each group of keys is a struct deriving `Deserialize` from the flattened
//! table ([`ScoreParams`], [`AdvisorParams`], [`PssKeys`], [`PypssKeys`]):
//! its fields are the keys and their types, written once; an error names
//! the key (through `serde_path_to_error`) and the file; a key no group
//! reads is kept in `unknown_keys` for a warning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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

/// pss's own keys, and the pypss keys pss acts on outside the score (all
/// optional: unset means pypss's or pss's default, applied where read).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PssKeys {
    /// Window length, a duration (`60s`, `5m`).
    pub window: Option<String>,
    /// Window length in seconds (an alternative to `window`).
    pub window_seconds: Option<f64>,
    pub min_window_traces: Option<i64>,
    /// Automatic prune on ingest (`90d`, or `none`).
    pub retention: Option<String>,
    pub alert_threshold_pss: Option<f64>,
    pub dashboard_critical_pss_threshold: Option<f64>,
    pub alert_threshold_ts: Option<f64>,
    pub alert_threshold_ms: Option<f64>,
    pub alert_threshold_ev: Option<f64>,
    pub alert_threshold_be: Option<f64>,
    pub alert_threshold_cc: Option<f64>,
    pub discovery_unknown_module_name: Option<String>,
    pub plugins: Option<Vec<toml::Value>>,
    /// Declared custom metrics (`[[pss.metrics]]`).
    pub metrics: Option<Vec<metric_spec::MetricSpec>>,
    /// The `KAFKA` metric's sensitivity (pypss reads it with a default of 1.0 and has no key).
    pub kafka_lag_sensitivity: Option<f64>,
    pub storage_uri: Option<String>,
    pub regression_threshold_drop: Option<f64>,
    pub regression_history_limit: Option<i64>,
    pub llm_openai_model: Option<String>,
    pub llm_ollama_url: Option<String>,
    pub llm_ollama_model: Option<String>,
    pub llm_max_tokens: Option<i64>,
    pub llm_base_url: Option<String>,
    pub llm_timeout_seconds: Option<f64>,
    pub llm_prompt_budget_chars: Option<i64>,
    /// Over all attempts of the LLM call, in seconds (default 90).
    pub llm_deadline_seconds: Option<f64>,
    /// Diagnosis reads source files only under this directory.
    pub source_root: Option<String>,
    /// Source extensions diagnosis reads, without the dot (default `["py"]`).
    pub source_extensions: Option<Vec<String>>,
    /// Larger source files are not read (default 1 MiB).
    pub source_max_bytes: Option<i64>,
    /// The alarm policy (`[pss.alarm]`): the module windows' PSS threshold.
    pub alarm_module_pss: Option<f64>,
    /// Fire when `fire_after` of the last `fire_window` windows alarm.
    pub alarm_fire_after: Option<i64>,
    pub alarm_fire_window: Option<i64>,
    /// Resolve after this many clean windows in a row.
    pub alarm_resolve_after: Option<i64>,
    /// Pool too-small windows over up to this many windows (0: off).
    pub alarm_pool_max_windows: Option<i64>,
    /// The window detector rule: alarm when a window's score reaches this
    /// quantile of the service's promoted detector's training scores.
    pub alarm_detector_quantile: Option<f64>,
    /// Whether the PSS and sub-score thresholds page (default true).
    pub alarm_score_rules: Option<bool>,
}

/// The rest of pypss 1.3.1's `PSSConfig` keys: accepted, type-checked and
/// kept as read; pss does not act on them (yet).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PypssKeys {
    pub sample_rate: Option<f64>,
    pub max_traces: Option<i64>,
    pub custom_metric_weights: Option<toml::Table>,
    pub discovery_ignore_dirs: Option<Vec<toml::Value>>,
    pub ui_theme_primary: Option<String>,
    pub ui_theme_secondary: Option<String>,
    pub ui_theme_accent: Option<String>,
    pub ui_theme_positive: Option<String>,
    pub ui_theme_negative: Option<String>,
    pub ui_theme_info: Option<String>,
    pub ui_theme_warning: Option<String>,
    pub ui_port: Option<i64>,
    pub ui_title: Option<String>,
    pub dashboard_warning_error_rate: Option<f64>,
    pub background_dump_interval: Option<i64>,
    pub background_archive_dir: Option<String>,
    pub default_trace_file: Option<String>,
    pub default_html_report_title: Option<String>,
    pub collector_max_traces_sharding_threshold: Option<i64>,
    pub collector_shard_count: Option<i64>,
    pub adaptive_sampler_min_interval: Option<f64>,
    pub adaptive_sampler_lag_threshold: Option<f64>,
    pub adaptive_sampler_churn_threshold: Option<f64>,
    pub adaptive_sampler_error_threshold: Option<f64>,
    pub adaptive_sampler_increase_step: Option<f64>,
    pub adaptive_sampler_decrease_step: Option<f64>,
    pub adaptive_sampler_max_rate: Option<f64>,
    pub adaptive_sampler_min_rate: Option<f64>,
    pub adaptive_sampler_mode: Option<String>,
    pub adaptive_sampler_high_qps_threshold: Option<f64>,
    pub adaptive_sampler_low_noise_sample_rate: Option<f64>,
    pub thread_starvation_sensitivity: Option<f64>,
    pub error_sample_rate: Option<f64>,
    pub context_sampling_rules: Option<Vec<toml::Value>>,
    pub header_pss_latency: Option<String>,
    pub header_pss_wait: Option<String>,
    pub integration_celery_trace_prefix: Option<String>,
    pub integration_flask_trace_prefix: Option<String>,
    pub integration_flask_header_latency: Option<String>,
    pub integration_flask_header_wait: Option<String>,
    pub integration_rq_trace_prefix: Option<String>,
    pub integration_pytest_trace_prefix: Option<String>,
    pub integration_otel_metric_prefix: Option<String>,
    pub integration_otel_meter_name: Option<String>,
    pub integration_otel_meter_version: Option<String>,
    pub discovery_file_extension: Option<String>,
    pub discovery_ignore_modules: Option<Vec<toml::Value>>,
    pub discovery_ignore_funcs_prefix: Option<String>,
    pub alerts_enabled: Option<bool>,
    pub alerts_slack_webhook: Option<String>,
    pub alerts_teams_webhook: Option<String>,
    pub alerts_generic_webhook: Option<String>,
    pub alerts_alertmanager_url: Option<String>,
    pub alerts_cooldown_seconds: Option<i64>,
    pub custom_alert_rules: Option<Vec<toml::Value>>,
    pub dashboard_layout: Option<Vec<toml::Value>>,
    pub storage_backend: Option<String>,
}

/// The parameters of the five sub-scores and the PSS (pypss's names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
    /// Custom metrics' weights (`custom_metric_weights`, code → weight) that
    /// rescoring a stored window uses instead of the weight it was stored
    /// with; pss-tune searches them with the five.
    #[serde(skip)]
    pub custom_weights: Vec<(String, f64)>,
}

impl ScoreParams {
    /// The weight of custom metric `code`, when one is set.
    pub fn custom_weight(&self, code: &str) -> Option<f64> {
        self.custom_weights.iter().rev().find(|(c, _)| c == code).map(|w| w.1)
    }

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
            custom_weights: Vec::new(),
        }
    }
}

/// Thresholds of pypss's `StabilityAdvisor` (keys `advisor_*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdvisorParams {
    #[serde(rename = "advisor_threshold_excellent")]
    pub threshold_excellent: f64,
    #[serde(rename = "advisor_threshold_good")]
    pub threshold_good: f64,
    #[serde(rename = "advisor_threshold_warning")]
    pub threshold_warning: f64,
    #[serde(rename = "advisor_metric_score_critical")]
    pub metric_score_critical: f64,
    #[serde(rename = "advisor_metric_score_warning")]
    pub metric_score_warning: f64,
    #[serde(rename = "advisor_error_critical")]
    pub error_critical: f64,
    #[serde(rename = "advisor_error_warning")]
    pub error_warning: f64,
    #[serde(rename = "advisor_entropy_threshold")]
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

pub mod metric_spec;

/// Custom metrics as configured: pypss's `plugins`, pss's `[[pss.metrics]]`
/// (checked when loaded); their `custom_metric_weights` are the score's
/// ([`ScoreParams::custom_weights`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomConfig {
    pub plugins: Vec<String>,
    pub declared: Vec<metric_spec::MetricSpec>,
    /// `thread_starvation_sensitivity` (pypss's default 100).
    pub thread_starvation_sensitivity: f64,
    /// pss's `kafka_lag_sensitivity` (pypss reads it with a default of 1.0 and has no key).
    pub kafka_lag_sensitivity: f64,
}

impl Default for CustomConfig {
    fn default() -> Self {
        CustomConfig {
            plugins: Vec::new(),
            declared: Vec::new(),
            thread_starvation_sensitivity: 100.0,
            kafka_lag_sensitivity: 1.0,
        }
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
    /// Custom metrics: `plugins`, `custom_metric_weights`, `[[pss.metrics]]`
    /// (resolved into metrics by `score::custom::CustomMetrics::from_config`).
    pub custom: CustomConfig,
    /// Bounds for `pss-tune`, from `[pss.tune_bounds]` (`alpha = [0.01, 5.0]`).
    pub tune_bounds: Vec<(String, f64, f64)>,
    /// pss's keys and the pypss keys read outside the score, as set.
    pub keys: PssKeys,
    /// pypss keys pss accepts and does not act on, as set.
    #[serde(skip)]
    pub pypss: PypssKeys,
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
            custom: CustomConfig::default(),
            keys: PssKeys::default(),
            pypss: PypssKeys::default(),
            source: "defaults".into(),
            unknown_keys: Vec::new(),
        }
    }
}

impl Config {
    /// pypss's `storage_backend = "prometheus"`: runs are pushed to the
    /// Pushgateway at `storage_uri` instead of stored in SQLite.
    pub fn pushes_to_prometheus(&self) -> bool {
        self.pypss.storage_backend.as_deref() == Some("prometheus")
    }

    /// pypss's `storage_uri` (default `pypss_history.db`).
    pub fn storage_uri(&self) -> String {
        self.keys.storage_uri.clone().unwrap_or_else(|| "pypss_history.db".into())
    }

    /// pypss's `regression_history_limit` (default 5, at least 1).
    pub fn regression_history_limit(&self) -> usize {
        self.keys.regression_history_limit.unwrap_or(5).max(1) as usize
    }

    /// pypss's `regression_threshold_drop` (default 10 points).
    pub fn regression_threshold_drop(&self) -> f64 {
        self.keys.regression_threshold_drop.unwrap_or(10.0)
    }

    /// pypss's `llm_openai_model` (default `gpt-4o`).
    pub fn llm_openai_model(&self) -> String {
        self.keys.llm_openai_model.clone().unwrap_or_else(|| "gpt-4o".into())
    }

    /// pypss's `llm_ollama_url` (default `http://localhost:11434/api/generate`).
    pub fn llm_ollama_url(&self) -> String {
        self.keys.llm_ollama_url.clone().unwrap_or_else(|| "http://localhost:11434/api/generate".into())
    }

    /// pypss's `llm_ollama_model` (default `llama3`).
    pub fn llm_ollama_model(&self) -> String {
        self.keys.llm_ollama_model.clone().unwrap_or_else(|| "llama3".into())
    }

    /// pypss's `llm_max_tokens` (default 1000).
    pub fn llm_max_tokens(&self) -> u32 {
        self.keys.llm_max_tokens.unwrap_or(1000).clamp(1, 1_000_000) as u32
    }

    /// pss's `llm_base_url` for OpenAI-compatible APIs (default `https://api.openai.com/v1`).
    pub fn llm_base_url(&self) -> String {
        self.keys.llm_base_url.clone().unwrap_or_else(|| "https://api.openai.com/v1".into())
    }

    /// pss's `llm_timeout_seconds` (default 60).
    pub fn llm_timeout_seconds(&self) -> f64 {
        self.keys.llm_timeout_seconds.unwrap_or(60.0).max(0.1)
    }

    /// pss's `llm_deadline_seconds`: no LLM attempt starts after it (default 90).
    pub fn llm_deadline_seconds(&self) -> f64 {
        self.keys.llm_deadline_seconds.unwrap_or(90.0).max(0.1)
    }

    /// pss's `llm_prompt_budget_chars` (default 12,000).
    pub fn llm_prompt_budget_chars(&self) -> usize {
        self.keys.llm_prompt_budget_chars.unwrap_or(12000).max(500) as usize
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
        let cfg = Config::from_flat(flat, name)?;
        cfg.validate(name)?;
        Ok(cfg)
    }

    /// Builds a configuration from the flattened keys of `file`.
    fn from_flat(mut flat: BTreeMap<String, toml::Value>, file: &str) -> Result<Config, ConfigError> {
        let bad = |key: &str, msg: String| ConfigError::Invalid { path: file.into(), key: key.into(), msg };
        let mut tune_bounds = Vec::new();
        for key in flat.keys().filter(|k| k.starts_with("tune_bounds_")).cloned().collect::<Vec<_>>() {
            let v = flat.remove(&key).unwrap_or(toml::Value::Boolean(false));
            let n = |x: &toml::Value| x.as_float().or_else(|| x.as_integer().map(|i| i as f64));
            let pair = v.as_array().and_then(|a| match a.as_slice() {
                [lo, hi] => Some((n(lo)?, n(hi)?)),
                _ => None,
            });
            let (lo, hi) = pair.ok_or_else(|| bad(&key, "expected [low, high]".into()))?;
            tune_bounds.push((key["tune_bounds_".len()..].to_string(), lo, hi));
        }
        // `custom_metric_weights` is a table of code → weight; pypss's own
        // flattening turns it into unknown keys (so pypss never honours it from
        // a file); pss reads it as the table it is.
        let mut custom_weights = Vec::new();
        for key in flat.keys().filter(|k| k.starts_with("custom_metric_weights_")).cloned().collect::<Vec<_>>() {
            let v = flat.remove(&key).unwrap_or(toml::Value::Boolean(false));
            let w = v
                .as_float()
                .or_else(|| v.as_integer().map(|i| i as f64))
                .filter(|w| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| bad(&key, format!("expected a weight of at least 0, found {v}")))?;
            custom_weights.push((key["custom_metric_weights_".len()..].to_string(), w));
        }
        for (k, v) in &flat {
            if let Some(f) = v.as_float().filter(|f| !f.is_finite()) {
                return Err(bad(k, format!("must be a finite number, found {f}")));
            }
        }
        let table: toml::Table = flat.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut score: ScoreParams = group(&table, file)?;
        let advisor: AdvisorParams = group(&table, file)?;
        let keys: PssKeys = group(&table, file)?;
        let pypss: PypssKeys = group(&table, file)?;
        let known: Vec<&str> = [
            field_names::<ScoreParams>(),
            field_names::<AdvisorParams>(),
            field_names::<PssKeys>(),
            field_names::<PypssKeys>(),
        ]
        .concat();
        let unknown_keys = flat.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
        if !(0..=98).contains(&score.score_latency_tail_percentile) {
            return Err(bad(
                "score_latency_tail_percentile",
                format!(
                    "must be an index into the 99 percentiles, 0 to 98 (94 is the 95th percentile), found {}",
                    score.score_latency_tail_percentile
                ),
            ));
        }
        let d = AlertParams::default();
        let k = &keys;
        let alert = AlertParams {
            // pss's own key wins over pypss's dashboard threshold.
            pss: k.alert_threshold_pss.or(k.dashboard_critical_pss_threshold).unwrap_or(d.pss),
            sub: SubScores::from_array([
                k.alert_threshold_ts.unwrap_or(d.sub.timing_stability),
                k.alert_threshold_ms.unwrap_or(d.sub.memory_stability),
                k.alert_threshold_ev.unwrap_or(d.sub.error_volatility),
                k.alert_threshold_be.unwrap_or(d.sub.branching_entropy),
                k.alert_threshold_cc.unwrap_or(d.sub.concurrency_chaos),
            ]),
        };
        let mut window_seconds = Config::default().window_seconds;
        if let Some(text) = &k.window {
            window_seconds = parse_duration(text).filter(|w| *w > 0.0).ok_or_else(|| {
                bad("window", format!("expected a duration like '60s', '5m', '1.5h', found '{text}'"))
            })?;
        }
        if let Some(n) = k.window_seconds {
            // Both set: `window_seconds` wins, as it always has.
            if n <= 0.0 {
                return Err(bad("window_seconds", format!("must be positive, found {n}")));
            }
            window_seconds = n;
        }
        let retention_seconds =
            match k.retention.as_deref().map(str::trim) {
                None | Some("" | "none" | "off") => None,
                Some(t) => Some(parse_duration(t).filter(|w| *w > 0.0).ok_or_else(|| {
                    bad("retention", format!("expected a duration like '90d' or 'none', found '{t}'"))
                })?),
            };
        let min_window_traces = match k.min_window_traces {
            Some(n) if n < 0 => return Err(bad("min_window_traces", "must not be negative".into())),
            Some(n) => n as u64,
            None => Config::default().min_window_traces,
        };
        let plugins: Vec<String> = k
            .plugins
            .iter()
            .flatten()
            .map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()))
            .collect();
        let mut declared = Vec::new();
        for (i, spec) in k.metrics.iter().flatten().enumerate() {
            spec.check().map_err(|e| bad(&format!("metrics[{i}].{}", e.field), e.to_string()))?;
            declared.push(spec.clone());
        }
        score.custom_weights = custom_weights;
        let custom = CustomConfig {
            plugins,
            declared,
            thread_starvation_sensitivity: pypss.thread_starvation_sensitivity.unwrap_or(100.0),
            kafka_lag_sensitivity: k.kafka_lag_sensitivity.unwrap_or(1.0),
        };
        Ok(Config {
            score,
            advisor,
            alert,
            unknown_module: k.discovery_unknown_module_name.clone().unwrap_or_else(|| Config::default().unknown_module),
            window_seconds,
            window_configured: k.window.is_some() || k.window_seconds.is_some(),
            min_window_traces,
            retention_seconds,
            custom,
            tune_bounds,
            keys,
            pypss,
            source: file.to_string(),
            unknown_keys,
        })
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
        if let Some(b) = self.pypss.storage_backend.as_deref().filter(|b| !matches!(*b, "sqlite" | "prometheus")) {
            return Err(bad("storage_backend", &format!("'{b}': expected \"sqlite\" or \"prometheus\"")));
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

/// One group of keys from the flattened table; an error names the key.
fn group<T: DeserializeOwned>(table: &toml::Table, file: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
        let key = e.path().to_string();
        let msg = e.inner().to_string();
        // serde speaks Rust types; say what the file should hold.
        let msg = msg
            .replace("expected f64", "expected a number")
            .replace("expected i64", "expected an integer")
            .replace("expected usize", "expected an integer of at least 0")
            .replace("expected a boolean", "expected true or false")
            .replace("expected a sequence", "expected a list");
        ConfigError::Invalid { path: file.into(), key, msg }
    })
}

/// The keys a struct deriving `Deserialize` reads: serde hands them to
/// `deserialize_struct`, so a deserializer that only records them and stops
/// finds them. serde has no public accessor; this is the known trick
/// (`serde_aux` has it too, with chrono and more attached), 20 lines here.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> de::Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
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
    fn every_pypss_key_is_read_by_one_group() {
        let groups = [
            field_names::<ScoreParams>(),
            field_names::<AdvisorParams>(),
            field_names::<PssKeys>(),
            field_names::<PypssKeys>(),
        ];
        let all: Vec<&str> = groups.concat();
        // pypss 1.3.1's PSSConfig has 98 keys; pss adds 21 of its own.
        assert_eq!(all.len(), 119, "{all:?}");
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len(), "a key read by two groups");
        assert!(all.contains(&"advisor_entropy_threshold") && all.contains(&"ui_port") && all.contains(&"w_ts"));
    }

    #[test]
    fn typed_errors_name_the_key_in_words_a_user_reads() {
        for (text, key, says) in [
            ("[pss]\nui_port = 8080.5\n", "ui_port", "expected an integer"),
            ("[pss]\nalerts_enabled = \"yes\"\n", "alerts_enabled", "expected true or false"),
            ("[pss]\nplugins = \"x\"\n", "plugins", "expected a list"),
            ("[pss]\nbeta = nan\n", "beta", "finite"),
            ("[pss]\nadvisor_error_warning = \"high\"\n", "advisor_error_warning", "expected a number"),
        ] {
            let e = Config::from_toml_str(text, "x.toml").unwrap_err().to_string();
            assert!(e.contains(&format!("key `{key}`")) && e.contains(says), "{e}");
        }
    }

    #[test]
    fn precedence_and_pss_keys() {
        let c = Config::from_toml_str("[pss]\ndashboard_critical_pss_threshold = 50\n", "x.toml").unwrap();
        assert_eq!(c.alert.pss, 50.0);
        let c =
            Config::from_toml_str("[pss]\ndashboard_critical_pss_threshold = 50\nalert_threshold_pss = 70\n", "x.toml")
                .unwrap();
        assert_eq!(c.alert.pss, 70.0, "pss's own key wins");
        let c = Config::from_toml_str("[pss]\nwindow = \"5m\"\nretention = \"none\"\n", "x.toml").unwrap();
        assert!(c.window_configured && c.window_seconds == 300.0 && c.retention_seconds.is_none());
        let c = Config::from_toml_str("[pss]\nllm_max_tokens = 50\n[pss.tune_bounds]\nalpha = [0.5, 3]\n", "x.toml")
            .unwrap();
        assert_eq!(c.llm_max_tokens(), 50);
        assert_eq!(c.tune_bounds, vec![("alpha".to_string(), 0.5, 3.0)]);
        assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
        assert_eq!(Config::default().llm_max_tokens(), 1000);
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
