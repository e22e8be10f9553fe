//! Live alerting in `pss serve`: after each refresh the writer evaluates the
//! alarm policy on windows that closed ([`crate::alarm::live`]) and records
//! the notifications of episodes that fired or resolved in the outbox; a
//! sender thread of its own delivers them ([`crate::alert::outbox`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use super::metrics::Metrics;
use crate::alarm::live::Live;
use crate::alarm::AlarmPolicy;
use crate::alert::AlertConfig;
use crate::store::Store;

/// Where live alerting reports what a person should know (a policy put in
/// force or refused); the command line prints it.
pub type Notice = Arc<dyn Fn(&str) + Send + Sync>;

/// Live alerting's configuration.
#[derive(Clone)]
pub struct Alerting {
    pub policy: AlarmPolicy,
    /// The policy's file, watched: a newly promoted policy is put in force
    /// without a restart.
    pub policy_file: Option<std::path::PathBuf>,
    pub alerts: AlertConfig,
    /// A window is evaluated once its end is this far behind the clock (or
    /// a later window of its service exists).
    pub grace: Duration,
    pub notice: Option<Notice>,
}

impl std::fmt::Debug for Alerting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerting")
            .field("policy", &self.policy.source)
            .field("policy_file", &self.policy_file)
            .field("grace", &self.grace)
            .finish()
    }
}

/// The writer's side: evaluates and records.
pub struct Evaluator {
    live: Live,
    alerts: AlertConfig,
    wake: mpsc::Sender<()>,
    policy_file: Option<(std::path::PathBuf, Option<std::time::SystemTime>)>,
    notice: Option<Notice>,
}

fn modified(p: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Evaluator {
    pub fn new(a: &Alerting, window_seconds: f64, unknown_module: &str, wake: mpsc::Sender<()>) -> Evaluator {
        Evaluator {
            live: Live::new(a.policy.clone(), window_seconds, a.grace.as_secs_f64(), unknown_module),
            alerts: a.alerts.clone(),
            wake,
            policy_file: a.policy_file.clone().map(|p| {
                let m = modified(&p);
                (p, m)
            }),
            notice: a.notice.clone(),
        }
    }

    /// Reloads the policy when its file changed; a bad file keeps the policy
    /// in force (counted in the metrics).
    fn reload(&mut self, metrics: &Metrics) {
        let Some((path, seen)) = self.policy_file.as_mut() else { return };
        let now = modified(path);
        if now.is_none() || now == *seen {
            return;
        }
        *seen = now;
        let (msg, ok) = match AlarmPolicy::from_file(path) {
            Ok(p) => {
                let p = p.with_custom_metrics(&self.live.policy().custom);
                self.live.set_policy(p);
                (format!("alarm policy {} reloaded and in force", path.display()), true)
            }
            Err(e) => (format!("alarm policy {} refused, the previous one stays in force: {e}", path.display()), false),
        };
        metrics.policy_loaded(&path.display().to_string(), ok);
        if let Some(n) = &self.notice {
            n(&msg);
        }
    }

    /// Evaluates closed windows and records what fired or resolved.
    pub fn evaluate(&mut self, store: &mut dyn Store, metrics: &Metrics) -> Result<(), crate::store::StoreError> {
        if self.live.policy().source != metrics.policy_source() {
            metrics.set_policy_source(&self.live.policy().source);
        }
        self.reload(metrics);
        let now = crate::timefmt::now();
        let services = store.services()?;
        let events = self.live.advance(&*store, &services, now)?;
        if let Some(n) = &self.notice {
            for (service, found) in self.live.take_detector_notes() {
                n(&format!("{service}: {found}"));
            }
        }
        let alert_pss = self.live.policy().alert.pss;
        let silences = if events.is_empty() { Vec::new() } else { store.silences(now)? };
        let items: Vec<_> = events
            .iter()
            .filter(|e| {
                let (crate::alarm::episodes::Event::Fired(s) | crate::alarm::episodes::Event::Resolved(s)) = &e.event;
                !silences.iter().any(|x| x.covers(&e.service, &s.rules))
            })
            .flat_map(|e| crate::alert::outbox::notifications(&self.alerts, e, alert_pss, now))
            .collect();
        if !items.is_empty() && store.enqueue_notifications(&items)? > 0 {
            let _ = self.wake.send(());
        }
        metrics.set_firing(&self.live.firing());
        metrics.alarm_evaluations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// Starts the sender thread; it ends after `stop` is set and one last pass.
pub fn start_sender(
    history: std::path::PathBuf,
    alerts: AlertConfig,
    metrics: Arc<Metrics>,
    wake: mpsc::Receiver<()>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Result<(), String>> {
    std::thread::Builder::new()
        .name("pss-alerts".into())
        .spawn(move || {
            let mut store = crate::store::open(&history).map_err(|e| e.to_string())?;
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .user_agent(concat!("pss/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.to_string())?;
            loop {
                let pass = crate::alert::outbox::deliver_due(&mut *store, &alerts, &client, crate::timefmt::now())
                    .map_err(|e| e.to_string())?;
                for (channel, ok) in &pass.attempts {
                    metrics.notification(channel, *ok);
                }
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                // Woken by a new notification, else a second later for retries.
                let _ = wake.recv_timeout(Duration::from_secs(1));
            }
        })
        .expect("spawn the alert sender")
}
