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
    let at = |t: f64| crate::timefmt::format_time(t).replace(' ', "T");
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
    let each = |out: &mut Vec<Post>, channel, url: &Option<String>, f: fn(&Alert) -> Value| {
        if let Some(u) = url {
            out.extend(alerts.iter().map(|a| Post { channel, url: u.clone(), body: f(a) }));
        }
    };
    each(&mut out, Channel::Slack, &cfg.slack, slack);
    each(&mut out, Channel::Teams, &cfg.teams, teams);
    each(&mut out, Channel::Webhook, &cfg.webhook, webhook);
    if let Some(u) = &cfg.alertmanager {
        // Alertmanager's v2 API under the base URL (pypss posts to the URL as given).
        let url = super::outbox::alertmanager_endpoint(u);
        out.push(Post { channel: Channel::Alertmanager, url, body: alertmanager(alerts, cfg.cooldown_seconds) });
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
                match client.post(&p.url).json(&p.body).send() {
                    Ok(r) if r.status().is_success() => {
                        error = None;
                        break;
                    }
                    Ok(r) => error = Some(format!("HTTP {}", r.status().as_u16())),
                    // reqwest's message names the URL: keep only the kind.
                    Err(e) if e.is_timeout() => error = Some("no answer within 10 s".into()),
                    Err(e) if e.is_connect() => error = Some("connection refused or unreachable".into()),
                    Err(_) => error = Some("request failed".into()),
                }
                if attempt < 2 {
                    std::thread::sleep(std::time::Duration::from_secs(u64::from(attempt) + 1));
                }
            }
            Delivery { channel: p.channel, error, attempts }
        })
        .collect()
}
