//! Live notifications through an outbox: an episode's notification is
//! recorded in the history database before it is sent and marked sent after
//! a 2xx, so a crash between the two sends it after the restart, and a
//! notification acknowledged once is never sent again. A receiver that is
//! down is retried with backoff; sending never blocks ingestion (it runs on
//! its own thread with its own connection).

use serde_json::{json, Value};

use super::channels::Channel;
use super::{Alert, AlertConfig, PyNum, Severity};
use crate::alarm::episodes::{Event, Span};
use crate::alarm::live::LiveEvent;
use crate::store::{NewNotification, Store, StoreError};

/// The notifications of one live event, one per configured channel, in
/// pypss's payload shapes (Alertmanager: its v2 alert with `startsAt`, and
/// `endsAt` when resolved).
pub fn notifications(cfg: &AlertConfig, ev: &LiveEvent, alert_pss: f64, now: f64) -> Vec<NewNotification> {
    let (span, resolved): (&Span, bool) = match &ev.event {
        Event::Fired(s) => (s, false),
        Event::Resolved(s) => (s, true),
    };
    let rules = span.rules.join("+");
    let place = if ev.module.is_empty() { ev.service.clone() } else { format!("{} / {}", ev.service, ev.module) };
    let severity = if span.rules.contains(&"ev") { Severity::Critical } else { Severity::Warning };
    let message = if resolved {
        format!(
            "Resolved: {place} stability alarm ({rules}) from {} to {}, lowest PSS {:.0}.",
            crate::timefmt::format_time(span.start),
            crate::timefmt::format_time(span.end),
            span.peak
        )
    } else {
        format!(
            "{place}: stability alarm ({rules}) since {}, PSS down to {:.0}.",
            crate::timefmt::format_time(span.start),
            span.peak
        )
    };
    let alert = Alert {
        rule_name: format!("PSS alarm: {rules}"),
        severity: if resolved { Severity::Info } else { severity },
        message,
        metric_name: "pss".into(),
        current_value: PyNum::Float(span.peak),
        threshold: PyNum::Float(alert_pss),
        timestamp: now,
        module: (!ev.module.is_empty()).then(|| ev.module.clone()),
    };
    let kind = if resolved { "resolved" } else { "fired" };
    let mut labels = json!({"alertname": "PSS alarm", "severity": severity.as_str(), "service": ev.service});
    if !ev.module.is_empty() {
        labels["module"] = ev.module.clone().into();
    }
    let mut am = json!({
        "labels": labels,
        "annotations": {"summary": alert.message, "rules": rules, "peak": crate::pystats::py_repr(span.peak)},
        "startsAt": crate::timefmt::format_rfc3339(span.start),
    });
    if resolved {
        am["endsAt"] = crate::timefmt::format_rfc3339(span.end).into();
    }
    let mut out = Vec::new();
    for channel in cfg.channels() {
        let body = match channel {
            Channel::Slack => super::channels::slack(&alert),
            Channel::Teams => super::channels::teams(&alert),
            Channel::Webhook => super::channels::webhook(&alert),
            Channel::Alertmanager => Value::Array(vec![am.clone()]),
        };
        out.push(NewNotification {
            key: format!("{}|{}|{}|{}|{kind}", channel.name(), ev.service, ev.module, span.start),
            created: now,
            channel: channel.name().into(),
            body,
        });
    }
    out
}

/// Alertmanager's v2 endpoint under a base URL (a URL already naming an API path is kept).
pub fn alertmanager_endpoint(base: &str) -> String {
    if base.contains("/api/") {
        base.to_string()
    } else {
        format!("{}/api/v2/alerts", base.trim_end_matches('/'))
    }
}

/// What one pass over the outbox did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// (channel, delivered?) per attempt.
    pub attempts: Vec<(String, bool)>,
}

/// Sends every due notification once; failures are retried later with
/// backoff (1 s, doubling, at most 5 minutes).
pub fn deliver_due(
    store: &mut dyn Store,
    cfg: &AlertConfig,
    client: &reqwest::blocking::Client,
    now: f64,
) -> Result<Pass, StoreError> {
    let mut pass = Pass::default();
    for n in store.due_notifications(now, 100)? {
        let Some(target) = Channel::from_name(&n.channel).and_then(|c| cfg.endpoint(c)) else {
            store.notification_failed(n.id, now + 300.0, "the channel is no longer configured")?;
            continue;
        };
        let result = super::channels::post_once(client, &target, &n.body);
        pass.attempts.push((n.channel.clone(), result.is_ok()));
        match result {
            Ok(()) => store.notification_sent(n.id, now)?,
            Err(e) => {
                let backoff = (2f64.powi(n.attempts.min(20) as i32)).min(300.0);
                store.notification_failed(n.id, now + backoff, &e)?;
            }
        }
    }
    Ok(pass)
}
