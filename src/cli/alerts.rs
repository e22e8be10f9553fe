//! `pss alerts`: the notifications sent (or waiting), a test notification to
//! every channel, and silences.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{print, CmdResult, Failure};
use crate::alert::{Alert, AlertConfig, PyNum, Severity};
use crate::config::Config;
use crate::store::Silence;
use crate::timefmt::format_time;

#[derive(Args, Debug)]
pub struct AlertsArgs {
    #[command(subcommand)]
    pub command: AlertsCommand,
}

#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// Notifications fired and resolved (live alerting's outbox), with each one's delivery.
    List {
        /// History database (default: config storage_uri).
        #[arg(long, value_name = "DB")]
        history: Option<PathBuf>,
        /// Only those created since (RFC 3339 or epoch seconds; default: all).
        #[arg(long)]
        since: Option<String>,
    },
    /// Send one test notification to every configured channel and report each result (exit 1 if any failed).
    Test {
        /// Configuration file (default: pss.toml / pypss.toml / pyproject.toml here).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// No notifications for a service (or one of its rules) for a while.
    Silence {
        #[arg(long)]
        service: String,
        /// A rule (`pss`, `ts` … `cc`, `module_pss`); default: every rule.
        #[arg(long)]
        rule: Option<String>,
        /// How long (e.g. 30m, 2h, 1d).
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        #[arg(long, value_name = "DB")]
        history: Option<PathBuf>,
    },
}

/// `pss alerts`.
pub fn run_alerts(a: AlertsArgs) -> CmdResult {
    match a.command {
        AlertsCommand::List { history, since } => list(&history, &since),
        AlertsCommand::Test { config } => test(&config),
        AlertsCommand::Silence { service, rule, duration, history } => silence(service, rule, &duration, &history),
    }
}

/// `pss alerts list`.
fn list(history: &Option<PathBuf>, since: &Option<String>) -> CmdResult {
    let cfg = Config::discover(None)?;
    let store = crate::store::open(&super::history::history_path(history, &cfg))?;
    let since = super::history_time_arg("since", since)?.unwrap_or(f64::MIN);
    let rows = store.notifications(since)?;
    if rows.is_empty() {
        return print("No notifications.\n");
    }
    let mut out = format!(
        "{:<21} {:<12} {:<9} {:<40} {:<21} {:>8}  {}\n",
        "CREATED", "CHANNEL", "KIND", "EPISODE", "SENT", "ATTEMPTS", "LAST ERROR"
    );
    for r in rows {
        // key: channel|service|module|start|kind
        let parts: Vec<&str> = r.key.split('|').collect();
        let (episode, kind) = match parts.as_slice() {
            [_, service, module, start, kind] => {
                let at = start.parse::<f64>().map(format_time).unwrap_or_default();
                let place = if module.is_empty() { service.to_string() } else { format!("{service}/{module}") };
                (format!("{place} from {at}"), *kind)
            }
            _ => (r.key.clone(), ""),
        };
        out += &format!(
            "{:<21} {:<12} {:<9} {:<40} {:<21} {:>8}  {}\n",
            format_time(r.created),
            r.channel,
            kind,
            episode,
            r.sent.map(format_time).unwrap_or_else(|| "waiting".into()),
            r.attempts,
            r.last_error.unwrap_or_default()
        );
    }
    print(&out)
}

/// `pss alerts test`.
fn test(config: &Option<PathBuf>) -> CmdResult {
    let cfg = Config::discover(config.as_deref())?;
    let ac = AlertConfig::from_config(&cfg).map_err(|e| Failure::input(e.to_string()))?;
    if !ac.has_channels() {
        return Err(Failure::input(format!(
            "{}: no channel configured (alerts_slack_webhook, alerts_teams_webhook, alerts_generic_webhook, \
                     alerts_alertmanager_url)",
            cfg.source
        )));
    }
    let alert = Alert {
        rule_name: "pss test".into(),
        severity: Severity::Info,
        message: "A test notification from pss alerts test: this channel works.".into(),
        metric_name: "pss".into(),
        current_value: PyNum::Float(100.0),
        threshold: PyNum::Float(0.0),
        timestamp: crate::timefmt::now(),
        module: None,
    };
    let posts = crate::alert::channels::posts(&ac, std::slice::from_ref(&alert));
    let results = crate::alert::channels::send(&posts);
    let mut out = String::new();
    let mut failed = 0;
    for d in &results {
        match &d.error {
            None => out += &format!("{:<13} delivered\n", d.channel.name()),
            Some(e) => {
                failed += 1;
                out += &format!("{:<13} FAILED after {} attempts: {e}\n", d.channel.name(), d.attempts);
            }
        }
    }
    print(&out)?;
    if failed > 0 {
        return Err(Failure::check(format!("{failed} of {} channels failed", results.len())));
    }
    Ok(())
}

/// `pss alerts silence`.
fn silence(service: String, rule: Option<String>, duration: &str, history: &Option<PathBuf>) -> CmdResult {
    let cfg = Config::discover(None)?;
    let secs = super::duration_arg("for", duration, true)?;
    let mut store = crate::store::open(&super::history::history_path(history, &cfg))?;
    let until = crate::timefmt::now() + secs;
    store.add_silence(&Silence { service: service.clone(), rule: rule.clone(), until })?;
    print(&format!(
        "Silenced {service}{} until {}.\n",
        rule.map(|r| format!(" (rule {r})")).unwrap_or_default(),
        format_time(until)
    ))
}
