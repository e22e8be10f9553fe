//! `pss-tune`: the nightly job. Bayesian optimization of the score's weights
//! and thresholds against labeled incidents in the history database.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};

use super::{print, CmdResult, Failure};
use crate::config::Config;
use crate::store::{SqliteStore, Store};
use crate::tune::output::{config_toml, convergence_svg, model_card, pr_svg, verdict};
use crate::tune::space::{Candidate, Space};
use crate::tune::tuner::SplitMetrics;
use crate::tune::{Objective, TuneData, TuneError, TuneParams};

/// `--objective` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectiveArg {
    /// Window F1 of alarms against labeled windows.
    F1,
    /// Incident recall with a false-alarms-per-day penalty (--fa-weight).
    Incident,
    /// Average precision of the PSS as a ranking of labeled windows.
    AucPr,
    /// pypss 1.3.1's own loss with its fault injector, on --baseline FILE (no labels needed).
    Pypss,
}

#[derive(Parser, Debug)]
#[command(
    name = "pss-tune",
    version,
    about = "Tune the Program Stability Score against labeled incidents (the nightly job)",
    long_about = "Searches pypss's weights, sensitivities and thresholds, the per-metric alert thresholds and \
alert_threshold_pss by Bayesian optimization (Gaussian process, expected improvement), so that an alarm \
(PSS below alert_threshold_pss, or a sub-score below its alert threshold) means an incident. Trains on the \
earlier part of the history, validates on the later part, and compares with the defaults and with random \
search of the same budget.\n\nWrites the tuned config (loadable by `pss analyze --config` and by pypss), a \
model card, a convergence plot and a PR curve, and records the run in the database.",
    after_help = "Exit codes: 0 success; 2 usage or input error (no windows, no incidents, bad arguments); \
75 another pss-tune run holds the lock on this database.\n\nExample (cron):\n  \
pss-tune --history /var/lib/pss/history.db --service checkout --window 5m --promote-if-better"
)]
pub struct TuneArgs {
    /// History database (from `pss ingest` and `pss incidents import`).
    #[arg(long, value_name = "DB", required_unless_present = "baseline")]
    pub history: Option<PathBuf>,
    /// Healthy trace file for --objective pypss (as `pypss tune --baseline`).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<String>,
    /// Service to tune (repeatable; default: every service in the database).
    #[arg(long)]
    pub service: Vec<String>,
    /// Only windows from this time (RFC 3339 or epoch seconds).
    #[arg(long)]
    pub from: Option<String>,
    /// Only windows before this time.
    #[arg(long)]
    pub to: Option<String>,
    /// Window length to tune on (as ingested; default: config `window`, else 60s).
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,
    /// Fraction of the time range, the latest part, held out for validation.
    #[arg(long, default_value_t = 0.3)]
    pub validation: f64,
    /// An alarm this long before an incident's start still catches it.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub lead: String,
    /// What to maximize on the training part.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::F1)]
    pub objective: ObjectiveArg,
    /// For --objective incident: cost of one false alarm per day.
    #[arg(long, default_value_t = 0.02)]
    pub fa_weight: f64,
    /// Evaluations (initial design included): half for the score's
    /// parameters (each tried with every PSS-only cut), half for the
    /// thresholds. 200 take ~2 s on 2,600 windows and ~15 s on 60,000;
    /// with 50 the search often ends behind random search.
    #[arg(long, default_value_t = 200)]
    pub iterations: usize,
    /// Random seed: the same seed and data give the same result.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Where to write the tuned config (default: models/<service>/pss-tuned.toml);
    /// the model card and plots go beside it.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace the existing tuned config only when the new one scores better on
    /// the same validation windows (else write `<name>.candidate.toml`).
    #[arg(long)]
    pub promote_if_better: bool,
    /// Do not train the window detectors (by default each service's extended
    /// isolation forest is retrained on the training part and promoted to
    /// models/<service>/window-detector.json when it beats the active one on
    /// validation AUC-PR).
    #[arg(long)]
    pub no_detectors: bool,
    /// Folder for detector files.
    #[arg(long, default_value = "models", value_name = "DIR")]
    pub models_dir: PathBuf,
    /// Configuration file (`[pss.tune_bounds]` sets search bounds).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Exit code when another run holds the lock.
pub const EXIT_LOCKED: i32 = 75;

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("pss-tuned");
    path.with_file_name(format!("{stem}{suffix}"))
}

fn candidate_from(cfg: &Config) -> Candidate {
    Candidate { score: cfg.score.clone(), alert: cfg.alert.clone() }
}

fn table(rows: &[(&str, &SplitMetrics)]) -> String {
    let mut out = format!("{:<22}", "");
    for split in ["train", "validation"] {
        out += &format!(" | {:^29}", split);
    }
    out += &format!("\n{:<22}", "");
    for _ in 0..2 {
        out += " |";
        for (name, _) in rows {
            out += &format!(" {name:>9}");
        }
    }
    out += &format!("\n{}\n", "-".repeat(22 + 2 * 32));
    type Get = fn(&SplitMetrics, bool) -> String;
    let lines: [(&str, Get); 9] = [
        ("objective", |s, v| format!("{:.3}", if v { s.validation_objective } else { s.train_objective })),
        ("F1", |s, v| format!("{:.3}", if v { s.validation.f1 } else { s.train.f1 })),
        ("precision", |s, v| format!("{:.3}", if v { s.validation.precision } else { s.train.precision })),
        ("recall", |s, v| format!("{:.3}", if v { s.validation.recall } else { s.train.recall })),
        ("AUC-PR", |s, v| format!("{:.3}", if v { s.validation.auc_pr } else { s.train.auc_pr })),
        ("incidents caught", |s, v| {
            let x = if v { s.validation } else { s.train };
            format!("{}/{}", x.incidents_caught, x.incidents)
        }),
        ("false alarms / day", |s, v| format!("{:.1}", if v { s.validation } else { s.train }.false_alarms_per_day)),
        ("median delay (min)", |s, v| match (if v { s.validation } else { s.train }).median_delay_s {
            Some(d) => format!("{:.1}", d / 60.0),
            None => "-".into(),
        }),
        ("alarms", |s, v| format!("{}", if v { s.validation } else { s.train }.alarms)),
    ];
    for (label, get) in lines {
        out += &format!("{label:<22}");
        for v in [false, true] {
            out += " |";
            for (_, s) in rows {
                out += &format!(" {:>9}", get(s, v));
            }
        }
        out.push('\n');
    }
    out
}

/// Runs `pss-tune`.
pub fn run(a: TuneArgs) -> CmdResult {
    let started = crate::store::sqlite::now();
    let cfg = Config::discover(a.config.as_deref())?;
    if a.objective == ObjectiveArg::Pypss {
        return run_pypss(&a, &cfg, started);
    }
    if a.baseline.is_some() {
        return Err(Failure::input("--baseline goes with --objective pypss"));
    }
    let history = a.history.clone().ok_or_else(|| Failure::input("--history DB is required"))?;
    let window = super::window_arg(&a.window, &cfg)?;
    let lead = super::duration_arg("lead", &a.lead, false)?;
    if !history.is_file() {
        return Err(Failure::input(format!(
            "{}: no such history database (create it with pss ingest)",
            history.display()
        )));
    }
    // One run at a time per database: a lock file beside it.
    let lock_path = PathBuf::from(format!("{}.pss-tune.lock", history.display()));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Failure::input(format!("{}: {e}", lock_path.display())))?;
    if let Err(e) = lock.try_lock() {
        return Err(Failure {
            code: EXIT_LOCKED,
            message: format!(
                "another pss-tune run holds the lock on {} ({}: {e}); try again when it has finished",
                history.display(),
                lock_path.display()
            ),
        });
    }
    let mut store = SqliteStore::open(&history)?;
    let services = if a.service.is_empty() { store.services()? } else { a.service.clone() };
    let from = super::history_time_arg("from", &a.from)?;
    let to = super::history_time_arg("to", &a.to)?;
    let mut windows = Vec::new();
    for s in &services {
        windows.extend(store.windows(s, None, window, from, to)?);
    }
    let mut incidents = Vec::new();
    for s in &services {
        incidents.extend(store.incidents(Some(s))?);
    }
    if windows.is_empty() {
        return Err(Failure::input(format!(
            "no {window}s windows for {} in {}: ingest with --window {} first, or pass the --window you ingested with",
            services.join(", "),
            history.display(),
            crate::timefmt::format_duration(window)
        )));
    }
    let mut space = Space::default();
    for (k, lo, hi) in &cfg.tune_bounds {
        space.set_bounds(k, *lo, *hi).map_err(|e| Failure::input(format!("{}: {e}", cfg.source)))?;
    }
    let objective = match a.objective {
        ObjectiveArg::F1 => Objective::F1,
        ObjectiveArg::AucPr => Objective::AucPr,
        ObjectiveArg::Incident => Objective::Incident { fa_weight: a.fa_weight },
        ObjectiveArg::Pypss => unreachable!("handled above"),
    };
    let params = TuneParams {
        objective,
        iterations: a.iterations,
        seed: a.seed,
        validation: a.validation,
        lead_seconds: lead,
        space,
    };
    let tp = params.clone().check().map_err(|e: TuneError| Failure::input(e.to_string()))?;
    let data = TuneData { windows, incidents };
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(a.iterations as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} evaluations, best {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut best = f64::NEG_INFINITY;
    let tuned = tp
        .fit(&data, &mut |_, v| {
            best = best.max(v);
            bar.set_message(format!("{best:.3}"));
            bar.inc(1);
        })
        .map_err(|e| Failure::input(e.to_string()))?;
    bar.finish_and_clear();

    // Outputs.
    let label = if services.len() == 1 { services[0].clone() } else { "all".to_string() };
    let out = a.output.clone().unwrap_or_else(|| PathBuf::from("models").join(&label).join("pss-tuned.toml"));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Failure::input(format!("{}: {e}", dir.display())))?;
    }
    let new_val = tuned.metrics_tuned.validation_objective;
    let mut decision = serde_json::json!({ "promote_if_better": a.promote_if_better });
    let promote = if a.promote_if_better && out.is_file() {
        let active = Config::from_file(&out)?;
        let active_val = tp.validation_objective(&data, &candidate_from(&active));
        decision["active_validation_objective"] = active_val.into();
        decision["new_validation_objective"] = new_val.into();
        new_val > active_val
    } else {
        true
    };
    decision["promoted"] = promote.into();
    let config_path = if promote { out.clone() } else { sibling(&out, ".candidate.toml") };
    let verdict_text = verdict(&tuned, objective.name());
    let header = format!(
        "Tuned by pss-tune {} for {} on {} windows of {}s, objective {}, seed {}.\n{}",
        env!("CARGO_PKG_VERSION"),
        services.join(", "),
        tuned.train_windows + tuned.validation_windows,
        window,
        objective.name(),
        a.seed,
        verdict_text
    );
    std::fs::write(&config_path, config_toml(&tuned.tuned, window, &header))
        .map_err(|e| Failure::input(format!("{}: {e}", config_path.display())))?;
    let card_path = sibling(&config_path, ".card.json");
    let mut card = model_card(&tuned, &params, &services, window, &verdict_text);
    card["decision"] = decision.clone();
    card["config"] = config_path.display().to_string().into();
    std::fs::write(&card_path, serde_json::to_string_pretty(&card).expect("serializable") + "\n")
        .map_err(|e| Failure::input(format!("{}: {e}", card_path.display())))?;
    let conv_path = sibling(&config_path, ".convergence.svg");
    let pr_path = sibling(&config_path, ".pr.svg");
    convergence_svg(&tuned, objective.name(), &conv_path)
        .map_err(|e| Failure::input(format!("{}: {e}", conv_path.display())))?;
    pr_svg(&tuned, &pr_path).map_err(|e| Failure::input(format!("{}: {e}", pr_path.display())))?;
    let finished = crate::store::sqlite::now();
    let run_id = store.record_run(
        "tune",
        started,
        finished,
        &serde_json::json!({ "services": services, "objective": objective.name(), "iterations": a.iterations,
            "seed": a.seed, "window_seconds": window, "validation": a.validation, "lead_seconds": lead }),
        &serde_json::json!({ "tuned": tuned.metrics_tuned, "default": tuned.metrics_default,
            "random_search": tuned.metrics_random, "decision": decision, "config": config_path.display().to_string() }),
    )?;

    let detectors = if a.no_detectors {
        Vec::new()
    } else {
        train_detectors(&mut store, &data, &services, a.validation, a.seed, &a.models_dir)?
    };

    let mut text = format!(
        "pss-tune: {} ({} train + {} validation windows of {}s, {} incidents, {} evaluations, {:.1}s)\n\n",
        services.join(", "),
        tuned.train_windows,
        tuned.validation_windows,
        window,
        data.incidents.len(),
        a.iterations,
        finished - started
    );
    text += &table(&[
        ("default", &tuned.metrics_default),
        ("tuned", &tuned.metrics_tuned),
        ("random", &tuned.metrics_random),
    ]);
    text += &format!("\n{verdict_text}\n");
    let unscorable = crate::tune::tuner::unscorable(&data.windows.iter().collect::<Vec<_>>(), &data.incidents, lead);
    if !unscorable.is_empty() {
        let ids: Vec<String> = unscorable.into_iter().map(|i| i.id).collect();
        text += &format!("{}\n", super::unscorable_note(&ids));
    }
    if a.promote_if_better {
        match decision.get("active_validation_objective") {
            Some(active) => {
                text += &format!(
                    "{}: validation {} {:.3} (new) vs {:.3} (active).\n",
                    if promote { "Promoted" } else { "Kept the active config" },
                    objective.name(),
                    new_val,
                    active.as_f64().unwrap_or(0.0)
                )
            }
            None => text += "No active config yet: promoted.\n",
        }
    }
    if !detectors.is_empty() {
        // Column widths from the content: paths vary with the service names.
        let sw = detectors.iter().map(|d| d.service.chars().count()).max().unwrap_or(0).max("service".len());
        let paths: Vec<String> = detectors.iter().map(|d| d.path.display().to_string()).collect();
        let pw = paths.iter().map(|p| p.chars().count()).max().unwrap_or(0).max("window detector".len());
        text += &format!(
            "\n{:<sw$}  {:<pw$}  {:>10}  {:>10}  {}\n",
            "service", "window detector", "AUC-PR new", "active", "decision"
        );
        for (d, path) in detectors.iter().zip(&paths) {
            text += &format!(
                "{:<sw$}  {:<pw$}  {:>10.3}  {:>10}  {}\n",
                d.service,
                path,
                d.new_ap,
                d.active_ap.map_or("-".to_string(), |v| format!("{v:.3}")),
                if d.promoted { "promoted" } else { "kept the active one" }
            );
        }
    }
    text += &format!(
        "\nconfig:      {}\nmodel card:  {}\nconvergence: {}\nPR curve:    {}\nrun:         #{run_id} in {}\n",
        config_path.display(),
        card_path.display(),
        conv_path.display(),
        pr_path.display(),
        history.display()
    );
    print(&text)
}

/// One service's nightly detector outcome.
struct DetectorOutcome {
    service: String,
    path: PathBuf,
    new_ap: f64,
    active_ap: Option<f64>,
    promoted: bool,
}

/// Kind under which window detectors are registered in the models table.
const DETECTOR_KIND: &str = "extended-isolation-forest-window";

/// Trains each service's window detector on the training part of the split,
/// compares it with the active one on the validation part, and promotes it
/// (copies it to `<dir>/<service>/window-detector.json`) only when better.
fn train_detectors(
    store: &mut SqliteStore,
    data: &TuneData,
    services: &[String],
    validation: f64,
    seed: u64,
    dir: &Path,
) -> Result<Vec<DetectorOutcome>, Failure> {
    use crate::detect::evaluate::{forest_scores, window_average_precision};
    use crate::detect::IsolationForestParams;
    let Some(split) = crate::tune::tuner::time_split(&data.windows, validation) else { return Ok(Vec::new()) };
    let params = IsolationForestParams { extended: true, contamination: Some(0.05), seed, ..Default::default() };
    let (_, _, models) = forest_scores(&split.train, &split.val, &params).map_err(|e| Failure::input(e.to_string()))?;
    let mut out = Vec::new();
    for s in services {
        let started = crate::store::sqlite::now();
        let Some(model) = models.iter().find(|m| &m.service == s) else { continue };
        let val: Vec<&crate::store::LabeledWindow> =
            split.val.iter().copied().filter(|w| &w.window.service == s).collect();
        let new_ap = window_average_precision(model, &val);
        let active = store.active_model(s, DETECTOR_KIND)?;
        let active_ap = match &active {
            Some((_, path, _)) => match super::detect::load_model(Path::new(path)) {
                Ok(m) => Some(window_average_precision(&m, &val)),
                Err(_) => None, // the active file is gone or unreadable: replace it
            },
            None => None,
        };
        let promoted = active_ap.is_none_or(|a| new_ap > a);
        let version = store.next_model_version(s, DETECTOR_KIND)?;
        let sdir = dir.join(s);
        std::fs::create_dir_all(&sdir).map_err(|e| Failure::input(format!("{}: {e}", sdir.display())))?;
        let mut model = model.clone();
        model.metrics =
            serde_json::json!({ "validation_average_precision": new_ap, "validation_from": split.split_at });
        let json = serde_json::to_string(&model).expect("serializable") + "\n";
        let path = sdir.join(format!("{DETECTOR_KIND}-v{version}.json"));
        std::fs::write(&path, &json).map_err(|e| Failure::input(format!("{}: {e}", path.display())))?;
        let card = serde_json::json!({ "promoted": promoted, "validation_average_precision": new_ap,
            "active_validation_average_precision": active_ap, "rows": model.rows, "seed": seed,
            "window_seconds": model.window_seconds });
        // The registry keeps an absolute path: the next night may run elsewhere.
        let abs = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        store.register_model(s, DETECTOR_KIND, &abs.display().to_string(), &card)?;
        if promoted {
            let active_path = sdir.join("window-detector.json");
            std::fs::write(&active_path, &json)
                .map_err(|e| Failure::input(format!("{}: {e}", active_path.display())))?;
        }
        store.record_run(
            "detect-train",
            started,
            crate::store::sqlite::now(),
            &serde_json::json!({ "service": s, "level": "window", "kind": model.kind, "seed": seed, "by": "pss-tune",
                "from": model.data_from, "to": model.data_to }),
            &card,
        )?;
        out.push(DetectorOutcome { service: s.clone(), path, new_ap, active_ap, promoted });
    }
    Ok(out)
}

/// `--objective pypss --baseline FILE`: pypss's own tuning, seeded and faster.
fn run_pypss(a: &TuneArgs, cfg: &Config, started: f64) -> CmdResult {
    use crate::tune::bayes::{maximize, random_search};
    use crate::tune::pypss_loss::{fault_sets, loss, pypss_space, LossReport};
    let baseline = a
        .baseline
        .as_ref()
        .ok_or_else(|| Failure::input("--objective pypss needs --baseline FILE (a healthy trace file)"))?;
    if a.iterations < 2 {
        return Err(Failure::input("--iterations must be at least 2"));
    }
    let (cols, _) = crate::trace::read_all(
        &[crate::trace::Source::from_arg(baseline)],
        &cfg.unknown_module,
        crate::trace::ColumnOptions { timestamps: false, names: false, memory_diff: false },
    )?;
    if cols.len() < 2 {
        return Err(Failure::input(format!("{baseline}: fewer than two traces; cannot tune")));
    }
    let sets = fault_sets(&cols, a.seed);
    let space = pypss_space();
    let to_params = |u: &[f64]| {
        let c = space.decode(u);
        with_pypss_tunes(&cfg.score, &c.score)
    };
    let mut f = |u: &[f64]| -loss(&sets, &to_params(u));
    let default_c = Candidate { score: cfg.score.clone(), alert: cfg.alert.clone() };
    let start = vec![space.encode(&default_c)];
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(a.iterations as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let bo = maximize(space.len(), a.iterations, &start, a.seed, &mut f, &mut |_, _| bar.inc(1));
    bar.finish_and_clear();
    let rs = random_search(space.len(), a.iterations, &start, a.seed, &mut f);
    let best =
        |t: &[crate::tune::bayes::Trial]| t.iter().fold(&t[0], |x, y| if y.value > x.value { y } else { x }).x.clone();
    let tuned = to_params(&best(&bo));
    let report = LossReport {
        default: loss(&sets, &cfg.score),
        tuned: loss(&sets, &tuned),
        random_search: loss(&sets, &to_params(&best(&rs))),
    };
    let out = a.output.clone().unwrap_or_else(|| PathBuf::from("models").join("baseline").join("pss-tuned.toml"));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Failure::input(format!("{}: {e}", dir.display())))?;
    }
    let cand = Candidate { score: tuned.clone(), alert: cfg.alert.clone() };
    let header = format!(
        "Tuned by pss-tune {} with pypss's objective on {baseline} ({} traces), seed {}: loss {:.1} (defaults {:.1}).",
        env!("CARGO_PKG_VERSION"),
        sets.traces,
        a.seed,
        report.tuned,
        report.default
    );
    std::fs::write(&out, config_toml(&cand, cfg.window_seconds, &header))
        .map_err(|e| Failure::input(format!("{}: {e}", out.display())))?;
    let card_path = sibling(&out, ".card.json");
    let card = serde_json::json!({
        "schema_version": crate::tune::output::CARD_SCHEMA_VERSION,
        "kind": "pss-tuned-config",
        "pss_version": env!("CARGO_PKG_VERSION"),
        "objective": "pypss",
        "baseline": baseline,
        "traces": sets.traces,
        "iterations": a.iterations,
        "seed": a.seed,
        "bounds": space.dims,
        "parameters": { "tuned": tuned, "default": cfg.score },
        "loss": report,
        "convergence": {
            "bayesian": bo.iter().scan(f64::INFINITY, |m, t| { *m = m.min(-t.value); Some(*m) }).collect::<Vec<_>>(),
            "random_search": rs.iter().scan(f64::INFINITY, |m, t| { *m = m.min(-t.value); Some(*m) }).collect::<Vec<_>>(),
        },
    });
    std::fs::write(&card_path, serde_json::to_string_pretty(&card).expect("serializable") + "\n")
        .map_err(|e| Failure::input(format!("{}: {e}", card_path.display())))?;
    let secs = crate::store::sqlite::now() - started;
    print(&format!(
        "pss-tune (pypss objective): {} baseline traces, 4 injected faults, {} evaluations, {secs:.2}s\n\n\
         {:<16} {:>12}\n{:<16} {:>12.2}\n{:<16} {:>12.2}\n{:<16} {:>12.2}\n\n\
         alpha {:.2}, beta {:.2}, gamma {:.2}, mem_spike_threshold_ratio {:.2}, concurrency_wait_threshold {:.4}\n\
         weights ts {:.2} ms {:.2} ev {:.2} be {:.2} cc {:.2}\n\nconfig:     {}\nmodel card: {}\n",
        sets.traces,
        a.iterations,
        "",
        "pypss loss",
        "default",
        report.default,
        "tuned",
        report.tuned,
        "random search",
        report.random_search,
        tuned.alpha,
        tuned.beta,
        tuned.gamma,
        tuned.mem_spike_threshold_ratio,
        tuned.concurrency_wait_threshold,
        tuned.w_ts,
        tuned.w_ms,
        tuned.w_ev,
        tuned.w_be,
        tuned.w_cc,
        out.display(),
        card_path.display()
    ))
}

/// The configured parameters with the ten that pypss tunes taken from `t`.
fn with_pypss_tunes(base: &crate::config::ScoreParams, t: &crate::config::ScoreParams) -> crate::config::ScoreParams {
    crate::config::ScoreParams {
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
