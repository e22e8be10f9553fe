//! `pss detect train`, `score` and `patterns`.

use super::{load_model, EvalFormat, PatternsArgs, ScoreArgs, ScoreFormat, TrainArgs};
use crate::cli::{history_time_arg, print, read_window, CmdResult, Failure};
use crate::config::Config;
use crate::detect::iforest::IsolationForestParams;
use crate::detect::model::Level;
use crate::detect::patterns::{service_patterns, PatternParams};
use crate::detect::train::{level_name, score as score_with, train as train_detector, ScoreInput, Scored, TrainJob};
use crate::timefmt::{format_duration, format_time};

pub(super) fn train(a: TrainArgs) -> CmdResult {
    let src = &a.source;
    let mut store = crate::store::open(&src.history)?;
    let job = TrainJob {
        service: src.service.clone(),
        level: a.level,
        window_seconds: read_window(&src.window, &Config::default(), &*store, std::slice::from_ref(&src.service))?,
        from: history_time_arg("from", &src.from)?,
        to: history_time_arg("to", &src.to)?,
        params: IsolationForestParams {
            n_estimators: a.n_estimators,
            max_samples: a.max_samples,
            contamination: Some(a.contamination),
            extended: a.extended,
            seed: a.seed,
            bounded: false,
        },
        output: a.output.clone(),
    };
    let r = train_detector(&mut *store, &job, &crate::timefmt::now)?;
    let m = &r.model;
    print(&format!(
        "trained {} ({} level) on {} rows of '{}': {} flagged at contamination {}{}\nmodel: {} (version {})\n",
        m.kind,
        level_name(a.level),
        m.rows,
        src.service,
        r.flagged,
        a.contamination,
        match m.metrics.get("training_roc_auc") {
            Some(v) => format!("; ROC AUC against incidents {:.3}", v.as_f64().unwrap_or(0.0)),
            None => String::new(),
        },
        r.path.display(),
        r.version
    ))
}

pub(super) fn score(a: ScoreArgs) -> CmdResult {
    let model = load_model(&a.model)?;
    let from = history_time_arg("from", &a.from)?;
    let to = history_time_arg("to", &a.to)?;
    let items = match (model.level, &a.trace_file, &a.history) {
        (Level::Trace, Some(f), _) => {
            let keep = crate::trace::ColumnOptions { timestamps: true, names: true, memory_diff: true };
            let (cols, _) = crate::trace::read_all(&[crate::trace::Source::from_arg(f)], "unknown", keep)?;
            score_with(&model, ScoreInput::Traces(&cols))?
        }
        (_, _, Some(h)) => {
            let store = crate::store::open(h)?;
            score_with(&model, ScoreInput::History { store: &*store, from, to })?
        }
        (Level::Window, _, None) => {
            return Err(Failure::input("a window-level model scores --history DB (windows are in the history)"))
        }
        (Level::Trace, None, None) => return Err(Failure::input("give --trace-file FILE or --history DB")),
    };
    print(&match a.format {
        ScoreFormat::Json => serde_json::to_string_pretty(&items).expect("scores serialize") + "\n",
        ScoreFormat::Csv => scores_csv(&items),
        ScoreFormat::Text => {
            let flagged = items.iter().filter(|i| i.flagged).count();
            let head =
                format!("{} scored, {flagged} flagged by {} ({})\n\n", items.len(), a.model.display(), model.kind);
            head + &scores_table(&items, a.top)
        }
    })
}

fn scores_csv(items: &[Scored]) -> String {
    let mut out = String::from("at,what,score,flagged,incident\n");
    for i in items {
        out += &format!(
            "{},{},{},{},{}\n",
            i.at,
            i.what.replace(',', ";"),
            i.score,
            i.flagged,
            i.incident.as_deref().unwrap_or("")
        );
    }
    out
}

/// The `top` highest scores, highest first.
fn scores_table(items: &[Scored], top: usize) -> String {
    let mut out = format!("{:<21} {:>7}  {:<7} {:<12} {}\n", "AT", "SCORE", "FLAGGED", "INCIDENT", "WHAT");
    let mut order: Vec<&Scored> = items.iter().collect();
    order.sort_by(|x, y| y.score.total_cmp(&x.score));
    for i in order.iter().take(top) {
        out += &format!(
            "{:<21} {:>7.3}  {:<7} {:<12} {}\n",
            if i.at.is_finite() { format_time(i.at) } else { "-".into() },
            i.score,
            if i.flagged { "yes" } else { "" },
            i.incident.as_deref().unwrap_or(""),
            i.what
        );
    }
    out
}

pub(super) fn patterns(a: PatternsArgs) -> CmdResult {
    let src = &a.source;
    let store = crate::store::open(&src.history)?;
    let w = read_window(&src.window, &Config::default(), &*store, std::slice::from_ref(&src.service))?;
    let from = history_time_arg("from", &src.from)?;
    let to = history_time_arg("to", &src.to)?;
    let model = a.model.as_deref().map(load_model).transpose()?;
    if model.as_ref().is_some_and(|m| m.level != Level::Window) {
        return Err(Failure::input(format!(
            "{}: a trace-level model; patterns need a window-level one",
            a.model.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
        )));
    }
    let forest = IsolationForestParams { contamination: Some(a.contamination), seed: a.seed, ..Default::default() };
    let sp = service_patterns(&*store, &src.service, w, from, to, model.as_ref(), &forest, &PatternParams::default())
        .map_err(|e| Failure::input(format!("{}: {e}", src.history.display())))?;
    if a.format == EvalFormat::Json {
        return print(&(serde_json::to_string_pretty(&sp).expect("patterns serialize") + "\n"));
    }
    let flagged = sp.scores.iter().filter(|s| s.2).count();
    let mut out = format!(
        "{flagged} of {} {} windows of '{}' flagged by {}\n",
        sp.scores.len(),
        format_duration(w),
        src.service,
        sp.detector
    );
    if sp.patterns.is_empty() {
        out += "no anomalous windows: no patterns\n";
    }
    for p in &sp.patterns {
        let first = p.windows.iter().copied().fold(f64::INFINITY, f64::min);
        let last = p.windows.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out += &format!(
            "\n{} {}\n  {} window(s), {} → {}; {} in incidents{}\n",
            if p.id == 0 { "Unclustered:".to_string() } else { format!("Pattern {}:", p.id) },
            p.description,
            p.windows.len(),
            format_time(first),
            format_time(last + w),
            p.in_incidents,
            if p.incidents.is_empty() { String::new() } else { format!(" ({})", p.incidents.join(", ")) }
        );
    }
    print(&out)
}
