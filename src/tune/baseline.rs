//! `pss-tune --objective pypss --baseline FILE` as one library call: pypss's
//! own tuning (its loss over injected faults, no labels needed), seeded, by
//! Bayesian optimization, with random search beside it, written as a config
//! and a model card.

use std::path::{Path, PathBuf};

use super::bayes::{maximize, random_search, Trial};
use super::output::{config_toml, CARD_SCHEMA_VERSION};
use super::pypss_loss::{fault_sets, loss, pypss_space, LossReport};
use super::space::Candidate;
use crate::config::{Config, ScoreParams};
use crate::trace::{ColumnOptions, ReadError, Source};

/// What to run.
#[derive(Debug, Clone)]
pub struct BaselineJob {
    /// A healthy trace file.
    pub baseline: String,
    pub iterations: usize,
    pub seed: u64,
    /// The tuned config's path (default `models/baseline/pss-tuned.toml`).
    pub output: Option<PathBuf>,
    /// How the config is written.
    pub style: ConfigStyle,
}

/// How the tuned config is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConfigStyle {
    /// pss's: the tuned keys under `[pypss]`, with a header, and a model card beside it.
    #[default]
    Pss,
    /// pypss's (`pypss tune`): every pypss key, in pypss's order, the
    /// configuration's values with the tuned ones; no card.
    PypssFull,
}

/// pypss 1.3.1's defaults as pypss writes them (`PSSConfig().save()`).
const PYPSS_DEFAULTS: &str = include_str!("pypss_defaults.toml");

/// The whole pypss configuration as `pypss tune` writes it: pypss's keys in
/// its order, each from the configuration in force where it sets it,
/// pypss's tuned parameters from `tuned`.
pub fn pypss_config_toml(cfg: &Config, tuned: &ScoreParams) -> String {
    let mut doc: toml::Table = toml::from_str(PYPSS_DEFAULTS).expect("pypss's defaults are TOML");
    let mut overlay = toml::Table::new();
    let mut add = |v: Result<toml::Value, toml::ser::Error>| {
        if let Ok(toml::Value::Table(t)) = v {
            overlay.extend(t);
        }
    };
    add(toml::Value::try_from(&cfg.pypss));
    add(toml::Value::try_from(&cfg.keys));
    add(toml::Value::try_from(&cfg.advisor));
    add(toml::Value::try_from(tuned));
    if let Some(toml::Value::Table(p)) = doc.get_mut("pypss") {
        for (k, v) in p.iter_mut() {
            let Some(new) = overlay.get(k) else { continue };
            *v = match (&*v, new) {
                // pypss's integer keys stay integers.
                (toml::Value::Integer(_), toml::Value::Float(f)) if f.fract() == 0.0 => toml::Value::Integer(*f as i64),
                _ => new.clone(),
            };
        }
    }
    toml::to_string(&doc).expect("a TOML table serializes")
}

/// What it did.
#[derive(Debug, Clone)]
pub struct BaselineReport {
    pub traces: usize,
    pub iterations: usize,
    pub loss: LossReport,
    pub tuned: ScoreParams,
    pub config: PathBuf,
    /// The model card (pss's style only).
    pub card: Option<PathBuf>,
    pub seconds: f64,
}

/// Why it stopped.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{path}: {message}")]
    Output { path: String, message: String },
}

fn output_err(path: &Path) -> impl FnOnce(std::io::Error) -> BaselineError + '_ {
    move |e| BaselineError::Output { path: path.display().to_string(), message: e.to_string() }
}

/// The configured parameters with the ten that pypss tunes taken from `t`.
fn with_pypss_tunes(base: &ScoreParams, t: &ScoreParams) -> ScoreParams {
    ScoreParams {
        w_ts: t.w_ts,
        w_ms: t.w_ms,
        w_ev: t.w_ev,
        w_be: t.w_be,
        w_cc: t.w_cc,
        alpha: t.alpha,
        beta: t.beta,
        gamma: t.gamma,
        mem_spike_threshold_ratio: t.mem_spike_threshold_ratio,
        concurrency_wait_threshold: t.concurrency_wait_threshold,
        ..base.clone()
    }
}

/// The running minimum of the loss (the trials maximize its negative).
fn best_so_far(trials: &[Trial]) -> Vec<f64> {
    trials
        .iter()
        .scan(f64::INFINITY, |m, t| {
            *m = m.min(-t.value);
            Some(*m)
        })
        .collect()
}

/// Runs pypss's tuning on a baseline file. `on_trial` is called after each
/// Bayesian-optimization evaluation.
pub fn run(
    job: &BaselineJob,
    cfg: &Config,
    on_trial: &mut dyn FnMut(usize, f64),
) -> Result<BaselineReport, BaselineError> {
    let started = crate::timefmt::now();
    if job.iterations < 2 {
        return Err(BaselineError::Input("--iterations must be at least 2".into()));
    }
    let keep = ColumnOptions { timestamps: false, names: false, memory_diff: false };
    let (cols, _) = crate::trace::read_all(&[Source::from_arg(&job.baseline)], &cfg.unknown_module, keep)?;
    if cols.len() < 2 {
        return Err(BaselineError::Input(format!("{}: fewer than two traces; cannot tune", job.baseline)));
    }
    let sets = fault_sets(&cols, job.seed);
    let space = pypss_space();
    let to_params = |u: &[f64]| with_pypss_tunes(&cfg.score, &space.decode(u).score);
    let mut f = |u: &[f64]| -loss(&sets, &to_params(u));
    let start = vec![space.encode(&Candidate { score: cfg.score.clone(), alert: cfg.alert.clone() })];
    let bo = maximize(space.len(), job.iterations, &start, job.seed, &mut f, on_trial);
    let rs = random_search(space.len(), job.iterations, &start, job.seed, &mut f);
    let best = |t: &[Trial]| t.iter().fold(&t[0], |x, y| if y.value > x.value { y } else { x }).x.clone();
    let tuned = to_params(&best(&bo));
    let report = LossReport {
        default: loss(&sets, &cfg.score),
        tuned: loss(&sets, &tuned),
        random_search: loss(&sets, &to_params(&best(&rs))),
    };
    let out = job.output.clone().unwrap_or_else(|| PathBuf::from("models").join("baseline").join("pss-tuned.toml"));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(output_err(dir))?;
    }
    let cand = Candidate { score: tuned.clone(), alert: cfg.alert.clone() };
    let header = format!(
        "Tuned by pss-tune {} with pypss's objective on {} ({} traces), seed {}: loss {:.1} (defaults {:.1}).",
        env!("CARGO_PKG_VERSION"),
        job.baseline,
        sets.traces,
        job.seed,
        report.tuned,
        report.default
    );
    if job.style == ConfigStyle::PypssFull {
        std::fs::write(&out, pypss_config_toml(cfg, &tuned)).map_err(output_err(&out))?;
        return Ok(BaselineReport {
            traces: sets.traces,
            iterations: job.iterations,
            loss: report,
            tuned,
            config: out,
            card: None,
            seconds: crate::timefmt::now() - started,
        });
    }
    std::fs::write(&out, config_toml(&cand, cfg.window_seconds, &header)).map_err(output_err(&out))?;
    let card_path = super::nightly::sibling(&out, ".card.json");
    let card = serde_json::json!({
        "schema_version": CARD_SCHEMA_VERSION,
        "kind": "pss-tuned-config",
        "pss_version": env!("CARGO_PKG_VERSION"),
        "objective": "pypss",
        "baseline": job.baseline,
        "traces": sets.traces,
        "iterations": job.iterations,
        "seed": job.seed,
        "bounds": space.dims,
        "parameters": { "tuned": tuned, "default": cfg.score },
        "loss": report,
        "convergence": { "bayesian": best_so_far(&bo), "random_search": best_so_far(&rs) },
    });
    std::fs::write(&card_path, serde_json::to_string_pretty(&card).expect("a card serializes") + "\n")
        .map_err(output_err(&card_path))?;
    Ok(BaselineReport {
        traces: sets.traces,
        iterations: job.iterations,
        loss: report,
        tuned,
        config: out,
        card: Some(card_path),
        seconds: crate::timefmt::now() - started,
    })
}
