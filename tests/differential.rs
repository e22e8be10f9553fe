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
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("PSS_PYTHON") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pypss-venv/bin/python");
    assert!(
        p.exists(),
        "pypss is not installed: run scripts/test.sh (it installs pypss==1.3.1 into target/pypss-venv), \
         or set PSS_PYTHON to a Python that has pypss==1.3.1"
    );
    p
}

fn generate() -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pypss/cases.py");
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
