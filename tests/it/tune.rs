//! `pss-tune` end to end on the shipped labeled history: quality against the
//! defaults and random search, outputs, the lock, promotion, reproducibility.

use std::path::{Path, PathBuf};
use std::process::Output;

use pss::config::{AlertParams, Config};
use pss::eval::{evaluate_windows, judge, time_split};
use pss::store::SqliteStore;
use pss::tune::space::Candidate;
use serde_json::Value;

use crate::common::{ok, pss, pss_tune, repo, shipped_history};

/// The shipped history (three services, 5-minute windows, incidents) in `dir/h.db`.
fn history(dir: &Path) -> PathBuf {
    shipped_history(dir, &["checkout", "search", "payments"])
}

fn tune(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--history", "h.db", "--window", "5m", "--seed", "7", "-o", "models/pss-tuned.toml"];
    args.extend_from_slice(extra);
    pss_tune(dir, &args)
}

#[test]
fn tuned_beats_defaults_and_random_search_on_validation_without_missing_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    history(d);
    let out = ok(&tune(d, &[]));
    assert!(out.contains("validation") && out.contains("model card"), "{out}");
    // Incidents at night, when every window is too small to score, are named
    // and left out of the counts (checkout-5: 05:09–05:42, fewer than 10
    // application traces per 5 minutes), not counted as missed nor dropped
    // silently.
    let note = out.lines().find(|l| l.starts_with("Not counted: ")).unwrap_or_else(|| panic!("{out}"));
    assert!(note.contains("checkout-5") && !note.contains("checkout-6"), "{note}");
    let card: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("models/pss-tuned.card.json")).unwrap()).unwrap();
    let v = |who: &str, key: &str| card["metrics"][who]["validation"][key].as_f64().unwrap();
    let caught = |who: &str| card["metrics"][who]["validation"]["incidents_caught"].as_u64().unwrap();
    assert!(card["metrics"]["tuned"]["validation"]["incidents"].as_u64().unwrap() >= 3, "validation needs incidents");
    for metric in ["f1", "auc_pr"] {
        assert!(
            v("tuned", metric) > v("default", metric),
            "{metric}: tuned {} default {}",
            v("tuned", metric),
            v("default", metric)
        );
        assert!(
            v("tuned", metric) > v("random_search", metric),
            "{metric}: tuned {} random {}",
            v("tuned", metric),
            v("random_search", metric)
        );
    }
    assert!(caught("tuned") >= caught("default"), "missed incidents: {} < {}", caught("tuned"), caught("default"));
    // Precision and false alarms are reported next to recall.
    assert!(v("tuned", "precision") > v("default", "precision"));
    assert!(v("tuned", "false_alarms_per_day") < v("default", "false_alarms_per_day"));
    for key in [
        "schema_version",
        "pss_version",
        "seed",
        "iterations",
        "objective",
        "window_seconds",
        "data",
        "parameters",
        "verdict",
    ] {
        assert!(card.get(key).is_some(), "model card lacks {key}");
    }
    for f in ["pss-tuned.toml", "pss-tuned.convergence.svg", "pss-tuned.pr.svg"] {
        assert!(d.join("models").join(f).is_file(), "{f}");
    }
    // The tuned config loads in pss analyze.
    let sample = repo("datasets/sample-traces.json");
    let o = pss(d, &["analyze", sample.to_str().unwrap(), "--config", "models/pss-tuned.toml", "--format", "json"]);
    let s = ok(&o);
    assert!(serde_json::from_str::<Value>(&s).unwrap()["config_source"].as_str().unwrap().contains("pss-tuned.toml"));
    // The run is recorded.
    let c = rusqlite::Connection::open(d.join("h.db")).unwrap();
    let n: i64 = c.query_row("SELECT COUNT(*) FROM runs WHERE kind = 'tune'", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn same_seed_same_config_and_promotion_needs_a_better_score() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    history(d);
    ok(&tune(d, &["--iterations", "20"]));
    let first = std::fs::read_to_string(d.join("models/pss-tuned.toml")).unwrap();
    let out = ok(&tune(d, &["--iterations", "20", "--promote-if-better"]));
    assert!(out.contains("Kept the active config"), "{out}");
    let candidate = std::fs::read_to_string(d.join("models/pss-tuned.candidate.toml")).unwrap();
    assert_eq!(first, candidate, "same seed and data give the same config");
    assert_eq!(first, std::fs::read_to_string(d.join("models/pss-tuned.toml")).unwrap(), "active config untouched");
    let card: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("models/pss-tuned.candidate.card.json")).unwrap())
            .unwrap();
    assert_eq!(card["decision"]["promoted"], Value::Bool(false));
    assert!(card["decision"]["active_validation_objective"].is_number());

    // The window detectors: the first night promoted one per service; the
    // second trained the same model, which is not better, so it is kept aside.
    for s in ["checkout", "search", "payments"] {
        let active = d.join(format!("models/{s}/window-detector.json"));
        let v1 = d.join(format!("models/{s}/extended-isolation-forest-window-v1.json"));
        let v2 = d.join(format!("models/{s}/extended-isolation-forest-window-v2.json"));
        assert_eq!(std::fs::read(&active).unwrap(), std::fs::read(&v1).unwrap(), "{s}: v1 is active");
        assert_eq!(std::fs::read(&v1).unwrap(), std::fs::read(&v2).unwrap(), "{s}: same seed, same model");
        let m: Value = serde_json::from_str(&std::fs::read_to_string(&v2).unwrap()).unwrap();
        assert!(m["metrics"]["validation_average_precision"].is_number());
    }
    assert_eq!(out.matches("kept the active one").count(), 3, "{out}");
    let db = rusqlite::Connection::open(d.join("h.db")).unwrap();
    let promoted: Vec<(String, i64, String)> = db
        .prepare(
            "SELECT service, version, card FROM models WHERE kind = 'extended-isolation-forest-window' ORDER BY 1, 2",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(promoted.len(), 6);
    for (s, v, card) in &promoted {
        let c: Value = serde_json::from_str(card).unwrap();
        assert_eq!(c["promoted"], Value::Bool(*v == 1), "{s} v{v}: {c}");
    }

    // Evaluated against the labels, the window detector beats the default
    // PSS alarm on validation AUC-PR, and the supervised model is reported
    // beside the unsupervised ones.
    let eval = ok(&pss(d, &["detect", "eval", "--history", "h.db", "--window", "5m", "--format", "json"]));
    let r: Value = serde_json::from_str(&eval).unwrap();
    let ap = |name: &str| {
        r["detectors"].as_array().unwrap().iter().find(|x| x["detector"].as_str().unwrap().starts_with(name)).unwrap()
            ["validation"]["auc_pr"]
            .as_f64()
            .unwrap()
    };
    let base = ap("pss-alarm");
    assert!(ap("extended-isolation-forest") > base + 0.2, "{eval}");
    assert!(ap("isolation-forest") > base, "{eval}");
    assert!(ap("random-forest").is_finite());
    assert_eq!(r["services"].as_array().unwrap().len(), 3);
}

#[test]
fn the_tuned_cut_is_no_worse_than_the_best_pss_threshold_alone() {
    // The cut stage sweeps every whole-number PSS threshold (sub-score rules
    // off) before searching all six: whatever it ends with must score on the
    // training part at least as well as each such threshold that catches as
    // many incidents as the defaults do — even on a tiny search budget.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    history(d);
    ok(&tune(d, &["--iterations", "12", "--no-detectors"]));
    let card: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("models/pss-tuned.card.json")).unwrap()).unwrap();
    let tuned_train = card["metrics"]["tuned"]["train_objective"].as_f64().unwrap();
    let cfg = Config::discover(Some(&d.join("models/pss-tuned.toml"))).unwrap();
    let store = SqliteStore::open(&d.join("h.db")).unwrap();
    let services = ["checkout", "payments", "search"].map(String::from);
    let pss::store::LabeledHistory { windows, incidents } =
        pss::store::labeled_history(&store, &services, 300.0, None, None).unwrap();
    let train = time_split(&windows, 0.3).unwrap().train;
    let metrics = |c: &Candidate| evaluate_windows(&train, &judge(&train, &c.score, &c.alert), &incidents, 600.0);
    let floor = metrics(&Candidate::default()).incident_recall;
    let mut feasible = 0;
    for t in 0..=101 {
        let alert = AlertParams { pss: t as f64, sub: pss::domain::SubScores::default() };
        let m = metrics(&Candidate { score: cfg.score.clone(), alert });
        if m.incident_recall >= floor {
            feasible += 1;
            assert!(tuned_train >= m.f1 - 1e-12, "PSS < {t} alone: train F1 {} > tuned {tuned_train}", m.f1);
        }
    }
    assert!(feasible > 0);
}

#[test]
fn a_second_run_waits_for_none_it_exits_75() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    history(d);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(d.join("h.db.pss-tune.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let o = tune(d, &[]);
    assert_eq!(o.status.code(), Some(75), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another pss-tune run"));
    drop(lock);
    ok(&tune(d, &["--iterations", "10"]));
}

#[test]
fn bad_input_is_exit_2_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = tune(d, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such history database"));
    history(d);
    let o = pss_tune(d, &["--history", "h.db", "--window", "1m"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no 60s windows"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = pss_tune(d, &["--history", "h.db", "--window", "5m", "--validation", "0.95"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn pypss_objective_tunes_a_baseline_without_labels() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sample = repo("datasets/sample-traces.json");
    let s = sample.to_str().unwrap();
    let out =
        ok(&pss_tune(d, &["--objective", "pypss", "--baseline", s, "--iterations", "16", "-o", "b/pss-tuned.toml"]));
    assert!(out.contains("pypss loss"), "{out}");
    let card: Value = serde_json::from_str(&std::fs::read_to_string(d.join("b/pss-tuned.card.json")).unwrap()).unwrap();
    let loss = |k: &str| card["loss"][k].as_f64().unwrap();
    assert!(loss("tuned") <= loss("default"), "tuned {} default {}", loss("tuned"), loss("default"));
    assert!(loss("tuned") <= loss("random_search"));
    // The config loads in pss analyze.
    ok(&pss(d, &["analyze", s, "--config", "b/pss-tuned.toml"]));
    // --baseline belongs to the pypss objective.
    let o = pss_tune(d, &["--history", "x.db", "--baseline", s]);
    assert_eq!(o.status.code(), Some(2));
}

/// With custom metrics configured, windows carry them and pss-tune searches
/// their weights with the five: the card lists them, the tuned config has a
/// `[pypss.custom_metric_weights]` table, and loading that config back
/// rescores the validation windows to the card's figures.
#[test]
fn custom_metric_weights_are_searched_and_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("pypss.toml"), "[pypss]\nplugins = [\"DB\", \"CACHE\"]\n").unwrap();
    let data = repo("datasets/history");
    let f = data.join("payments.jsonl.gz");
    ok(&pss(d, &["ingest", f.to_str().unwrap(), "--history", "h.db", "--service", "payments", "--window", "5m"]));
    let csv: String = std::fs::read_to_string(data.join("incidents.csv"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("id,") || l.contains(",payments,"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(d.join("inc.csv"), csv).unwrap();
    ok(&pss(d, &["incidents", "import", "inc.csv", "--history", "h.db"]));
    ok(&tune(d, &["--iterations", "24"]));
    let card: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("models/pss-tuned.card.json")).unwrap()).unwrap();
    let searched: Vec<&str> = card["custom_metric_weights"]["searched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(searched, ["DB", "CACHE"]);
    let toml = std::fs::read_to_string(d.join("models/pss-tuned.toml")).unwrap();
    assert!(toml.contains("[pypss.custom_metric_weights]\nDB = "), "{toml}");
    let tuned = Config::from_file(&d.join("models/pss-tuned.toml")).unwrap();
    assert_eq!(tuned.score.custom_weights.len(), 2);
    // The tuned config's weights (the five and the two) sum to one: one simplex.
    let s = &tuned.score;
    let total = s.w_ts + s.w_ms + s.w_ev + s.w_be + s.w_cc + s.custom_weights.iter().map(|w| w.1).sum::<f64>();
    assert!((total - 1.0).abs() < 1e-9, "{total}");
    // Loading it back gives the card's validation figures.
    let store = SqliteStore::open(&d.join("h.db")).unwrap();
    let ws = pss::store::Store::windows(&store, "payments", None, 300.0, None, None).unwrap();
    assert!(ws.iter().all(|w| w.window.custom.len() == 2));
    let incidents = pss::store::Store::incidents(&store, None).unwrap();
    let val = time_split(&ws, card["validation_fraction"].as_f64().unwrap()).unwrap().val;
    let j = judge(&val, &tuned.score, &tuned.alert);
    let m = evaluate_windows(&val, &j, &incidents, card["lead_seconds"].as_f64().unwrap());
    approx::assert_abs_diff_eq!(m.f1, card["metrics"]["tuned"]["validation"]["f1"].as_f64().unwrap(), epsilon = 1e-9);
}
