//! What pss-tune prints: the train/validation table of defaults, tuned and
//! random search, the verdict, promotion, detectors and where outputs went.

use crate::tune::baseline::BaselineReport;
use crate::tune::nightly::{NightlyJob, NightlyReport};
use crate::tune::tuner::SplitMetrics;

/// The metrics table, train and validation side by side.
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

/// The text pss-tune prints for a nightly run.
pub(super) fn nightly(r: &NightlyReport, job: &NightlyJob) -> String {
    let t = &r.tuned;
    let mut text = format!(
        "pss-tune: {} ({} train + {} validation windows of {}s, {} incidents, {} evaluations, {:.1}s)\n\n",
        r.services.join(", "),
        t.train_windows,
        t.validation_windows,
        r.window_seconds,
        r.incidents,
        job.params.iterations,
        r.seconds
    );
    text += &table(&[("default", &t.metrics_default), ("tuned", &t.metrics_tuned), ("random", &t.metrics_random)]);
    text += &format!("\n{}\n", r.verdict);
    if !r.unscorable.is_empty() {
        let ids: Vec<String> = r.unscorable.iter().map(|i| i.id.clone()).collect();
        text += &format!("{}\n", crate::cli::unscorable_note(&ids));
    }
    text += &alarm_text(&r.alarm);
    let p = &r.promotion;
    if p.promote_if_better {
        match p.active_validation_objective {
            Some(active) => {
                text += &format!(
                    "{}: validation {} {:.3} (new) vs {:.3} (active).\n",
                    if p.promoted { "Promoted" } else { "Kept the active config" },
                    job.params.objective.name(),
                    p.new_validation_objective,
                    active
                )
            }
            None => text += "No active config yet: promoted.\n",
        }
    }
    if !r.detectors.is_empty() {
        // Column widths from the content: paths vary with the service names.
        let sw = r.detectors.iter().map(|d| d.service.chars().count()).max().unwrap_or(0).max("service".len());
        let paths: Vec<String> = r.detectors.iter().map(|d| d.path.display().to_string()).collect();
        let pw = paths.iter().map(|p| p.chars().count()).max().unwrap_or(0).max("window detector".len());
        text += &format!(
            "\n{:<sw$}  {:<pw$}  {:>10}  {:>10}  {}\n",
            "service", "window detector", "AUC-PR new", "active", "decision"
        );
        for (d, path) in r.detectors.iter().zip(&paths) {
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
    let o = &r.outputs;
    text += &format!(
        "\nconfig:      {}\nmodel card:  {}\nconvergence: {}\nPR curve:    {}\nrun:         #{} in {}\n",
        o.config.display(),
        o.card.display(),
        o.convergence.display(),
        o.pr_curve.display(),
        r.run_id,
        job.history.display()
    );
    text
}

/// The text pss-tune prints for `--objective pypss`.
pub(super) fn baseline(r: &BaselineReport) -> String {
    let t = &r.tuned;
    format!(
        "pypss's tuning objective: {} baseline traces, 4 injected faults, {} evaluations, {:.2}s\n\n\
         {:<16} {:>12}\n{:<16} {:>12.2}\n{:<16} {:>12.2}\n{:<16} {:>12.2}\n\n\
         alpha {:.2}, beta {:.2}, gamma {:.2}, mem_spike_threshold_ratio {:.2}, concurrency_wait_threshold {:.4}\n\
         weights ts {:.2} ms {:.2} ev {:.2} be {:.2} cc {:.2}\n\nconfig:     {}\n{}",
        r.traces,
        r.iterations,
        r.seconds,
        "",
        "pypss loss",
        "default",
        r.loss.default,
        "tuned",
        r.loss.tuned,
        "random search",
        r.loss.random_search,
        t.alpha,
        t.beta,
        t.gamma,
        t.mem_spike_threshold_ratio,
        t.concurrency_wait_threshold,
        t.w_ts,
        t.w_ms,
        t.w_ev,
        t.w_be,
        t.w_cc,
        r.config.display(),
        r.card.as_ref().map(|c| format!("model card: {}\n", c.display())).unwrap_or_default()
    )
}

/// The alarm policy chosen, and its episodes on validation beside paging on
/// every alarming window and beside random search's thresholds.
fn alarm_text(a: &crate::tune::nightly::AlarmChoice) -> String {
    use crate::alarm::persistence::{Choice, EpisodeMetrics};
    let rule = |c: &Choice| {
        let p = c.persistence;
        let d = match (c.detector_quantile, c.score_rules) {
            (None, _) => "no detector rule".to_string(),
            (Some(q), true) => format!("detector rule at quantile {q} beside the score rules"),
            (Some(q), false) => format!("the detector rule alone at quantile {q}"),
        };
        let m = c.module_pss.map_or("no module rule".to_string(), |t| format!("module rule PSS < {t}"));
        format!(
            "page after {} of {} alarming windows, resolve after {} clean, {d}, {m}",
            p.fire_after, p.fire_window, p.resolve_after
        )
    };
    let m = |e: &EpisodeMetrics| {
        format!(
            "{} of {} incidents, {} false-alarm episodes ({:.1}/day), median delay {}",
            e.caught,
            e.incidents,
            e.false_episodes,
            e.false_per_day,
            e.median_delay.map_or("-".to_string(), |d| format!("{d:+.0} s"))
        )
    };
    format!(
        "Alarm policy: {} (chosen {}: {}).\n  Validation: {}.\n  \
         Paging on every alarming window: {}.\n  Random search's thresholds, same choice ({}): {}.\n",
        rule(&a.choice),
        if a.chosen_on == "nested" {
            "on the training part's last 30 %, for thresholds searched on its first 70 %"
        } else {
            "on the training part (too little of it for a nested search)"
        },
        m(&a.choice.train),
        m(&a.validation),
        m(&a.validation_eager),
        rule(&a.random_choice),
        m(&a.validation_random)
    )
}
