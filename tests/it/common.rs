//! Helpers every test module shares: running the binaries, checking exit
//! codes, the pypss interpreter, and the shipped history ingested once per
//! test binary and copied into each test's folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A path inside the repository.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs `pss` in `dir` (without an OpenAI key from the environment).
pub fn pss(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pss")).current_dir(dir).env_remove("OPENAI_API_KEY").args(args).output().unwrap()
}

/// Runs `pss-tune` in `dir`.
pub fn pss_tune(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pss-tune")).current_dir(dir).args(args).output().unwrap()
}

/// Standard output of a run that must exit 0.
pub fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Standard error of a run that must exit 2 (usage or input error).
pub fn err(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(2), "expected exit 2; stdout: {}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A Python with pypss 1.3.1: `PSS_PYTHON`, else the venv `scripts/test.sh` makes.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("PSS_PYTHON") {
        return PathBuf::from(p);
    }
    let p = repo("target/pypss-venv/bin/python");
    assert!(
        p.exists(),
        "pypss is not installed: run scripts/test.sh (it installs pypss==1.3.1 into target/pypss-venv), \
         or set PSS_PYTHON to a Python that has pypss==1.3.1"
    );
    p
}

/// Polls `ready` every 20 ms until it holds or `timeout` passes; true when it held.
pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies into `dir/h.db` a history of these shipped services
/// (`datasets/history/`, 5-minute windows) with their incidents. Each set of
/// services is ingested once per test binary; tests get their own copy.
pub fn shipped_history(dir: &Path, services: &[&str]) -> PathBuf {
    /// A set of services → the folder holding its database, and the database.
    type Templates = Mutex<HashMap<Vec<String>, (tempfile::TempDir, PathBuf)>>;
    static TEMPLATES: OnceLock<Templates> = OnceLock::new();
    let key: Vec<String> = services.iter().map(|s| s.to_string()).collect();
    let mut map = TEMPLATES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let (_, db) = map.entry(key).or_insert_with(|| {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let data = repo("datasets/history");
        for s in services {
            let f = data.join(format!("{s}.jsonl.gz"));
            ok(&pss(d, &["ingest", f.to_str().unwrap(), "--history", "h.db", "--service", s, "--window", "5m"]));
        }
        let csv = std::fs::read_to_string(data.join("incidents.csv")).unwrap();
        let mine: String = csv
            .lines()
            .filter(|l| l.starts_with("id,") || services.iter().any(|s| l.contains(&format!(",{s},"))))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(d.join("inc.csv"), mine).unwrap();
        ok(&pss(d, &["incidents", "import", "inc.csv", "--history", "h.db"]));
        let db = d.join("h.db");
        (t, db)
    });
    let to = dir.join("h.db");
    std::fs::copy(&*db, &to).unwrap();
    for ext in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{ext}", db.display()));
        if side.exists() {
            std::fs::copy(&side, format!("{}{ext}", to.display())).unwrap();
        }
    }
    to
}
