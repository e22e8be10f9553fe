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
use crate::detect::model::{window_features, DetectorModel};
use crate::domain::Window;
use crate::score::custom::CustomMetrics;
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
    /// Whether the service-level PSS and sub-score thresholds page
    /// (`alarm_score_rules = false` leaves them to pypss's report and
    /// pages on the detector rule alone).
    pub score_rules: bool,
    /// The PSS threshold for each module's windows; `None` turns the module rule off.
    pub module_pss: Option<f64>,
    pub persistence: Persistence,
    /// Pool a too-small window with its neighbours over up to this many
    /// windows (0: too-small windows are never scored, as before).
    pub pool_max_windows: usize,
    /// Fewer traces than this: too small to score alone (`min_window_traces`).
    pub min_window_traces: u64,
    /// The window detector rule: a service window whose score reaches this
    /// quantile of the detector's training scores alarms (`None`: off).
    pub detector_quantile: Option<f64>,
    /// The services' window detectors, attached with [`AlarmPolicy::attach_detector`].
    pub detectors: Vec<DetectorRule>,
    /// The custom metrics pooled quiet spans are scored with, as the
    /// windows were (a tuned policy file names only their weights: see
    /// [`AlarmPolicy::with_custom_metrics`]).
    #[serde(skip)]
    pub custom: CustomMetrics,
    /// Where the policy came from.
    pub source: String,
}

/// The rule names, as `pss alarms` prints them (and the sub-scores' short codes).
pub use crate::score::rescore::RULE_PSS;
pub const RULE_MODULE_PSS: &str = "module_pss";
pub const RULE_DETECTOR: &str = "detector";

/// One service's window detector as a rule: a score at or above `threshold` alarms.
#[derive(Debug, Clone, Serialize)]
pub struct DetectorRule {
    pub service: String,
    pub threshold: f64,
    /// The model's kind and training range, for the record.
    pub kind: String,
    pub data_from: f64,
    pub data_to: f64,
    #[serde(skip)]
    pub model: std::sync::Arc<DetectorModel>,
}

impl PartialEq for DetectorRule {
    fn eq(&self, o: &Self) -> bool {
        self.service == o.service && self.threshold == o.threshold && *self.model == *o.model
    }
}

/// What [`AlarmPolicy::attach_promoted`] did for a service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum DetectorSource {
    /// The policy has no detector rule.
    Off,
    /// The rule is in force with this model file and score threshold.
    Attached { path: String, threshold: f64 },
    /// No promoted window detector: the rule stays off for the service.
    NoModel,
    /// A promoted detector that cannot be used: the rule stays off.
    Unusable { path: String, reason: String },
}

impl std::fmt::Display for DetectorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DetectorSource::Off => write!(f, "detector rule off"),
            DetectorSource::Attached { path, threshold } => {
                write!(f, "detector rule: score >= {threshold:.4} ({path})")
            }
            DetectorSource::NoModel => {
                write!(f, "detector rule off for this service: no promoted window detector (pss-tune promotes one)")
            }
            DetectorSource::Unusable { path, reason } => write!(f, "detector rule off: {path}: {reason}"),
        }
    }
}

impl DetectorRule {
    /// The detector's score of one window.
    pub fn score(&self, w: &Window) -> f64 {
        self.model.score(&window_features(&[w]))[0]
    }
}

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
        let detector_quantile = match k.alarm_detector_quantile {
            None => None,
            Some(q) if q > 0.0 && q < 1.0 => Some(q),
            Some(q) => {
                return Err(bad(format!("alarm_detector_quantile must be between 0 and 1 (exclusive), found {q}")))
            }
        };
        Ok(AlarmPolicy {
            detector_quantile,
            detectors: Vec::new(),
            score: cfg.score.clone(),
            alert: cfg.alert.clone(),
            score_rules: k.alarm_score_rules.unwrap_or(true),
            module_pss: k.alarm_module_pss.filter(|t| *t > 0.0),
            persistence,
            pool_max_windows: pool,
            min_window_traces: cfg.min_window_traces,
            custom: CustomMetrics::from_config(cfg).0,
            source: cfg.source.clone(),
        })
    }

    /// Scores pooled quiet spans with `metrics` (the custom metrics of the
    /// configuration the windows were scored with, which a policy file
    /// written by pss-tune does not name) at the policy's weights for them;
    /// a policy whose own file names custom metrics keeps those.
    pub fn with_custom_metrics(mut self, metrics: &CustomMetrics) -> AlarmPolicy {
        if self.custom.is_empty() {
            self.custom = metrics.clone().weighted_by(&self.score);
        }
        self
    }

    /// The policy in force for `service`: `explicit`, else
    /// `<models>/<service>/pss-tuned.toml`, else `<models>/all/pss-tuned.toml`
    /// (what pss-tune promoted), else `cfg`'s; with the file it came from.
    pub fn in_force(
        explicit: Option<&std::path::Path>,
        service: &str,
        cfg: &Config,
        models: &std::path::Path,
    ) -> Result<(AlarmPolicy, Option<std::path::PathBuf>), PolicyError> {
        let file = |p: std::path::PathBuf| -> Result<_, PolicyError> {
            let policy = AlarmPolicy::from_file(&p)?.with_custom_metrics(&CustomMetrics::from_config(cfg).0);
            Ok((policy, Some(p)))
        };
        if let Some(p) = explicit {
            return file(p.to_path_buf());
        }
        for dir in [service, "all"] {
            let p = models.join(dir).join("pss-tuned.toml");
            if p.is_file() {
                return file(p);
            }
        }
        Ok((AlarmPolicy::from_config(cfg)?, None))
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

    /// Puts `model` (a service's window detector) in force as the detector
    /// rule for its service, at the policy's quantile of its training
    /// scores. Returns the threshold; `None` when the policy has no detector
    /// rule, or the model is not a window model of this window length or
    /// carries no score quantiles (files older than pss 0.14).
    pub fn attach_detector(&mut self, model: DetectorModel, window_seconds: f64) -> Option<f64> {
        let q = self.detector_quantile?;
        if model.level != crate::detect::model::Level::Window || model.window_seconds != Some(window_seconds) {
            return None;
        }
        let threshold = model.score_at_quantile(q)?;
        self.detectors.retain(|d| d.service != model.service);
        self.detectors.push(DetectorRule {
            service: model.service.clone(),
            threshold,
            kind: model.kind.clone(),
            data_from: model.data_from,
            data_to: model.data_to,
            model: std::sync::Arc::new(model),
        });
        Some(threshold)
    }

    /// Attaches `service`'s promoted window detector (the registry's active
    /// one) when the policy has a detector rule; says what it did.
    pub fn attach_promoted(
        &mut self,
        store: &dyn crate::store::Store,
        service: &str,
        window_seconds: f64,
    ) -> Result<DetectorSource, crate::store::StoreError> {
        if self.detector_quantile.is_none() {
            return Ok(DetectorSource::Off);
        }
        let Some(active) = crate::detect::registry::active_window_detector(store, service)? else {
            return Ok(DetectorSource::NoModel);
        };
        let path = active.path;
        Ok(match active.model {
            Err(e) => DetectorSource::Unusable { path, reason: e.to_string() },
            Ok(m) if m.service != service => {
                DetectorSource::Unusable { path, reason: format!("it is service '{}''s model", m.service) }
            }
            Ok(m) => match self.attach_detector(m, window_seconds) {
                Some(threshold) => DetectorSource::Attached { path, threshold },
                None => DetectorSource::Unusable {
                    path,
                    reason: format!("not a window model of {window_seconds} s with training score quantiles (retrain it with pss-tune)"),
                },
            },
        })
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
            let mut rules: Vec<&'static str> =
                if self.score_rules { fired_rules(&r, &self.alert).collect() } else { Vec::new() };
            if let Some(d) = self.detectors.iter().find(|d| d.service == w.service) {
                if d.score(w) >= d.threshold {
                    rules.push(RULE_DETECTOR);
                }
            }
            rules
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

    #[test]
    fn the_detector_rule_fires_above_its_quantile_and_only_for_its_service() {
        use crate::detect::model::{DetectorParams, Level};
        use crate::learn::Fit;
        // 200 calm windows with a little spread; the detector learns them.
        let calm: Vec<Window> = (0..200)
            .map(|k| {
                let f = Features {
                    rows: 100.0 + (k % 7) as f64,
                    lat_p95: 0.1 + (k % 5) as f64 * 0.01,
                    lat_mean: 0.05 + (k % 3) as f64 * 0.01,
                    tail_ratio: 1.0,
                    be_raw: 1.0,
                    ..Features::default()
                };
                Window { traces: 100, ..Window::unscored("s", k as f64 * 60.0, 60.0, f) }
            })
            .collect();
        let refs: Vec<&Window> = calm.iter().collect();
        let model = DetectorParams {
            forest: crate::detect::IsolationForestParams { extended: true, seed: 3, ..Default::default() },
            level: Level::Window,
            service: "s".into(),
            window_seconds: Some(60.0),
            features: Features::NAMES.iter().map(|n| n.to_string()).collect(),
            range: (0.0, 12000.0),
        }
        .check()
        .unwrap()
        .fit(&crate::detect::model::window_features(&refs))
        .unwrap();
        let mut p = AlarmPolicy::from_config(&Config::default()).unwrap();
        p.alert.pss = 0.0;
        assert_eq!(p.attach_detector(model.clone(), 60.0), None, "no detector rule without a quantile");
        p.detector_quantile = Some(0.99);
        assert_eq!(p.attach_detector(model.clone(), 300.0), None, "another window length");
        let t = p.attach_detector(model.clone(), 60.0).unwrap();
        assert_eq!(Some(t), model.score_at_quantile(0.99));
        let flagged = calm.iter().filter(|w| p.fire(w).contains(&RULE_DETECTOR)).count();
        assert!((1..=4).contains(&flagged), "about 1 % of its training windows: {flagged}");
        let odd = Features { lat_p95: 3.0, lat_mean: 2.0, ..calm[0].features };
        let odd = Window { features: odd, ..calm[0].clone() };
        assert_eq!(p.fire(&odd), vec![RULE_DETECTOR]);
        let other = Window { service: "t".into(), ..odd.clone() };
        assert!(p.fire(&other).is_empty(), "service t has no detector");
        let module = Window { module: "m".into(), ..odd };
        assert!(p.fire(&module).is_empty(), "the detector rule is a service-level rule");

        // From the registry: the promoted model, or a reason the rule is off.
        use crate::store::Store;
        let dir = tempfile::tempdir().unwrap();
        let mut store = crate::store::SqliteStore::open(&dir.path().join("h.db")).unwrap();
        let kind = crate::detect::registry::WINDOW_DETECTOR_KIND;
        let mut q = AlarmPolicy { detectors: Vec::new(), ..p.clone() };
        assert_eq!(q.attach_promoted(&store, "s", 60.0).unwrap(), DetectorSource::NoModel);
        let file = dir.path().join("m.json");
        std::fs::write(&file, serde_json::to_string(&model).unwrap()).unwrap();
        let promoted = serde_json::json!({ "promoted": true });
        store.register_model("s", kind, &file.display().to_string(), &promoted, 1.0).unwrap();
        match q.attach_promoted(&store, "s", 60.0).unwrap() {
            DetectorSource::Attached { threshold, .. } => assert_eq!(threshold, t),
            other => panic!("{other:?}"),
        }
        assert_eq!(q.fire(&Window { service: "s".into(), ..calm[0].clone() }), Vec::<&str>::new());
        std::fs::write(&file, "{").unwrap();
        let mut r = AlarmPolicy { detectors: Vec::new(), ..p.clone() };
        assert!(matches!(r.attach_promoted(&store, "s", 60.0).unwrap(), DetectorSource::Unusable { .. }));
        let off = AlarmPolicy { detector_quantile: None, ..r.clone() };
        assert_eq!(off.clone().attach_promoted(&store, "s", 60.0).unwrap(), DetectorSource::Off);
    }
}
