//! pypss's channels (`pypss/alerts/channels.py`), with its payloads: Slack
//! and Teams and the generic webhook post one JSON body per alert,
//! Alertmanager one list of every alert. Bodies are built here and sent by
//! [`send`]; a webhook URL is a secret and never appears in an error.

use serde_json::{json, Value};

use super::{Alert, AlertConfig, Severity};

/// A configured channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Slack,
    Teams,
    Webhook,
    Alertmanager,
}

impl Channel {
    /// Every channel, in pypss's sending order.
    pub const ALL: [Channel; 4] = [Channel::Slack, Channel::Teams, Channel::Webhook, Channel::Alertmanager];

    /// The channel of a name (as stored in the outbox).
    pub fn from_name(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Channel::Slack => "slack",
            Channel::Teams => "teams",
            Channel::Webhook => "webhook",
            Channel::Alertmanager => "alertmanager",
        }
    }
}

/// One HTTP POST to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    pub channel: Channel,
    pub url: String,
    pub body: Value,
}

pub(crate) fn slack(a: &Alert) -> Value {
    let color = match a.severity {
        Severity::Info => "#36a64f",
        Severity::Warning => "#ffcc00",
        Severity::Critical => "#ff0000",
    };
    json!({
        "text": format!("*{}: {}*", a.severity.as_str().to_uppercase(), a.rule_name),
        "attachments": [{
            "color": color,
            "fields": [
                {"title": "Message", "value": a.message, "short": false},
                {"title": "Metric", "value": format!("{}: {:.2}", a.metric_name, a.current_value.as_f64()), "short": true},
                {"title": "Threshold", "value": a.threshold.py_str(), "short": true},
            ],
        }],
    })
}

pub(crate) fn teams(a: &Alert) -> Value {
    let color = match a.severity {
        Severity::Info => "00FF00",
        Severity::Warning => "FFFF00",
        Severity::Critical => "FF0000",
    };
    let title = format!("{}: {}", a.severity.as_str().to_uppercase(), a.rule_name);
    json!({
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": color,
        "summary": title,
        "sections": [{
            "activityTitle": title,
            "activitySubtitle": a.message,
            "facts": [
                {"name": "Metric", "value": a.metric_name},
                {"name": "Value", "value": format!("{:.2}", a.current_value.as_f64())},
                {"name": "Threshold", "value": a.threshold.py_str()},
            ],
            "markdown": true,
        }],
    })
}

pub(crate) fn webhook(a: &Alert) -> Value {
    json!({
        "rule": a.rule_name,
        "severity": a.severity.as_str(),
        "message": a.message,
        "metric": a.metric_name,
        "value": a.current_value.json(),
        "threshold": a.threshold.json(),
        "timestamp": a.timestamp,
    })
}

/// pypss's Alertmanager alerts, plus what Alertmanager's v2 API uses and
/// pypss leaves out: `startsAt`, `endsAt` (the alert holds for the cooldown,
/// as no later run re-sends it sooner) and `generatorURL`.
fn alertmanager(alerts: &[Alert], hold_seconds: f64) -> Value {
    let at = crate::timefmt::format_rfc3339;
    Value::Array(
        alerts
            .iter()
            .map(|a| {
                json!({
                    "labels": {"alertname": a.rule_name, "severity": a.severity.as_str(), "service": "pypss"},
                    "annotations": {"summary": a.message, "value": a.current_value.py_str(), "threshold": a.threshold.py_str()},
                    "startsAt": at(a.timestamp),
                    "endsAt": at(a.timestamp + hold_seconds.max(60.0)),
                    "generatorURL": "https://pypi.org/project/pypss/",
                })
            })
            .collect(),
    )
}

/// The posts pypss would make for `alerts`, in its order.
pub fn posts(cfg: &AlertConfig, alerts: &[Alert]) -> Vec<Post> {
    let mut out = Vec::new();
    if alerts.is_empty() {
        return out;
    }
    for channel in Channel::ALL {
        let Some(url) = cfg.endpoint(channel) else { continue };
        let one: fn(&Alert) -> Value = match channel {
            Channel::Slack => slack,
            Channel::Teams => teams,
            Channel::Webhook => webhook,
            // One list of every alert.
            Channel::Alertmanager => {
                out.push(Post { channel, url, body: alertmanager(alerts, cfg.cooldown_seconds) });
                continue;
            }
        };
        out.extend(alerts.iter().map(|a| Post { channel, url: url.clone(), body: one(a) }));
    }
    out
}

/// What became of one post.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub channel: Channel,
    /// `None` when delivered (a 2xx); else why not, without the URL.
    pub error: Option<String>,
    pub attempts: u32,
}

/// One POST of a JSON body; the error says what went wrong without the
/// URL (a secret, which reqwest's messages name).
pub(crate) fn post_once(client: &reqwest::blocking::Client, url: &str, body: &Value) -> Result<(), String> {
    match client.post(url).json(body).send() {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
        Err(e) if e.is_timeout() => Err("no answer in time".into()),
        Err(e) if e.is_connect() => Err("connection refused or unreachable".into()),
        Err(_) => Err("request failed".into()),
    }
}

/// Sends each post with pypss's retry policy (3 attempts, 1 s then 2 s
/// apart, 10 s timeout each).
pub fn send(posts: &[Post]) -> Vec<Delivery> {
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("pss/", env!("CARGO_PKG_VERSION")))
        .build();
    posts
        .iter()
        .map(|p| {
            let Ok(client) = &client else {
                return Delivery { channel: p.channel, error: Some("no HTTP client".into()), attempts: 0 };
            };
            let mut error = None;
            let mut attempts = 0;
            for attempt in 0..3u32 {
                attempts = attempt + 1;
                error = post_once(client, &p.url, &p.body).err();
                if error.is_none() {
                    break;
                }
                if attempt < 2 {
                    std::thread::sleep(std::time::Duration::from_secs(u64::from(attempt) + 1));
                }
            }
            Delivery { channel: p.channel, error, attempts }
        })
        .collect()
}
