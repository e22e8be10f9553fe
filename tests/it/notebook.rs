//! The data scientist's notebook (`notebooks/pss-history.ipynb`) runs end
//! to end on the shipped history: windows exported as Parquet, incidents,
//! the tuning table from the committed model card, alarm episodes under the
//! promoted policy, the plots. Executed with nbclient in the test venv
//! (`scripts/test.sh` installs it with pandas, pyarrow and matplotlib).

use std::process::Command;

use crate::common::{python, repo, shipped_history};

#[test]
fn the_notebook_runs_on_the_shipped_history() {
    let dir = tempfile::tempdir().unwrap();
    let db = shipped_history(dir.path(), &["checkout", "search", "payments"]);
    let out = Command::new(python())
        .current_dir(repo("notebooks"))
        .arg(repo("tests/it/run_notebook.py"))
        .arg("pss-history.ipynb")
        .env("PSS_BIN", env!("CARGO_BIN_EXE_pss"))
        .env("PSS_HISTORY", &db)
        .env("PSS_CARD", repo("models/all/pss-tuned.card.json"))
        .env("PSS_ROOT", repo(""))
        .env("MPLBACKEND", "Agg")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the notebook failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("2592 windows of 300 s, 3 services"), "{stdout}");
    assert!(stdout.contains("tuned validation F1"), "{stdout}");
    assert!(stdout.contains("checkout: Policy "), "the policy in force is shown: {stdout}");
    assert!(stdout.contains("executed 7 code cells"), "{stdout}");
}
