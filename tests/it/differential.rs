//! Differential tests against pypss 1.3.1 itself.
//!
//! `tests/pypss/cases.py` generates ~100 trace files (normal, heavy-tailed,
//! bursty errors, memory leaks, branch tags, system lag traces, empty, one
//! trace, all errors, rounding ties, unconvertible values, non-default
//! configs) and scores each with pypss's own `compute_pss_from_traces` and
//! `get_module_score_breakdown`. Each case is then scored by the `pss` binary,
//! run in the case folder so that it finds the same `pypss.toml` /
//! `pyproject.toml` pypss found, and every number must be equal.
//!
//! pypss is installed by `scripts/test.sh` into `target/pypss-venv`; set
//! `PSS_PYTHON` to use another interpreter that has `pypss==1.3.1`.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::{ok, pss, python, repo, shipped_history};

fn generate() -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let script = repo("tests/pypss/cases.py");
    let out = Command::new(python()).arg(&script).arg(dir.path()).output().expect("run python");
    assert!(out.status.success(), "case generator failed: {}", String::from_utf8_lossy(&out.stderr));
    let index: Vec<String> = serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    assert!(index.len() >= 100, "expected at least 100 cases, got {}", index.len());
    (dir, index)
}

fn pss_json(case_dir: &Path, file: &str) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pss"))
        .current_dir(case_dir)
        .args(["analyze", file, "--format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "pss failed in {}: {stderr}", case_dir.display());
    (serde_json::from_slice(&out.stdout).expect("pss prints JSON"), stderr)
}

fn pick(v: &Value) -> Value {
    serde_json::json!({ "pss": v["pss"], "breakdown": v["breakdown"] })
}

#[test]
fn pss_equals_pypss_on_every_case() {
    let (dir, index) = generate();
    let mut failures = Vec::new();
    let mut compared = 0;
    let mut crashes = 0;
    for name in &index {
        let case = dir.path().join(name);
        let expected: Value = serde_json::from_slice(&std::fs::read(case.join("expected.json")).unwrap()).unwrap();
        let (got, _) = pss_json(&case, "traces.json");
        if expected.get("crash").is_some() {
            // pypss raises here; pss must score what it can and count what it skipped.
            crashes += 1;
            if got["skipped"].as_u64().unwrap_or(0) == 0 {
                failures.push(format!("{name}: pypss crashes ({}), pss skipped nothing", expected["crash"]));
            }
            continue;
        }
        compared += 1;
        if pick(&got) != expected["overall"] {
            failures.push(format!("{name}: overall\n  pypss {}\n  pss   {}", expected["overall"], pick(&got)));
        }
        let exp_mods = expected["modules"].as_object().unwrap();
        let got_mods = got["modules"].as_object().unwrap();
        for (m, e) in exp_mods {
            match got_mods.get(m) {
                Some(g) if pick(g) == *e => {}
                Some(g) => failures.push(format!("{name}: module {m}\n  pypss {e}\n  pss   {}", pick(g))),
                None => failures.push(format!("{name}: module {m} missing from pss")),
            }
        }
        for m in got_mods.keys() {
            if !exp_mods.contains_key(m) {
                failures.push(format!("{name}: pss has a module pypss does not: {m}"));
            }
        }
    }
    assert!(crashes >= 4, "the crash cases must be generated");
    assert!(failures.is_empty(), "{} of {compared} cases differ:\n{}", failures.len(), failures.join("\n"));
}

/// The same traces as JSON Lines, wrapped in {"traces": ...}, gzip-compressed,
/// CSV-free shapes, through stdin: identical scores.
#[test]
fn every_json_shape_scores_the_same() {
    let (dir, index) = generate();
    for name in
        index.iter().filter(|n| n.starts_with("normal_") || n.starts_with("mixed_1") || n.starts_with("system_lag"))
    {
        let case = dir.path().join(name);
        let traces: Value = serde_json::from_slice(&std::fs::read(case.join("traces.json")).unwrap()).unwrap();
        let arr = traces.as_array().unwrap();
        if arr.is_empty() {
            continue;
        }
        let (reference, _) = pss_json(&case, "traces.json");
        // JSON Lines, in a file named .json (sniffed from content).
        let jsonl: String = arr.iter().map(|t| serde_json::to_string(t).unwrap() + "\n").collect();
        std::fs::write(case.join("lines.json"), &jsonl).unwrap();
        // pypss run --output shape: traces after other keys.
        let wrapped = serde_json::json!({"overall": {"pss": 1}, "modules": {}, "traces": traces});
        std::fs::write(case.join("wrapped.json"), serde_json::to_string_pretty(&wrapped).unwrap()).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(jsonl.as_bytes()).unwrap();
        std::fs::write(case.join("lines.jsonl.gz"), gz.finish().unwrap()).unwrap();
        for f in ["lines.json", "wrapped.json", "lines.jsonl.gz"] {
            let (got, _) = pss_json(&case, f);
            assert_eq!(pick(&got), pick(&reference), "{name}/{f}");
            assert_eq!(got["modules"], reference["modules"], "{name}/{f}");
        }
    }
}

fn pss_ok(dir: &Path, args: &[&str]) -> String {
    ok(&pss(dir, args))
}

fn py(dir: &Path, script: &str) -> String {
    let out = Command::new(python()).current_dir(dir).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// pypss's `SQLiteStorage` and `pypss history` read what pss stored, and pss
/// reads (and extends) a history file pypss wrote.
#[test]
fn history_database_is_shared_with_pypss() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let traces: Vec<String> =
        (0..50).map(|i| format!("{{\"duration\": {}, \"memory\": 100}}", 0.1 + i as f64 * 0.01)).collect();
    std::fs::write(d.join("t.json"), format!("[{}]", traces.join(","))).unwrap();
    let report: Value = serde_json::from_str(&pss_ok(d, &["analyze", "t.json", "--format", "json"])).unwrap();
    pss_ok(d, &["analyze", "t.json", "--store-history", "--history", "pss.db", "--service", "api"]);
    pss_ok(d, &["analyze", "t.json", "--store-history", "--history", "pss.db", "--service", "api"]);
    let rows: Value = serde_json::from_str(&py(
        d,
        "import json; from pypss.storage.sqlite import SQLiteStorage; \
         print(json.dumps(SQLiteStorage(db_path='pss.db').get_history(limit=10)))",
    ))
    .unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["pss"].as_f64(), report["pss"].as_f64());
    assert_eq!(rows[0]["ts"].as_f64(), report["breakdown"]["timing_stability"].as_f64());
    assert_eq!(rows[0]["meta"]["service"], "api");
    // pypss's own CLI exports it.
    let csv = py(d, "import sys; sys.argv = ['pypss', 'history', '--db-path', 'pss.db', '--export', 'csv']; from pypss.cli.cli import main; main()");
    assert!(csv.starts_with("id,timestamp,pss,ts,ms,ev,be,cc,meta"), "{csv}");
    // A file pypss wrote opens in pss, gains pss's tables, and still opens in pypss.
    py(
        d,
        "from pypss.storage.sqlite import SQLiteStorage; \
         SQLiteStorage(db_path='pypss.db').save({'pss': 77, 'breakdown': {'timing_stability': 0.5, 'memory_stability': 0.6, \
         'error_volatility': 0.7, 'branching_entropy': 0.8, 'concurrency_chaos': 0.9}}, meta={'script': 'x.py'})",
    );
    let h: Value = serde_json::from_str(&pss_ok(d, &["history", "--history", "pypss.db", "--export", "json"])).unwrap();
    assert_eq!(h[0]["pss"].as_f64(), Some(77.0));
    assert_eq!(h[0]["cc"].as_f64(), Some(0.9));
    assert_eq!(h[0]["meta"]["script"], "x.py");
    pss_ok(d, &["ingest", "t.json", "--history", "pypss.db", "--service", "api"]);
    let n = py(
        d,
        "from pypss.storage.sqlite import SQLiteStorage; print(len(SQLiteStorage(db_path='pypss.db').get_history()))",
    );
    assert_eq!(n.trim(), "1");
}

/// Every stored window scores exactly as pypss scores that window's traces.
#[test]
fn window_scores_equal_pypss() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pss_ok(
        d,
        &[
            "simulate",
            "--days",
            "0.25",
            "--services",
            "1",
            "--seed",
            "11",
            "--rate",
            "40",
            "--incidents-per-day",
            "8",
            "-o",
            "sim",
        ],
    );
    pss_ok(d, &["ingest", "sim/checkout.jsonl", "--history", "h.db", "--service", "checkout", "--window", "5m"]);
    pss_ok(
        d,
        &[
            "windows",
            "--history",
            "h.db",
            "--service",
            "checkout",
            "--window",
            "5m",
            "--export",
            "csv",
            "-o",
            "all.csv",
        ],
    );
    pss_ok(
        d,
        &[
            "windows",
            "--history",
            "h.db",
            "--service",
            "checkout",
            "--window",
            "5m",
            "--module",
            "checkout.db",
            "--export",
            "csv",
            "-o",
            "db.csv",
        ],
    );
    let script = r#"
import csv, json, math
from pypss.core.core import compute_pss_from_traces
traces = [json.loads(l) for l in open('sim/checkout.jsonl')]
traces.sort(key=lambda t: t['timestamp'])  # stable: file order within a timestamp
def windows(module):
    groups = {}
    for t in traces:
        if module is None or t.get('module') == module:
            groups.setdefault(math.floor(t['timestamp'] / 300) * 300, []).append(t)
    return groups
bad = 0
checked = 0
for module, path in [(None, 'all.csv'), ('checkout.db', 'db.csv')]:
    groups = windows(module)
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == len(groups), (path, len(rows), len(groups))
    for r in rows:
        exp = compute_pss_from_traces(groups[float(r['start'])])
        got = {'pss': float(r['pss']), 'breakdown': {k: float(r[c]) for k, c in [('timing_stability', 'ts'), ('memory_stability', 'ms'), ('error_volatility', 'ev'), ('branching_entropy', 'be'), ('concurrency_chaos', 'cc')]}}
        checked += 1
        if got['pss'] != exp['pss'] or any(got['breakdown'][k] != exp['breakdown'][k] for k in exp['breakdown']):
            bad += 1
            print('DIFF', path, r['start'], exp, got)
print('checked', checked, 'bad', bad)
"#;
    let out = py(d, script);
    assert!(out.contains("bad 0"), "{out}");
    assert!(out.contains("checked"), "{out}");
}

/// A config written by `pss-tune` loads in pypss unchanged, and pypss scores
/// traces with it exactly as `pss analyze --config` does.
#[test]
fn tuned_config_loads_in_pypss_with_the_same_scores() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    shipped_history(d, &["payments"]);
    let out = Command::new(env!("CARGO_BIN_EXE_pss-tune"))
        .current_dir(d)
        .args([
            "--history",
            "h.db",
            "--service",
            "payments",
            "--window",
            "5m",
            "--iterations",
            "16",
            "-o",
            "cfg/pypss.toml",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sample = repo("datasets/sample-traces.json");
    let ours: Value = serde_json::from_str(&pss_ok(
        d,
        &["analyze", sample.to_str().unwrap(), "--config", "cfg/pypss.toml", "--format", "json"],
    ))
    .unwrap();
    let script = format!(
        "import json, os; os.chdir('cfg'); \
         from pypss.utils.config import PSSConfig; import pypss.core.core as core; \
         cfg = PSSConfig.load(); core.GLOBAL_CONFIG = cfg; \
         print(json.dumps(core.compute_pss_from_traces(json.load(open({:?})))))",
        sample.to_str().unwrap()
    );
    let theirs: Value = serde_json::from_str(py(d, &script).trim()).unwrap();
    assert_eq!(pick(&ours), theirs);
}

/// Our isolation forest ranks like scikit-learn's on the same generated data:
/// ROC AUC within 0.02 against the same labels (several datasets and seeds).
#[test]
fn isolation_forest_ranks_like_scikit_learn() {
    use pss::detect::iforest::{roc_auc, IsolationForestParams};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = r#"
import numpy as np, json
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
out = []
for seed, dims, spread in [(0, 2, 4.0), (1, 4, 3.0), (2, 8, 2.5), (3, 4, 1.8)]:
    rng = np.random.default_rng(seed)
    normal = np.concatenate([rng.normal(0, 1, (1200, dims)), rng.normal(3, 0.5, (600, dims))])
    outliers = rng.uniform(-spread * 2, spread * 2, (90, dims))
    X = np.concatenate([normal, outliers]); y = np.array([0] * len(normal) + [1] * len(outliers))
    aucs = []
    for rs in range(3):
        f = IsolationForest(n_estimators=100, max_samples=256, random_state=rs).fit(X)
        aucs.append(roc_auc_score(y, -f.score_samples(X)))
    out.append({"X": X.tolist(), "y": y.tolist(), "auc": float(np.mean(aucs))})
print(json.dumps(out))
"#;
    let cases: Value = serde_json::from_str(&py(d, script)).unwrap();
    for (k, case) in cases.as_array().unwrap().iter().enumerate() {
        let rows: Vec<Vec<f64>> = serde_json::from_value(case["X"].clone()).unwrap();
        let y: Vec<bool> = case["y"].as_array().unwrap().iter().map(|v| v.as_i64() == Some(1)).collect();
        let dims = rows[0].len();
        let x = ndarray::Array2::from_shape_vec((rows.len(), dims), rows.concat()).unwrap();
        let ours: f64 = (0..3)
            .map(|seed| {
                let f = IsolationForestParams { seed, ..Default::default() }.check().unwrap().fit(&x.view()).unwrap();
                roc_auc(&f.score(&x.view()), &y)
            })
            .sum::<f64>()
            / 3.0;
        let theirs = case["auc"].as_f64().unwrap();
        assert!((ours - theirs).abs() <= 0.02, "case {k}: pss AUC {ours:.4}, scikit-learn {theirs:.4}");
        let ext =
            IsolationForestParams { extended: true, ..Default::default() }.check().unwrap().fit(&x.view()).unwrap();
        let ext_auc = roc_auc(&ext.score(&x.view()), &y);
        assert!(ext_auc >= theirs - 0.05, "case {k}: extended AUC {ext_auc:.4} vs scikit-learn {theirs:.4}");
    }
}

/// pypss's built-in custom metrics (its plugin system): `tests/pypss/plugin_cases.py`
/// registers them in pypss with the case's weights; pss reads the same
/// `pypss.toml` (`plugins` by code, class name or path, the weights table).
/// Every PSS, breakdown (the five and each metric's code) and module
/// breakdown must be equal. Where pypss's DB/NET/CACHE raise on a null
/// branch tag and score 0.0, pss must equal pypss on the same traces with
/// the tag read as "" — and pypss's own answer must indeed be the 0.0.
#[test]
fn custom_metrics_equal_pypss_with_its_plugins_registered() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(python()).arg(repo("tests/pypss/plugin_cases.py")).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let index: Vec<String> = serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    let (mut compared, mut deviations) = (0, 0);
    for name in &index {
        let case = dir.path().join(name);
        let expected: Value = serde_json::from_slice(&std::fs::read(case.join("expected.json")).unwrap()).unwrap();
        let (got, stderr) = pss_json(&case, "traces.json");
        assert!(!stderr.contains("plugins"), "{name}: every plugin resolved: {stderr}");
        assert_eq!(pick(&got), pick(&expected), "{name}: overall");
        for (module, e) in expected["modules"].as_object().unwrap() {
            assert_eq!(pick(&got["modules"][module]), pick(e), "{name}: module {module}");
        }
        if let Some(raw) = expected.get("pypss_raw") {
            let b = raw["breakdown"].as_object().unwrap();
            if ["DB", "NET", "CACHE"].iter().any(|c| b.get(*c).and_then(Value::as_f64) == Some(0.0)) {
                deviations += 1;
            }
        }
        compared += 1;
    }
    assert_eq!(compared, 24);
    assert!(deviations > 0, "the null-tag cases show pypss's 0.0");
}
