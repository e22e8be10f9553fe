//! What a tuning run leaves on disk: the tuned config (loadable by pss and by
//! pypss), a model card, a convergence plot and a PR curve.

use std::path::Path;

use plotters::prelude::*;
use serde_json::json;

use super::space::Candidate;
use super::tuner::{SplitMetrics, TuneParams, Tuned};

/// Schema version of the model card.
pub const CARD_SCHEMA_VERSION: u32 = 1;

/// The tuned configuration as TOML: table `[pypss]` with pypss's key names
/// (pypss ignores the two pss keys `alert_threshold_pss` and `window_seconds`).
pub fn config_toml(c: &Candidate, window_seconds: f64, header: &str) -> String {
    let s = &c.score;
    let a = &c.alert;
    let mut out = String::new();
    for line in header.lines() {
        out += &format!("# {line}\n");
    }
    out += "[pypss]\n";
    let f = |k: &str, v: f64| format!("{k} = {v:?}\n");
    out += &f("w_ts", s.w_ts);
    out += &f("w_ms", s.w_ms);
    out += &f("w_ev", s.w_ev);
    out += &f("w_be", s.w_be);
    out += &f("w_cc", s.w_cc);
    out += &f("alpha", s.alpha);
    out += &f("beta", s.beta);
    out += &f("gamma", s.gamma);
    out += &f("delta", s.delta);
    out += &f("mem_spike_threshold_ratio", s.mem_spike_threshold_ratio);
    out += &f("concurrency_wait_threshold", s.concurrency_wait_threshold);
    out += &f("error_spike_threshold", s.error_spike_threshold);
    out += &format!("consecutive_error_threshold = {}\n", s.consecutive_error_threshold.round() as i64);
    for (_, code, v) in a.sub.entries() {
        out += &f(&format!("alert_threshold_{code}"), v);
    }
    out += &f("alert_threshold_pss", a.pss);
    out += &f("window_seconds", window_seconds);
    if !s.custom_weights.is_empty() {
        // The toml crate quotes a code that is not a bare key.
        let t: toml::Table = s.custom_weights.iter().map(|(c, w)| (c.clone(), toml::Value::Float(*w))).collect();
        out += "\n# Custom metrics' weights, tuned with the five.\n[pypss.custom_metric_weights]\n";
        out += &toml::to_string(&t).expect("a table of floats serializes");
    }
    out
}

fn split_json(m: &SplitMetrics) -> serde_json::Value {
    json!({
        "train": m.train, "validation": m.validation,
        "train_objective": m.train_objective, "validation_objective": m.validation_objective,
    })
}

/// The model card: parameters, data range, window length, seed, iterations,
/// objective, every metric for default / tuned / random search on both splits,
/// a verdict in words, and the pss version.
pub fn model_card(
    t: &Tuned,
    p: &TuneParams,
    services: &[String],
    window_seconds: f64,
    verdict: &str,
) -> serde_json::Value {
    let mut card = json!({
        "schema_version": CARD_SCHEMA_VERSION,
        "kind": "pss-tuned-config",
        "pss_version": env!("CARGO_PKG_VERSION"),
        "services": services,
        "objective": p.objective.name(),
        "objective_detail": p.objective,
        "iterations": p.iterations,
        "seed": p.seed,
        "validation_fraction": p.validation,
        "lead_seconds": p.lead_seconds,
        "window_seconds": window_seconds,
        "data": {
            "from": t.range.0, "to": t.range.1, "validation_from": t.split_at,
            "from_utc": crate::timefmt::format_time(t.range.0),
            "to_utc": crate::timefmt::format_time(t.range.1),
            "validation_from_utc": crate::timefmt::format_time(t.split_at),
            "train_windows": t.train_windows, "validation_windows": t.validation_windows,
        },
        "bounds": p.space.dims,
        "parameters": { "tuned": t.tuned, "default": t.default, "random_search_best": t.random_best },
        "metrics": {
            "tuned": split_json(&t.metrics_tuned),
            "default": split_json(&t.metrics_default),
            "random_search": split_json(&t.metrics_random),
        },
        "convergence": { "bayesian": t.convergence_bo, "bayesian_stage1": t.convergence_stage1, "random_search": t.convergence_random },
        "pr_curve": { "default": t.pr_default, "tuned": t.pr_tuned },
        "verdict": verdict,
    });
    if !p.space.custom.is_empty() {
        // Custom metrics' weights, searched with the five.
        card["custom_metric_weights"] = json!({
            "searched": p.space.custom,
            "tuned": t.tuned.score.custom_weights,
            "random_search_best": t.random_best.score.custom_weights,
        });
    }
    card
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Best objective vs evaluation, Bayesian optimization and random search.
pub fn convergence_svg(t: &Tuned, objective: &str, path: &Path) -> DrawResult {
    let root = SVGBackend::new(path, (640, 360)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = t.convergence_bo.len().max(t.convergence_random.len()).max(2);
    // Both start at the defaults with their best cut: no penalty values.
    let all = t.convergence_bo.iter().chain(&t.convergence_random).filter(|v| v.is_finite());
    let lo = all.clone().copied().fold(f64::INFINITY, f64::min);
    let hi = all.copied().fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .caption(
            format!(
                "Training {objective} of the best point so far (BO: 1–{} the score's parameters, then thresholds)",
                t.convergence_stage1
            ),
            ("sans-serif", 14),
        )
        .x_label_area_size(34)
        .y_label_area_size(56)
        .build_cartesian_2d(1usize..n + 1, (lo - pad)..(hi + pad))?;
    chart.configure_mesh().light_line_style(RGBColor(245, 245, 245)).x_desc("evaluations").y_desc(objective).draw()?;
    let blue = RGBColor(66, 133, 244);
    let grey = RGBColor(150, 150, 150);
    chart
        .draw_series(LineSeries::new(
            t.convergence_bo.iter().enumerate().map(|(i, &v)| (i + 1, v)),
            blue.stroke_width(2),
        ))?
        .label("Bayesian optimization")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], blue.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            t.convergence_random.iter().enumerate().map(|(i, &v)| (i + 1, v)),
            grey.stroke_width(2),
        ))?
        .label("random search")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], grey.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Validation precision–recall curves of the PSS ranking, default vs tuned.
pub fn pr_svg(t: &Tuned, path: &Path) -> DrawResult {
    let root = SVGBackend::new(path, (480, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .caption("Validation precision–recall of the PSS", ("sans-serif", 16))
        .x_label_area_size(34)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..1.0, 0.0..1.05)?;
    chart.configure_mesh().light_line_style(RGBColor(245, 245, 245)).x_desc("recall").y_desc("precision").draw()?;
    let tuned = RGBColor(66, 133, 244);
    let def = RGBColor(150, 150, 150);
    chart
        .draw_series(LineSeries::new(t.pr_default.iter().copied(), def.stroke_width(2)))?
        .label(format!("default (AP {:.3})", t.metrics_default.validation.auc_pr))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], def.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(t.pr_tuned.iter().copied(), tuned.stroke_width(2)))?
        .label(format!("tuned (AP {:.3})", t.metrics_tuned.validation.auc_pr))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], tuned.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// A verdict in words: did tuning help on validation, and at what cost.
pub fn verdict(t: &Tuned, objective: &str) -> String {
    let (d, n) = (&t.metrics_default, &t.metrics_tuned);
    let better = n.validation_objective > d.validation_objective;
    let missed = n.validation.incidents_caught < d.validation.incidents_caught;
    let mut s = if better {
        format!(
            "Tuning improved validation {objective} from {:.3} (defaults) to {:.3}.",
            d.validation_objective, n.validation_objective
        )
    } else {
        format!(
            "Tuning did not beat the defaults on validation {objective} ({:.3} vs {:.3}); keep the defaults.",
            n.validation_objective, d.validation_objective
        )
    };
    if missed {
        s += &format!(
            " It catches fewer validation incidents ({} of {} vs {}).",
            n.validation.incidents_caught, n.validation.incidents, d.validation.incidents_caught
        );
    }
    s += &format!(
        " Validation precision {:.2}, recall {:.2}, {:.1} false alarms/day (defaults: {:.2}, {:.2}, {:.1}).",
        n.validation.precision,
        n.validation.recall,
        n.validation.false_alarms_per_day,
        d.validation.precision,
        d.validation.recall,
        d.validation.false_alarms_per_day
    );
    s
}
