//! The alarm policy: what fires, and when a run of alarming windows pages.
//! One type decides it for the backtest (`pss alarms`), tuning and live
//! alerting: the PSS rule on the service's windows and on each module's,
//! the sub-score rules, persistence and hysteresis ([`episodes`]), and quiet
//! hours — a window with too few traces is pooled with its neighbours and
//! scored over the longer span ([`backtest`]) instead of never being scored.
//!
//! A policy is a configuration file: its `[pypss]` table (weights,
//! parameters, `alert_threshold_*`) stays loadable by pypss; the policy's own
//! keys are in `[pss.alarm]`.

pub mod backtest;
pub mod episodes;
pub mod live;
pub mod persistence;
pub mod pool;

use serde::Serialize;

use crate::config::{AlertParams, Config, ScoreParams};
use crate::domain::Window;
use crate::score::rescore::{fired_rules, rescore};
use episodes::Step;
pub use episodes::{Persistence, Span};

/// Why a policy cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{file}: key `{key}` is not a policy or pypss key (policy keys: alarm_* under [pss.alarm])")]
    UnknownKey { file: String, key: String },
    #[error("{file}: {msg}")]
    Invalid { file: String, msg: String },
}

/// What decides which windows alarm and when they page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmPolicy {
    pub score: ScoreParams,
    /// The service-level PSS threshold and the sub-score thresholds (0 off).
    pub alert: AlertParams,
    /// The PSS threshold for each module's windows; `None` turns the module rule off.
    pub module_pss: Option<f64>,
    pub persistence: Persistence,
    /// Pool a too-small window with its neighbours over up to this many
    /// windows (0: too-small windows are never scored, as before).
    pub pool_max_windows: usize,
    /// Fewer traces than this: too small to score alone (`min_window_traces`).
    pub min_window_traces: u64,
    /// Where the policy came from.
    pub source: String,
}

/// The rule names, as `pss alarms` prints them (and the sub-scores' short codes).
pub use crate::score::rescore::RULE_PSS;
pub const RULE_MODULE_PSS: &str = "module_pss";

impl AlarmPolicy {
    /// The policy of a configuration: its score parameters and thresholds,
    /// and `[pss.alarm]` (`alarm_module_pss`, `alarm_fire_after`,
    /// `alarm_fire_window`, `alarm_resolve_after`, `alarm_pool_max_windows`).
    pub fn from_config(cfg: &Config) -> Result<AlarmPolicy, PolicyError> {
        let k = &cfg.keys;
        let bad = |msg: String| PolicyError::Invalid { file: cfg.source.clone(), msg };
        let count = |v: Option<i64>, name: &str, default: usize| -> Result<usize, PolicyError> {
            match v {
                None => Ok(default),
                Some(n) if n >= 1 => Ok(n as usize),
                Some(n) => Err(bad(format!("alarm_{name} must be at least 1, found {n}"))),
            }
        };
        let persistence = Persistence {
            fire_after: count(k.alarm_fire_after, "fire_after", 1)?,
            fire_window: count(k.alarm_fire_window, "fire_window", 1)?,
            resolve_after: count(k.alarm_resolve_after, "resolve_after", 1)?,
        };
        if persistence.fire_after > persistence.fire_window {
            return Err(bad(format!(
                "alarm_fire_after ({}) is more than alarm_fire_window ({})",
                persistence.fire_after, persistence.fire_window
            )));
        }
        let pool = match k.alarm_pool_max_windows {
            None => 12,
            Some(n) if n >= 0 => n as usize,
            Some(n) => return Err(bad(format!("alarm_pool_max_windows must not be negative, found {n}"))),
        };
        Ok(AlarmPolicy {
            score: cfg.score.clone(),
            alert: cfg.alert.clone(),
            module_pss: k.alarm_module_pss.filter(|t| *t > 0.0),
            persistence,
            pool_max_windows: pool,
            min_window_traces: cfg.min_window_traces,
            source: cfg.source.clone(),
        })
    }

    /// Loads a policy file strictly: a key that is neither pypss's nor a
    /// policy key is an error (a typo must not silently change what pages).
    pub fn from_file(path: &std::path::Path) -> Result<AlarmPolicy, PolicyError> {
        let cfg = Config::from_file(path)?;
        if let Some(key) = cfg.unknown_keys.first() {
            return Err(PolicyError::UnknownKey { file: cfg.source.clone(), key: key.clone() });
        }
        AlarmPolicy::from_config(&cfg)
    }

    /// A window as the episode logic sees it: its PSS under this policy's
    /// parameters and the rules it fires (none when it is too small to
    /// score): service windows [`alarms`](crate::score::rescore::alarms)'
    /// rules, module windows the module rule.
    pub fn step(&self, w: &Window) -> Step {
        let r = rescore(w, &self.score);
        let rules = if w.too_small {
            Vec::new()
        } else if w.module.is_empty() {
            fired_rules(&r, &self.alert).collect()
        } else if self.module_pss.is_some_and(|t| r.pss < t) {
            vec![RULE_MODULE_PSS]
        } else {
            Vec::new()
        };
        Step { start: w.start, end: w.start + w.seconds, pss: r.pss, rules }
    }

    /// The rules a window fires under this policy (empty: clean).
    pub fn fire(&self, w: &Window) -> Vec<&'static str> {
        self.step(w).rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Features;

    fn window(module: &str, lat_cv: f64, error_rate: f64) -> Window {
        let f = Features { rows: 100.0, lat_cv, tail_ratio: 1.0, error_rate, be_raw: 1.0, ..Features::default() };
        Window { module: module.into(), traces: 100, ..Window::unscored("s", 0.0, 60.0, f) }
    }

    #[test]
    fn service_and_module_rules_and_a_strict_policy_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("policy.toml");
        std::fs::write(
            &f,
            "[pypss]\nalert_threshold_ev = 0.9\n[pss]\nalert_threshold_pss = 75\n[pss.alarm]\nmodule_pss = 75\nfire_after = 2\nfire_window = 3\n",
        )
        .unwrap();
        let p = AlarmPolicy::from_file(&f).unwrap();
        assert_eq!(p.persistence, Persistence { fire_after: 2, fire_window: 3, resolve_after: 1 });
        assert_eq!(p.module_pss, Some(75.0));
        assert!(p.fire(&window("", 0.0, 0.0)).is_empty(), "a calm window is clean");
        let noisy = window("", 3.0, 0.0);
        assert_eq!(p.fire(&noisy), vec![RULE_PSS, "ts"], "erratic latency: the PSS and the timing rule");
        assert!(p.fire(&window("", 0.0, 0.5)).contains(&"ev"), "the error sub-score rule");
        assert_eq!(p.fire(&window("app.db", 3.0, 0.0)), vec![RULE_MODULE_PSS], "the module rule");
        let small = Window { too_small: true, ..noisy };
        assert!(p.fire(&small).is_empty());
        std::fs::write(&f, "[pss.alarm]\nfire_aftr = 2\n").unwrap();
        let e = AlarmPolicy::from_file(&f).unwrap_err().to_string();
        assert!(e.contains("alarm_fire_aftr") && e.contains("policy.toml"), "{e}");
        std::fs::write(&f, "[pss.alarm]\nfire_after = 3\nfire_window = 2\n").unwrap();
        assert!(AlarmPolicy::from_file(&f).unwrap_err().to_string().contains("more than alarm_fire_window"));
    }
}
