//! Alerting as pypss 1.3.1 does it: its rules (the five sub-score rules,
//! the regression rule, `custom_alert_rules`) and its channels (Slack,
//! Teams, a generic webhook, Alertmanager) with its payloads — so a pypss
//! user who switches keeps every notification. Where pypss is wrong pss
//! does better (README): `alerts_cooldown_seconds` is honoured (pypss
//! hard-codes 3600 s) and the cooldown state lives in the history database,
//! not in a JSON file in the working directory.

pub mod channels;
pub mod outbox;
pub mod rules;

use serde::Serialize;

use crate::config::Config;

/// pypss's `AlertSeverity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    /// pypss's value (`info`, `warning`, `critical`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    fn parse(s: &str) -> Option<Severity> {
        match s {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// A number as pypss holds it: custom rules carry the integer 0, the others
/// floats — which JSON and `str()` spell differently (`0` vs `0.0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PyNum {
    Int(i64),
    Float(f64),
}

impl PyNum {
    pub fn as_f64(self) -> f64 {
        match self {
            PyNum::Int(i) => i as f64,
            PyNum::Float(f) => f,
        }
    }

    /// Python's `str()`.
    pub fn py_str(self) -> String {
        match self {
            PyNum::Int(i) => i.to_string(),
            PyNum::Float(f) => crate::pystats::py_repr(f),
        }
    }

    /// As `json.dumps` writes it.
    pub fn json(self) -> serde_json::Value {
        match self {
            PyNum::Int(i) => i.into(),
            PyNum::Float(f) => {
                serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
    }
}

/// pypss's `Alert`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub rule_name: String,
    pub severity: Severity,
    pub message: String,
    pub metric_name: String,
    pub current_value: PyNum,
    pub threshold: PyNum,
    /// Epoch seconds.
    pub timestamp: f64,
    /// The module a custom rule matched (pypss's `extra_data["module"]`).
    pub module: Option<String>,
}

impl Alert {
    /// pypss's cooldown key: the rule name, `:module` when there is one.
    pub fn dedup_key(&self) -> String {
        match &self.module {
            Some(m) => format!("{}:{m}", self.rule_name),
            None => self.rule_name.clone(),
        }
    }
}

/// Why the alert configuration is unusable: named key and file.
#[derive(Debug, thiserror::Error)]
#[error("{file}: key `{key}`: {msg}")]
pub struct AlertConfigError {
    pub file: String,
    pub key: String,
    pub msg: String,
}

/// The alerting part of a configuration, checked.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    pub enabled: bool,
    pub slack: Option<String>,
    pub teams: Option<String>,
    pub webhook: Option<String>,
    pub alertmanager: Option<String>,
    pub cooldown_seconds: f64,
    pub custom: Vec<rules::CustomRule>,
    /// The five sub-score thresholds (`alert_threshold_*`).
    pub thresholds: crate::domain::SubScores,
    pub regression_history_limit: usize,
    pub regression_threshold_drop: f64,
}

impl AlertConfig {
    /// Reads and checks pypss's `alerts_*` keys and `custom_alert_rules`: an
    /// unparseable URL, an unknown severity or operator is an error naming
    /// the key, not a silent no-op.
    pub fn from_config(cfg: &Config) -> Result<AlertConfig, AlertConfigError> {
        let p = &cfg.pypss;
        let bad = |key: &str, msg: String| AlertConfigError { file: cfg.source.clone(), key: key.into(), msg };
        let url = |key: &str, v: &Option<String>| -> Result<Option<String>, AlertConfigError> {
            match v.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(u) => match reqwest::Url::parse(u) {
                    Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(Some(u.to_string())),
                    // The URL is a secret: say what is wrong, not what it is.
                    _ => Err(bad(key, "not an http(s) URL".into())),
                },
            }
        };
        let custom = p
            .custom_alert_rules
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, v)| rules::CustomRule::parse(v).map_err(|m| bad(&format!("custom_alert_rules[{i}]"), m)))
            .collect::<Result<Vec<_>, _>>()?;
        let cooldown = p.alerts_cooldown_seconds.unwrap_or(3600);
        if cooldown < 0 {
            return Err(bad("alerts_cooldown_seconds", format!("must not be negative, found {cooldown}")));
        }
        Ok(AlertConfig {
            enabled: p.alerts_enabled.unwrap_or(false),
            slack: url("alerts_slack_webhook", &p.alerts_slack_webhook)?,
            teams: url("alerts_teams_webhook", &p.alerts_teams_webhook)?,
            webhook: url("alerts_generic_webhook", &p.alerts_generic_webhook)?,
            alertmanager: url("alerts_alertmanager_url", &p.alerts_alertmanager_url)?,
            cooldown_seconds: cooldown as f64,
            custom,
            thresholds: cfg.alert.sub,
            regression_history_limit: cfg.regression_history_limit(),
            regression_threshold_drop: cfg.regression_threshold_drop(),
        })
    }

    /// Where a channel posts, when it is configured: its URL, and for
    /// Alertmanager its v2 API under the base URL (pypss posts to the URL
    /// as given).
    pub fn endpoint(&self, c: channels::Channel) -> Option<String> {
        use channels::Channel;
        match c {
            Channel::Slack => self.slack.clone(),
            Channel::Teams => self.teams.clone(),
            Channel::Webhook => self.webhook.clone(),
            Channel::Alertmanager => self.alertmanager.as_deref().map(outbox::alertmanager_endpoint),
        }
    }

    /// The configured channels, in sending order.
    pub fn channels(&self) -> Vec<channels::Channel> {
        channels::Channel::ALL.into_iter().filter(|c| self.endpoint(*c).is_some()).collect()
    }

    /// Whether any channel is configured.
    pub fn has_channels(&self) -> bool {
        !self.channels().is_empty()
    }
}

/// What one evaluation did.
#[derive(Debug, Clone, Default)]
pub struct Notified {
    /// Alerts sent (past their cooldown).
    pub sent: Vec<Alert>,
    /// Dedup keys held back by the cooldown.
    pub suppressed: Vec<String>,
    pub deliveries: Vec<channels::Delivery>,
}

/// pypss's `AlertEngine.run`: evaluates the rules, holds back alerts still
/// in their cooldown (state in `store`), sends the rest to every channel and
/// records them. Nothing when alerting is off.
pub fn notify(
    cfg: &AlertConfig,
    store: &mut dyn crate::store::Store,
    service: Option<&str>,
    report: &rules::ScoreView,
    history: &[f64],
    modules: &[rules::ModuleView],
    now: f64,
) -> Result<Notified, crate::store::StoreError> {
    let mut out = Notified::default();
    if !cfg.enabled {
        return Ok(out);
    }
    let silences = match service {
        Some(_) => store.silences(now)?,
        None => Vec::new(),
    };
    for a in rules::evaluate(cfg, report, history, modules, now) {
        let key = a.dedup_key();
        // `pss alerts silence --service S [--rule R]` holds back S's alerts.
        if service.is_some_and(|s| silences.iter().any(|x| x.covers(s, &[a.rule_name.as_str()]))) {
            out.suppressed.push(key);
            continue;
        }
        // pypss: alert when more than the cooldown has passed since the last one.
        if store.last_alert(&key)?.is_some_and(|last| now - last <= cfg.cooldown_seconds) {
            out.suppressed.push(key);
        } else {
            out.sent.push(a);
        }
    }
    out.deliveries = channels::send(&channels::posts(cfg, &out.sent));
    for a in &out.sent {
        store.record_alert(&a.dedup_key(), now)?;
    }
    Ok(out)
}
