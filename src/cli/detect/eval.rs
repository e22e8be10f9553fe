//! `pss detect eval`: detectors against labeled incidents, or on NAB.

use super::{EvalArgs, EvalFormat};
use crate::cli::{print, CmdResult, Failure};
use crate::config::Config;
use crate::detect::evaluate::{evaluate_detectors, EvalParams, EvalReport};
use crate::detect::nab::PROFILES;
use crate::detect::nab_corpus::{evaluate_dir, NabEvaluation};
use crate::store::labeled_history;
use crate::timefmt::{format_duration, format_time};

pub(super) fn eval(a: EvalArgs) -> CmdResult {
    match (&a.nab, &a.history) {
        (Some(dir), _) if a.leave_one_category_out => loco(dir, &a),
        (Some(dir), _) => {
            let r = evaluate_dir(dir, a.seed).map_err(|e| Failure::input(e.to_string()))?;
            print(&match a.format {
                EvalFormat::Json => nab_json(&r),
                EvalFormat::Text => nab_text(&r),
            })
        }
        (None, Some(_)) if a.leave_one_category_out => {
            Err(Failure::input("--leave-one-category-out needs --nab DIR (it holds out a NAB category)"))
        }
        (None, Some(db)) => eval_history(db, &a),
        (None, None) => Err(Failure::input("give --history DB or --nab DIR")),
    }
}

fn eval_history(db: &std::path::Path, a: &EvalArgs) -> CmdResult {
    let store = crate::store::open(db)?;
    let w = crate::cli::read_window(&a.window, &Config::default(), &*store, a.service.as_slice())?;
    let lead = crate::cli::duration_arg("lead", &a.lead, false)?;
    if !(a.validation > 0.0 && a.validation < 1.0) {
        return Err(Failure::input(format!("--validation {} must be between 0 and 1", a.validation)));
    }
    let services = match &a.service {
        Some(s) => vec![s.clone()],
        None => store.services()?,
    };
    let h = labeled_history(&*store, &services, w, None, None)?;
    if h.windows.is_empty() {
        return Err(Failure::input(format!(
            "no {} windows{} in {}: ingest with --window {} first, or pass the --window you ingested with",
            format_duration(w),
            a.service.as_deref().map(|s| format!(" for '{s}'")).unwrap_or_default(),
            db.display(),
            format_duration(w)
        )));
    }
    let mut p = EvalParams { validation: a.validation, lead_seconds: lead, ..EvalParams::default() };
    p.forest.contamination = Some(a.contamination);
    p.forest.seed = a.seed;
    p.supervised.seed = a.seed;
    let r = evaluate_detectors(&h.windows, &h.incidents, &p).map_err(|e| Failure::input(e.to_string()))?;
    if a.format == EvalFormat::Json {
        return print(&(serde_json::to_string_pretty(&r).expect("a report serializes") + "\n"));
    }
    print(&history_text(&r, h.windows.len(), w))
}

/// The detector table, validation metrics, best unsupervised detector.
fn history_text(r: &EvalReport, windows: usize, w: f64) -> String {
    let mut out = format!(
        "Detectors against labeled incidents: {} ({} windows of {})\ntrain {} → {} ({} windows), validation → {} ({} windows)\n\n",
        r.services.join(", "),
        windows,
        format_duration(w),
        format_time(r.range.0),
        format_time(r.split_at),
        r.train_windows,
        format_time(r.range.1),
        r.validation_windows
    );
    out += &format!(
        "{:<38} {:>9} {:>7} {:>6} {:>7} {:>9} {:>10} {:>9}\n",
        "validation", "precision", "recall", "F1", "AUC-PR", "incidents", "false/day", "train AP"
    );
    for d in &r.detectors {
        let v = &d.validation;
        match &d.skipped {
            Some(why) => out += &format!("{:<38} skipped: {why}\n", d.detector),
            None => {
                out += &format!(
                    "{:<38} {:>9.3} {:>7.3} {:>6.3} {:>7.3} {:>9} {:>10.1} {:>9.3}\n",
                    d.detector,
                    v.precision,
                    v.recall,
                    v.f1,
                    v.auc_pr,
                    format!("{}/{}", v.incidents_caught, v.incidents),
                    v.false_alarms_per_day,
                    d.train.auc_pr
                )
            }
        }
    }
    if !r.unscorable_incidents.is_empty() {
        out += &format!("\n{}\n", crate::cli::unscorable_note(&r.unscorable_incidents));
    }
    let base = r.detectors.iter().find(|d| d.kind == "baseline");
    let best = r
        .detectors
        .iter()
        .filter(|d| d.kind == "unsupervised")
        .max_by(|x, y| x.validation.auc_pr.total_cmp(&y.validation.auc_pr));
    if let (Some(base), Some(b)) = (base, best) {
        out += &format!(
            "\nBest unsupervised window detector: {} — validation AUC-PR {:.3} vs {:.3} for the default PSS alarm ({}).\n",
            b.detector,
            b.validation.auc_pr,
            base.validation.auc_pr,
            if b.validation.auc_pr > base.validation.auc_pr { "better" } else { "not better" }
        );
    }
    out
}

fn nab_json(r: &NabEvaluation) -> String {
    let doc = serde_json::json!({
        "dir": r.dir.display().to_string(),
        "series": r.series,
        "windows": r.windows,
        "seed": r.seed,
        "profiles": r.profiles,
        "per_series": { "profile": PROFILES[0].name, "threshold": r.profiles[0].threshold, "series": r.per_series },
    });
    serde_json::to_string_pretty(&doc).expect("a report serializes") + "\n"
}

fn nab_text(r: &NabEvaluation) -> String {
    let mut out = format!(
        "NAB score of the streaming detector on {} series ({} windows) in {}\n\n{:<20} {:>10} {:>10}\n",
        r.series,
        r.windows,
        r.dir.display(),
        "profile",
        "score",
        "threshold"
    );
    for s in &r.profiles {
        out += &format!("{:<20} {:>10.1} {:>10.4}\n", s.profile, s.normalized, s.threshold);
    }
    out += "\n(0 = null detector, 100 = perfect; one threshold per profile over the corpus)\n";
    let w = r.per_series.iter().map(|r| r.name.chars().count()).max().unwrap_or(6).max(6);
    out += &format!(
        "\nPer series at the standard threshold, worst first (raw = its share of the raw score; a missed window costs 1):\n{:<w$} {:>7} {:>8} {:>9} {:>13} {:>7}\n",
        "series", "rows", "windows", "detected", "false alarms", "raw"
    );
    for s in &r.per_series {
        out += &format!(
            "{:<w$} {:>7} {:>8} {:>9} {:>13} {:>7.2}\n",
            s.name, s.rows, s.windows, s.detected, s.false_positives, s.raw
        );
    }
    out
}

/// `--nab DIR --leave-one-category-out`.
fn loco(dir: &std::path::Path, a: &EvalArgs) -> CmdResult {
    use crate::detect::nab_loco::{candidates, leave_one_category_out};
    let corpus = crate::detect::nab_corpus::load_dir(dir).map_err(|e| Failure::input(e.to_string()))?;
    let cands = candidates(a.seed);
    let bar = crate::cli::progress(cands.len(), "scoring the corpus with each candidate {bar:30} {pos}/{len}");
    let r = leave_one_category_out(&corpus, &cands, &mut |done, _| bar.set_position(done as u64))
        .map_err(|e| Failure::input(e.to_string()))?;
    bar.finish_and_clear();
    if a.format == EvalFormat::Json {
        return print(&(serde_json::to_string_pretty(&r).expect("a report serializes") + "\n"));
    }
    let w = r.folds.iter().map(|f| f.category.len()).max().unwrap_or(8).max(8);
    let cw = r.folds.iter().map(|f| f.chosen.len()).max().unwrap_or(6).max(6);
    let mut out = format!(
        "NAB leave-one-category-out in {} ({} series, seed {}, standard profile): each category scored with the \
         candidate and threshold chosen on the others.\n\n{:<w$} {:>6}  {:<cw$} {:>9} {:>11} {:>9} {:>10} {:>12}\n",
        dir.display(),
        corpus.len(),
        a.seed,
        "held out",
        "series",
        "chosen",
        "threshold",
        "others' sc.",
        "held-out",
        "own best",
        "false alarms"
    );
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    for f in &r.folds {
        out += &format!(
            "{:<w$} {:>6}  {:<cw$} {:>9.4} {:>11.1} {:>9} {:>10} {:>12}\n",
            f.category,
            f.series,
            f.chosen,
            f.threshold,
            f.train_score,
            opt(f.held_out_score),
            opt(f.held_out_in_sample),
            f.false_alarms
        );
    }
    out += &format!(
        "\nHeld-out mean {:.1} (categories with anomaly windows); every category at its fold's choice, normalized \
         over the corpus: {:.1}; in-sample (defaults, one threshold over the whole corpus): {:.1}.\n\
         (\"own best\" is the category at its own best threshold: what tuning on it would claim; \"-\": no \
         anomaly windows, so no score of its own.)\n",
        r.held_out_mean, r.held_out_pooled, r.in_sample
    );
    print(&out)
}
