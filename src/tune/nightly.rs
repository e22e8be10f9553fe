//! The nightly job as one library call: lock the history, load the windows
//! and incidents, tune, decide promotion, write the config, model card and
//! plots, record the run, and retrain the window detectors. `pss-tune`,
//! `pss serve` or a scheduler call [`run`] and render the [`NightlyReport`].

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::output::{config_toml, convergence_svg, model_card, pr_svg, verdict};
use super::space::{Candidate, Space};
use super::tuner::{CheckedTuneParams, TuneData, TuneError, TuneParams, Tuned};
use crate::config::{Config, ConfigError};
use crate::detect::model::DetectorModel;
use crate::detect::registry::{register_window_detectors, DetectorOutcome, RegistryError};
use crate::domain::{Incident, LabeledWindow};
use crate::store::{RunRecord, Store, StoreError};

/// What to run.
#[derive(Debug, Clone)]
pub struct NightlyJob {
    /// The history database.
    pub history: PathBuf,
    /// Services to tune together (empty: every service in the database).
    pub services: Vec<String>,
    /// Only windows in `[from, to)`.
    pub from: Option<f64>,
    pub to: Option<f64>,
    /// Window length; `None`: the one length the history holds, else the
    /// configured default.
    pub window_seconds: Option<f64>,
    /// Search hyperparameters (the bounds from the config are applied here).
    pub params: TuneParams,
    /// The tuned config's path (default `models/<service|all>/pss-tuned.toml`).
    pub output: Option<PathBuf>,
    /// Replace an existing config only when the new one is better on validation.
    pub promote_if_better: bool,
    /// Retrain the window detectors into this folder (`None`: do not).
    pub detectors_dir: Option<PathBuf>,
    /// The alarm policy's page budget: false-alarm episodes per service-day
    /// it may page on the training part (see [`crate::alarm::persistence::choose`]).
    pub page_budget: f64,
}

/// The promotion decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Promotion {
    pub promote_if_better: bool,
    /// The active config's validation objective, when there was one to compare.
    pub active_validation_objective: Option<f64>,
    pub new_validation_objective: f64,
    pub promoted: bool,
}

/// Where the outputs went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NightlyOutputs {
    pub config: PathBuf,
    pub card: PathBuf,
    pub convergence: PathBuf,
    pub pr_curve: PathBuf,
}

/// What the job did.
#[derive(Debug, Clone)]
pub struct NightlyReport {
    pub services: Vec<String>,
    pub window_seconds: f64,
    pub incidents: usize,
    pub tuned: Tuned,
    /// Incidents no scorable window overlaps (left out of the metrics).
    pub unscorable: Vec<Incident>,
    pub promotion: Promotion,
    pub outputs: NightlyOutputs,
    pub run_id: i64,
    pub detectors: Vec<DetectorOutcome>,
    pub seconds: f64,
    pub verdict: String,
    /// The alarm policy's persistence, chosen on the training part, and its
    /// episodes on the validation part.
    pub alarm: AlarmChoice,
}

/// The alarm policy written to `[pss.alarm]`: persistence and detector
/// rule, chosen on a nested split of the training part.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlarmChoice {
    pub choice: crate::alarm::persistence::Choice,
    pub validation: crate::alarm::persistence::EpisodeMetrics,
    /// The most eager policy (the tuned thresholds, no detector rule,
    /// paging on every alarming window) on the validation part.
    pub validation_eager: crate::alarm::persistence::EpisodeMetrics,
    /// Random search's best thresholds given the same choice procedure, on
    /// the validation part: what the tuner must not be worse than.
    pub validation_random: crate::alarm::persistence::EpisodeMetrics,
    pub random_choice: crate::alarm::persistence::Choice,
    /// `"nested"`: chosen on the training part's last 30 % for thresholds
    /// searched on its first 70 %; `"training"`: that inner search could not
    /// run (too little training data), chosen on the whole training part.
    pub chosen_on: &'static str,
}

/// Step 3b: the alarm policy — persistence, the detector rule (off, beside
/// the score rules, or alone at a quantile of the detector's training
/// scores) and the module rule — the candidate catching the most incidents
/// within the page budget, chosen where the thresholds it will run with
/// were not fit: the search is run again on the training part's first 70 %
/// (cross-fitting), and the policy chosen for those thresholds on the
/// training part's last 30 %, with detectors fit on its first 70 %. On the
/// training part itself the tuned thresholds fit so well that every
/// candidate looks clean and the most eager one wins (measured: README,
/// "Alarm policy"). The validation part is then judged with the tuned
/// thresholds and detectors fit on the whole training part, as the nightly
/// retraining fits them. Random search's thresholds get the same procedure.
fn choose_alarm(
    l: &Loaded,
    job: &NightlyJob,
    checked: &CheckedTuneParams,
    tuned: &Tuned,
    models: &[DetectorModel],
    cfg: &Config,
) -> Result<AlarmChoice, NightlyError> {
    let (params, budget) = (&job.params, job.page_budget);
    use crate::alarm::persistence::{choose, evaluate, with_detectors, Windows, CANDIDATES};
    let base_of = |c: &Candidate| crate::alarm::AlarmPolicy {
        score: c.score.clone(),
        alert: c.alert.clone(),
        score_rules: true,
        module_pss: None,
        persistence: CANDIDATES[0],
        pool_max_windows: 0,
        min_window_traces: cfg.min_window_traces,
        detector_quantile: None,
        detectors: Vec::new(),
        // Nothing is pooled here (`pool_max_windows` 0).
        custom: Default::default(),
        source: "pss-tune".into(),
    };
    let (train, val): (Vec<_>, Vec<_>) = l.data.windows.iter().partition(|w| w.window.start < tuned.split_at);
    let (mtrain, mval): (Vec<_>, Vec<_>) = l.module_windows.iter().partition(|w| w.window.start < tuned.split_at);
    let val_w = Windows { service: &val, modules: &mval };
    let detectors = |a: &[&LabeledWindow], b: &[&LabeledWindow]| {
        crate::detect::registry::fit_window_detectors(a, b, params.seed)
            .map_err(|e| NightlyError::Input(format!("window detectors for the alarm policy: {e}")))
    };

    let inc = &l.data.incidents;
    let lead = params.lead_seconds;
    // The inner search: the same search on the training part alone.
    let inner_data = TuneData { windows: train.iter().map(|w| (*w).clone()).collect(), incidents: inc.clone() };
    let inner = checked.fit(&inner_data, &mut |_, _| {}).ok();
    let (chosen_on, inner_tuned, inner_random, choose_from) = match &inner {
        Some(t) => ("nested", &t.tuned, &t.random_best, t.split_at),
        None => ("training", &tuned.tuned, &tuned.random_best, f64::NEG_INFINITY),
    };
    let (early, late): (Vec<_>, Vec<_>) = train.iter().copied().partition(|w| w.window.start < choose_from);
    let mlate: Vec<&LabeledWindow> = mtrain.iter().copied().filter(|w| w.window.start >= choose_from).collect();
    let inner_models = if early.is_empty() { models.to_vec() } else { detectors(&early, &late)? };
    let late_w = Windows { service: &late, modules: &mlate };
    let pick = |inner_c: &Candidate, c: &Candidate| {
        let choice = choose(&base_of(inner_c), &inner_models, late_w, inc, lead, budget);
        let base = base_of(c);
        let chosen = crate::alarm::AlarmPolicy {
            persistence: choice.persistence,
            score_rules: choice.score_rules,
            module_pss: choice.module_pss,
            ..with_detectors(&base, choice.detector_quantile, models)
        };
        (choice, evaluate(&chosen, val_w, inc, lead), base)
    };
    let (choice, validation, base) = pick(inner_tuned, &tuned.tuned);
    let (random_choice, validation_random, _) = pick(inner_random, &tuned.random_best);
    Ok(AlarmChoice {
        choice,
        validation,
        validation_eager: evaluate(&base, val_w, inc, lead),
        validation_random,
        random_choice,
        chosen_on,
    })
}

/// Why the job stopped.
#[derive(Debug, thiserror::Error)]
pub enum NightlyError {
    #[error("another pss-tune run holds the lock on {history} ({lock}: {reason}); try again when it has finished")]
    Locked { history: String, lock: String, reason: String },
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Tune(#[from] TuneError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Detectors(#[from] RegistryError),
    /// An output could not be written (not an input error).
    #[error("{path}: {message}")]
    Output { path: String, message: String },
}

fn output_err(path: &Path) -> impl FnOnce(String) -> NightlyError + '_ {
    move |message| NightlyError::Output { path: path.display().to_string(), message }
}

/// `path` with its file name's stem followed by `suffix`.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("pss-tuned");
    path.with_file_name(format!("{stem}{suffix}"))
}

/// Takes the lock beside the database: one run at a time per database.
fn lock(history: &Path) -> Result<File, NightlyError> {
    let lock_path = PathBuf::from(format!("{}.pss-tune.lock", history.display()));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| output_err(&lock_path)(e.to_string()))?;
    if let Err(e) = lock.try_lock() {
        return Err(NightlyError::Locked {
            history: history.display().to_string(),
            lock: lock_path.display().to_string(),
            reason: e.to_string(),
        });
    }
    Ok(lock)
}

/// What the job learns from: the services, the window length, the windows
/// and incidents.
struct Loaded {
    services: Vec<String>,
    window: f64,
    data: TuneData,
    /// The services' module windows (for the alarm policy's module rule).
    module_windows: Vec<crate::domain::LabeledWindow>,
}

/// Step 1: the services, the window length (asked, else the one the history
/// holds, else the configured one) and the labeled windows.
fn load(store: &dyn Store, job: &NightlyJob, cfg: &Config) -> Result<Loaded, NightlyError> {
    let services = if job.services.is_empty() { store.services()? } else { job.services.clone() };
    let window = crate::store::window_length(store, job.window_seconds, &services, cfg.window_seconds)?;
    let crate::store::LabeledHistory { windows, incidents } =
        crate::store::labeled_history(store, &services, window, job.from, job.to)?;
    if windows.is_empty() {
        return Err(NightlyError::Input(format!(
            "no {window}s windows for {} in {}: ingest with --window {} first, or pass the --window you ingested with",
            services.join(", "),
            job.history.display(),
            crate::timefmt::format_duration(window)
        )));
    }
    let mut module_windows = Vec::new();
    for s in &services {
        for m in store.window_modules(s, window)? {
            module_windows.extend(store.windows(s, Some(&m), window, job.from, job.to)?);
        }
    }
    Ok(Loaded { services, window, data: TuneData { windows, incidents }, module_windows })
}

/// The search hyperparameters with the configured bounds.
fn params_with_bounds(job: &NightlyJob, cfg: &Config) -> Result<TuneParams, NightlyError> {
    let mut params = job.params.clone();
    let mut space = Space::default();
    for (k, lo, hi) in &cfg.tune_bounds {
        space.set_bounds(k, *lo, *hi).map_err(|e| NightlyError::Input(format!("{}: {e}", cfg.source)))?;
    }
    params.space = space;
    Ok(params)
}

/// The custom metrics the windows were scored with, as search dimensions
/// (their weights are tuned with the five); none without custom metrics.
fn custom_dims(data: &TuneData) -> Vec<super::space::CustomDim> {
    let mut dims: Vec<super::space::CustomDim> = Vec::new();
    for lw in &data.windows {
        for c in &lw.window.custom {
            if !dims.iter().any(|d| d.code == c.code) {
                dims.push(super::space::CustomDim { code: c.code.clone(), weight: c.weight });
            }
        }
    }
    dims
}

/// Step 3: promote only when better than the active config on the same
/// validation windows (when asked to compare).
fn decide(
    job: &NightlyJob,
    out: &Path,
    checked: &CheckedTuneParams,
    data: &TuneData,
    tuned: &Tuned,
) -> Result<Promotion, NightlyError> {
    let new_val = tuned.metrics_tuned.validation_objective;
    let active_val = if job.promote_if_better && out.is_file() {
        let active = Config::from_file(out)?;
        Some(checked.validation_objective(data, &Candidate { score: active.score, alert: active.alert }))
    } else {
        None
    };
    Ok(Promotion {
        promote_if_better: job.promote_if_better,
        active_validation_objective: active_val,
        new_validation_objective: new_val,
        promoted: active_val.is_none_or(|a| new_val > a),
    })
}

impl Promotion {
    /// The decision as the card and the run row record it.
    fn to_json(&self) -> serde_json::Value {
        let mut decision = serde_json::json!({ "promote_if_better": self.promote_if_better });
        if let Some(a) = self.active_validation_objective {
            decision["active_validation_objective"] = a.into();
            decision["new_validation_objective"] = self.new_validation_objective.into();
        }
        decision["promoted"] = self.promoted.into();
        decision
    }
}

/// Step 4: the config (or candidate), its model card, the convergence plot
/// and the PR curve.
fn write_outputs(
    out: &Path,
    l: &Loaded,
    params: &TuneParams,
    tuned: &Tuned,
    promotion: &Promotion,
    verdict_text: &str,
    alarm: &AlarmChoice,
) -> Result<NightlyOutputs, NightlyError> {
    let objective = params.objective.name();
    let config = if promotion.promoted { out.to_path_buf() } else { sibling(out, ".candidate.toml") };
    let header = format!(
        "Tuned by pss-tune {} for {} on {} windows of {}s, objective {objective}, seed {}.\n{verdict_text}",
        env!("CARGO_PKG_VERSION"),
        l.services.join(", "),
        tuned.train_windows + tuned.validation_windows,
        l.window,
        params.seed,
    );
    let p = alarm.choice.persistence;
    let detector = match alarm.choice.detector_quantile {
        Some(q) => format!(
            "# Alarm when a window's detector score reaches this quantile of the promoted\n\
             # window detector's training scores (models/<service>/window-detector.json).\n\
             detector_quantile = {q}\n"
        ),
        None => "# No window detector rule: it did not pay on the training part.\n".into(),
    };
    let detector = if alarm.choice.score_rules {
        detector
    } else {
        detector + "# The PSS and sub-score thresholds above stay pypss's; they do not page.\nscore_rules = false\n"
    };
    let detector = match alarm.choice.module_pss {
        Some(t) => detector + &format!("# Page when a module's window PSS is below this.\nmodule_pss = {t}\n"),
        None => detector,
    };
    let text = config_toml(&tuned.tuned, l.window, &header)
        + &format!(
            "\n# The alarm policy, chosen on the training part (pss alarms replays it).\n[pss.alarm]\n\
             fire_after = {}\nfire_window = {}\nresolve_after = {}\n{detector}",
            p.fire_after, p.fire_window, p.resolve_after
        );
    std::fs::write(&config, text).map_err(|e| output_err(&config)(e.to_string()))?;
    let card_path = sibling(&config, ".card.json");
    let mut card = model_card(tuned, params, &l.services, l.window, verdict_text);
    card["decision"] = promotion.to_json();
    card["alarm_policy"] = serde_json::to_value(alarm).expect("plain struct");
    card["config"] = config.display().to_string().into();
    std::fs::write(&card_path, serde_json::to_string_pretty(&card).expect("a card serializes") + "\n")
        .map_err(|e| output_err(&card_path)(e.to_string()))?;
    let convergence = sibling(&config, ".convergence.svg");
    let pr_curve = sibling(&config, ".pr.svg");
    convergence_svg(tuned, objective, &convergence).map_err(|e| output_err(&convergence)(e.to_string()))?;
    pr_svg(tuned, &pr_curve).map_err(|e| output_err(&pr_curve)(e.to_string()))?;
    Ok(NightlyOutputs { config, card: card_path, convergence, pr_curve })
}

/// Runs the nightly job: lock, load, tune, decide, write, record the run,
/// retrain the detectors. `on_trial(i, value)` is called after each
/// evaluation.
pub fn run(
    job: &NightlyJob,
    cfg: &Config,
    on_trial: &mut dyn FnMut(usize, f64),
) -> Result<NightlyReport, NightlyError> {
    let started = crate::timefmt::now();
    if !job.history.is_file() {
        return Err(NightlyError::Input(format!(
            "{}: no such history database (create it with pss ingest)",
            job.history.display()
        )));
    }
    let _lock = lock(&job.history)?;
    let mut store = crate::store::open(&job.history)?;
    let l = load(&*store, job, cfg)?;
    let mut params = params_with_bounds(job, cfg)?;
    params.space.custom = custom_dims(&l.data);
    let checked = params.clone().check()?;
    let tuned = checked.fit(&l.data, on_trial)?;
    let label = if l.services.len() == 1 { l.services[0].clone() } else { "all".to_string() };
    let out = job.output.clone().unwrap_or_else(|| PathBuf::from("models").join(&label).join("pss-tuned.toml"));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| output_err(dir)(e.to_string()))?;
    }
    let promotion = decide(job, &out, &checked, &l.data, &tuned)?;
    let verdict_text = verdict(&tuned, params.objective.name());
    // The window detectors, fit once on the training part: the alarm
    // policy's choice judges with them and the registry registers them.
    let split = crate::eval::time_split(&l.data.windows, params.validation)
        .ok_or_else(|| NightlyError::Input("no windows to split".into()))?;
    let models = crate::detect::registry::fit_window_detectors(&split.train, &split.val, params.seed)?;
    let alarm = choose_alarm(&l, job, &checked, &tuned, &models, cfg)?;
    let outputs = write_outputs(&out, &l, &params, &tuned, &promotion, &verdict_text, &alarm)?;
    let finished = crate::timefmt::now();
    let run_id = store.record_run(&RunRecord {
        kind: "tune",
        started,
        finished,
        params: &serde_json::json!({ "services": l.services, "objective": params.objective.name(),
            "iterations": params.iterations, "seed": params.seed, "window_seconds": l.window,
            "validation": params.validation, "lead_seconds": params.lead_seconds }),
        metrics: &serde_json::json!({ "tuned": tuned.metrics_tuned, "default": tuned.metrics_default,
            "random_search": tuned.metrics_random, "decision": promotion.to_json(),
            "config": outputs.config.display().to_string() }),
    })?;
    let detectors = match &job.detectors_dir {
        Some(dir) => register_window_detectors(
            &mut *store,
            &split,
            &models,
            &l.services,
            params.seed,
            dir,
            &crate::timefmt::now,
        )?,
        None => Vec::new(),
    };
    let all: Vec<_> = l.data.windows.iter().collect();
    Ok(NightlyReport {
        unscorable: crate::eval::unscorable(&all, &l.data.incidents, params.lead_seconds),
        services: l.services,
        window_seconds: l.window,
        incidents: l.data.incidents.len(),
        tuned,
        promotion,
        outputs,
        run_id,
        detectors,
        seconds: finished - started,
        verdict: verdict_text,
        alarm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(history: PathBuf) -> NightlyJob {
        NightlyJob {
            history,
            services: Vec::new(),
            from: None,
            to: None,
            window_seconds: None,
            params: TuneParams::default(),
            output: None,
            promote_if_better: false,
            detectors_dir: None,
            page_budget: 5.0,
        }
    }

    #[test]
    fn a_missing_database_is_an_input_error_and_a_held_lock_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::default();
        let e = run(&job(dir.path().join("none.db")), &cfg, &mut |_, _| {}).unwrap_err();
        assert!(matches!(e, NightlyError::Input(ref m) if m.contains("no such history database")), "{e}");
        let db = dir.path().join("h.db");
        drop(crate::store::open(&db).unwrap());
        let held = lock(&db).unwrap();
        let e = run(&job(db.clone()), &cfg, &mut |_, _| {}).unwrap_err();
        assert!(matches!(e, NightlyError::Locked { .. }), "{e}");
        assert!(e.to_string().contains("another pss-tune run holds the lock"));
        drop(held);
        let e = run(&job(db), &cfg, &mut |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("no 60s windows"), "an empty history, the configured length: {e}");
    }

    #[test]
    fn siblings_share_the_stem() {
        let p = Path::new("models/all/pss-tuned.toml");
        assert_eq!(sibling(p, ".card.json"), Path::new("models/all/pss-tuned.card.json"));
    }
}
