//! `pss detect series` on NAB data: one row per input row in input order,
//! scores in [0, 1], causal (a prefix scores the same), and high inside the
//! labeled anomaly window.

use std::path::Path;
use std::process::Command;

use crate::common::{ok, repo, shipped_history};

fn nab(rel: &str) -> std::path::PathBuf {
    repo("datasets/nab/data").join(rel)
}

fn detect(dir: &Path, input: &Path, out: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pss"))
        .current_dir(dir)
        .args(["detect", "series", input.to_str().unwrap(), "-o", out])
        .output()
        .unwrap()
}

fn rows(path: &Path) -> Vec<(String, String, f64)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let mut p = l.rsplitn(3, ',');
            let s: f64 = p.next().unwrap().parse().unwrap();
            let v = p.next().unwrap().to_string();
            let t = p.next().unwrap().to_string();
            (t, v, s)
        })
        .collect()
}

#[test]
fn series_scores_are_causal_ordered_and_find_the_anomaly() {
    let src = nab("artificialWithAnomaly/art_daily_jumpsup.csv");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = detect(d, &src, "all.csv");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let input = std::fs::read_to_string(&src).unwrap();
    let all = rows(&d.join("all.csv"));
    let in_rows: Vec<&str> = input.lines().skip(1).collect();
    assert_eq!(all.len(), in_rows.len());
    for (r, line) in all.iter().zip(&in_rows) {
        assert!(line.starts_with(&r.0), "order and timestamps kept");
        assert!((0.0..=1.0).contains(&r.2));
    }
    // Causal: the first 1,500 rows alone get the same scores.
    let head: String = input.lines().take(1501).map(|l| format!("{l}\n")).collect();
    std::fs::write(d.join("head.csv"), head).unwrap();
    assert!(detect(d, &d.join("head.csv"), "head_out.csv").status.success());
    let part = rows(&d.join("head_out.csv"));
    assert_eq!(part.len(), 1500);
    assert_eq!(part[..], all[..1500]);
    // NAB's labeled window for this file: 2014-04-10 16:15 to 2014-04-12 01:45.
    let inside = |t: &str| ("2014-04-10 16:15:00".."2014-04-12 01:45:00").contains(&t);
    let mean = |f: &dyn Fn(&str) -> bool| {
        let v: Vec<f64> = all.iter().filter(|r| f(&r.0)).map(|r| r.2).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (a, b) = (mean(&|t| inside(t)), mean(&|t| !inside(t)));
    assert!(a > b, "inside {a:.3} outside {b:.3}");
    // After NAB's probationary 15 %, the highest score is inside the window.
    let top = all[all.len() * 15 / 100..].iter().max_by(|a, b| a.2.total_cmp(&b.2)).unwrap();
    assert!(inside(&top.0), "highest score {:.3} at {}, outside the window", top.2, top.0);
}

#[test]
fn bad_values_name_the_line_and_repeated_timestamps_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("bad.csv"), "timestamp,value\n1,2.0\n2,oops\n").unwrap();
    let o = detect(d, &d.join("bad.csv"), "o.csv");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 3"), "{}", String::from_utf8_lossy(&o.stderr));
    let body: String = (0..300).map(|i| format!("{},{}\n", i / 2, (i % 7) as f64)).collect();
    std::fs::write(d.join("rep.csv"), format!("timestamp,value\n{body}")).unwrap();
    assert!(detect(d, &d.join("rep.csv"), "r.csv").status.success());
    let r = rows(&d.join("r.csv"));
    assert_eq!(r.len(), 300);
    assert_eq!((r[0].0.as_str(), r[1].0.as_str()), ("0", "0"));
}

fn pss(dir: &Path, args: &[&str]) -> String {
    ok(&crate::common::pss(dir, args))
}

#[test]
fn train_save_reload_and_score_windows_and_traces() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    shipped_history(d, &["checkout"]);
    let out = pss(d, &["detect", "train", "--history", "h.db", "--service", "checkout", "--window", "5m"]);
    assert!(out.contains("models/checkout/isolation-forest-window-v1.json"), "{out}");
    let model = "models/checkout/isolation-forest-window-v1.json";
    let card: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join(model)).unwrap()).unwrap();
    assert_eq!(card["schema_version"], 1);
    assert!(card["metrics"]["training_roc_auc"].as_f64().unwrap() > 0.7, "{}", card["metrics"]);
    // Reloading gives identical scores.
    let a = pss(d, &["detect", "score", "--model", model, "--history", "h.db", "--format", "csv"]);
    let b = pss(d, &["detect", "score", "--model", model, "--history", "h.db", "--format", "csv"]);
    assert_eq!(a, b);
    assert!(a.lines().count() > 500);
    // The highest window scores fall in incidents.
    let json: serde_json::Value =
        serde_json::from_str(&pss(d, &["detect", "score", "--model", model, "--history", "h.db", "--format", "json"]))
            .unwrap();
    let mut rows: Vec<&serde_json::Value> = json.as_array().unwrap().iter().collect();
    rows.sort_by(|x, y| y["score"].as_f64().unwrap().total_cmp(&x["score"].as_f64().unwrap()));
    let hits = rows[..10].iter().filter(|r| !r["incident"].is_null()).count();
    assert!(hits >= 7, "{hits} of the top 10 windows in incidents");
    // Trace level, scored on a trace file; versions count per level.
    let out = pss(d, &["detect", "train", "--history", "h.db", "--service", "checkout", "--level", "trace"]);
    assert!(out.contains("isolation-forest-trace-v1.json"), "{out}");
    let sample = repo("datasets/sample-traces.json");
    let s = pss(
        d,
        &[
            "detect",
            "score",
            "--model",
            "models/checkout/isolation-forest-trace-v1.json",
            "--trace-file",
            sample.to_str().unwrap(),
            "--format",
            "csv",
        ],
    );
    assert_eq!(s.lines().count(), 1 + 1500, "one row per regular trace");
    let out =
        pss(d, &["detect", "train", "--history", "h.db", "--service", "checkout", "--window", "5m", "--extended"]);
    assert!(out.contains("extended-isolation-forest-window-v1.json"), "{out}");

    // Patterns: the dependency outage (checkout-3) is one pattern, described
    // by latency, its windows all inside the incident.
    let p: serde_json::Value = serde_json::from_str(&pss(
        d,
        &["detect", "patterns", "--history", "h.db", "--service", "checkout", "--window", "5m", "--format", "json"],
    ))
    .unwrap();
    let patterns = p["patterns"].as_array().unwrap();
    let outage = patterns
        .iter()
        .find(|x| x["id"].as_u64() > Some(0) && x["incidents"] == serde_json::json!(["checkout-3"]))
        .unwrap_or_else(|| panic!("{p:#}"));
    assert_eq!(outage["in_incidents"].as_u64(), Some(outage["windows"].as_array().unwrap().len() as u64));
    assert!(outage["description"].as_str().unwrap().contains("latency ×"), "{outage}");
    let text = pss(
        d,
        &["detect", "patterns", "--history", "h.db", "--service", "checkout", "--window", "5m", "--model", model],
    );
    assert!(text.contains("Pattern 1:") && text.contains("saved model"), "{text}");
}

#[test]
fn ml_detect_prints_pypss_lines_and_flags_the_outliers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let normal: Vec<String> = (0..400)
        .map(|i| {
            format!(
                "{{\"name\": \"f{}\", \"duration\": {}, \"wait_time\": 0.001, \"memory_diff\": 10}}",
                i % 4,
                0.1 + (i % 10) as f64 * 0.001
            )
        })
        .collect();
    std::fs::write(d.join("base.json"), format!("[{}]", normal.join(","))).unwrap();
    let mut target = normal[..50].to_vec();
    target.push(
        "{\"name\": \"slow_one\", \"duration\": 9.5, \"wait_time\": 3.0, \"memory_diff\": 99999, \"error\": true}"
            .into(),
    );
    std::fs::write(d.join("target.json"), format!("[{}]", target.join(","))).unwrap();
    let out = pss(d, &["ml-detect", "--baseline-file", "base.json", "--target-file", "target.json"]);
    for line in
        ["📊 Loading baseline traces from base.json...", "   Loaded 400 baseline traces.", "🔎 Predicting anomalies..."]
    {
        assert!(out.contains(line), "missing {line:?} in {out}");
    }
    assert!(out.contains("❌ Anomaly detected in 'slow_one'"), "{out}");
    assert!(out.contains("Summary: Anomalies were detected."));
}

#[test]
fn nab_evaluation_prints_the_three_profiles() {
    let nab = repo("datasets/nab");
    let dir = tempfile::tempdir().unwrap();
    let out = pss(dir.path(), &["detect", "eval", "--nab", nab.to_str().unwrap()]);
    assert!(out.contains("on 34 series"), "{out}");
    for p in ["standard", "reward_low_FP_rate", "reward_low_FN_rate"] {
        let line = out.lines().find(|l| l.starts_with(p)).unwrap_or_else(|| panic!("{p} missing: {out}"));
        let score: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(score > 0.0 && score <= 100.0, "{p}: {score} (better than the null detector)");
        if p == "standard" {
            // The quality target, with the default seed.
            assert!(score > 60.0, "NAB standard score {score}");
        }
    }
    // The per-series table: every series once, the windows adding up.
    let table: Vec<&str> = out.lines().skip_while(|l| !l.starts_with("series ")).skip(1).collect();
    assert_eq!(table.len(), 34, "{out}");
    let windows: usize = table.iter().map(|l| l.split_whitespace().nth(2).unwrap().parse::<usize>().unwrap()).sum();
    assert_eq!(windows, 50, "{out}");
}
