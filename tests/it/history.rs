//! Command-level tests of the history store: ingest, incidents, history,
//! windows, prune, simulate, and the store's reliability (two writers, a
//! killed ingest).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{err, ok, pss, repo};

fn sample() -> PathBuf {
    repo("datasets/sample-traces.json")
}

fn count(db: &Path, service: &str) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(
        "SELECT COUNT(*) FROM traces t JOIN services s ON s.id = t.service_id WHERE s.name = ?1",
        [service],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn ingest_is_idempotent_and_a_bad_file_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = sample();
    let s = s.to_str().unwrap();
    let first = ok(&pss(d, &["ingest", s, "--history", "h.db", "--service", "shop"]));
    assert!(first.contains("1530 inserted, 0 duplicates"), "{first}");
    let again = ok(&pss(d, &["ingest", s, "--history", "h.db", "--service", "shop"]));
    assert!(again.contains("0 inserted, 1530 duplicates"), "{again}");
    assert_eq!(count(&d.join("h.db"), "shop"), 1530);
    // Traces without trace_id are deduplicated on content.
    std::fs::write(d.join("noid.jsonl"), "{\"duration\": 1, \"timestamp\": 5}\n{\"duration\": 2, \"timestamp\": 6}\n")
        .unwrap();
    ok(&pss(d, &["ingest", "noid.jsonl", "--history", "h.db", "--service", "other"]));
    let o = ok(&pss(d, &["ingest", "noid.jsonl", "--history", "h.db", "--service", "other"]));
    assert!(o.contains("0 inserted, 2 duplicates"), "{o}");
    // A file broken on its last line: the whole file is rolled back.
    let mut text = String::new();
    for i in 0..500 {
        text.push_str(&format!("{{\"trace_id\": \"b{i}\", \"duration\": 0.1, \"timestamp\": {}}}\n", 1000 + i));
    }
    text.push_str("{\"trace_id\": \"broken\", \"duration\": \n");
    std::fs::write(d.join("bad.jsonl"), text).unwrap();
    let e = err(&pss(d, &["ingest", "bad.jsonl", "--history", "h.db", "--service", "bad"]));
    assert!(e.contains("bad.jsonl:501") && e.contains("nothing of this file was stored"), "{e}");
    assert_eq!(count(&d.join("h.db"), "bad"), 0);
}

#[test]
fn incidents_are_validated_row_by_row_and_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = sample();
    ok(&pss(d, &["ingest", s.to_str().unwrap(), "--history", "h.db", "--service", "shop"]));
    let cases = [
        (
            "id,service,start,end,severity,title\na,shop,2026-11-26T08:10:00Z,2026-11-26T08:00:00Z,sev2,x\n",
            "line 2",
            "not after start",
        ),
        (
            "id,service,start,end,severity,title\na,shop,1795680000,1795680600,,\nb,shop,1795680300,1795681000,,\n",
            "line 3",
            "overlaps",
        ),
        ("id,service,start,end,severity,title\na,nope,1795680000,1795680600,,\n", "line 2", "unknown service 'nope'"),
        (
            "id,service,start,end,severity,title\na,shop,1795680000,1795680600,,\nb,shop,yesterday,1795690000,,\n",
            "line 3",
            "'yesterday'",
        ),
    ];
    for (csv, place, msg) in cases {
        std::fs::write(d.join("inc.csv"), csv).unwrap();
        let e = err(&pss(d, &["incidents", "import", "inc.csv", "--history", "h.db"]));
        assert!(e.contains("inc.csv") && e.contains(place) && e.contains(msg), "{e}");
    }
    let list = ok(&pss(d, &["incidents", "list", "--history", "h.db", "--json"]));
    assert_eq!(serde_json::from_str::<Value>(&list).unwrap().as_array().unwrap().len(), 0, "nothing half-imported");
    std::fs::write(
        d.join("inc.json"),
        r#"[{"id": "i1", "service": "shop", "start": "2026-11-26T08:06:00Z", "end": "2026-11-26T08:08:00Z", "severity": "sev2", "title": "orders errors"}]"#,
    )
    .unwrap();
    ok(&pss(d, &["incidents", "import", "inc.json", "--history", "h.db"]));
    let o = ok(&pss(
        d,
        &[
            "incidents",
            "add",
            "--history",
            "h.db",
            "--id",
            "i2",
            "--service",
            "shop",
            "--start",
            "1795680000",
            "--end",
            "1795680060",
        ],
    ));
    assert!(o.contains("added incident i2"));
    let table = ok(&pss(d, &["incidents", "list", "--history", "h.db"]));
    assert!(table.contains("orders errors") && table.contains("2 incidents"), "{table}");
    // Windows overlapping the incident are labeled with it.
    let w = ok(&pss(d, &["windows", "--history", "h.db", "--service", "shop"]));
    let labeled: Vec<&str> = w.lines().filter(|l| l.contains("i1")).collect();
    assert_eq!(labeled.len(), 2, "{w}");
    ok(&pss(d, &["incidents", "rm", "i2", "--history", "h.db"]));
    err(&pss(d, &["incidents", "rm", "i2", "--history", "h.db"]));
}

#[test]
fn windows_export_to_csv_and_parquet() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = sample();
    ok(&pss(d, &["ingest", s.to_str().unwrap(), "--history", "h.db", "--service", "shop", "--window", "2m"]));
    ok(&pss(
        d,
        &["windows", "--history", "h.db", "--service", "shop", "--window", "2m", "--export", "csv", "-o", "w.csv"],
    ));
    ok(&pss(
        d,
        &[
            "windows",
            "--history",
            "h.db",
            "--service",
            "shop",
            "--window",
            "2m",
            "--export",
            "parquet",
            "-o",
            "w.parquet",
        ],
    ));
    let csv =
        CsvReadOptions::default().try_into_reader_with_file_path(Some(d.join("w.csv"))).unwrap().finish().unwrap();
    let pq = ParquetReader::new(std::fs::File::open(d.join("w.parquet")).unwrap()).finish().unwrap();
    assert_eq!(csv.height(), 5, "10 minutes in 2-minute windows");
    assert_eq!(pq.height(), 5);
    for col in ["start", "pss", "lat_p95", "mem_slope", "error_rate", "label", "incident"] {
        assert!(pq.column(col).is_ok(), "missing column {col}");
    }
    let traces: u64 = pq.column("traces").unwrap().as_materialized_series().u64().unwrap().sum().unwrap();
    assert_eq!(traces, 1530);
}

#[test]
fn store_history_warns_on_regression_and_pss_history_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good: Vec<String> =
        (0..200).map(|i| format!("{{\"duration\": {}, \"memory\": 1000}}", 0.1 + (i % 3) as f64 * 0.001)).collect();
    std::fs::write(d.join("good.json"), format!("[{}]", good.join(","))).unwrap();
    let bad: Vec<String> = (0..200)
        .map(|i| {
            format!(
                "{{\"duration\": {}, \"memory\": {}, \"error\": {}}}",
                0.01 * (1 + i % 50) as f64,
                1000 + i * 1000,
                i % 2 == 0
            )
        })
        .collect();
    std::fs::write(d.join("bad.json"), format!("[{}]", bad.join(","))).unwrap();
    for _ in 0..3 {
        let o = ok(&pss(d, &["analyze", "good.json", "--store-history", "--history", "h.db", "--service", "api"]));
        assert!(o.contains("stored in history") && !o.contains("REGRESSION"), "{o}");
    }
    let o = ok(&pss(d, &["analyze", "bad.json", "--store-history", "--history", "h.db", "--service", "api"]));
    assert!(o.contains("REGRESSION DETECTED"), "{o}");
    let h = ok(&pss(d, &["history", "--history", "h.db", "--export", "json", "--service", "api"]));
    let rows: Value = serde_json::from_str(&h).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 4);
    assert_eq!(rows[0]["meta"]["trace_file"], "bad.json");
    let table = ok(&pss(d, &["history", "--history", "h.db"]));
    assert!(table.contains("Historical PSS Trends"), "{table}");
    let csv = ok(&pss(d, &["history", "--history", "h.db", "--export", "csv"]));
    assert!(csv.starts_with("id,timestamp,pss,ts,ms,ev,be,cc,meta\r\n"), "pypss's csv module's CRLF: {csv:?}");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&pss(d, &["ingest", sample().to_str().unwrap(), "--history", "h.db", "--service", "shop"]));
    let c = rusqlite::Connection::open(d.join("h.db")).unwrap();
    c.execute("UPDATE _meta SET value = '99' WHERE key = 'pss_schema'", []).unwrap();
    drop(c);
    let e = err(&pss(d, &["windows", "--history", "h.db", "--service", "shop"]));
    assert!(e.contains("newer pss") && e.contains("99"), "{e}");
}

#[test]
fn prune_removes_old_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&pss(d, &["ingest", sample().to_str().unwrap(), "--history", "h.db", "--service", "shop"]));
    // The sample's timestamps are in 2026-11-26; everything is older than 1 second from "now" only
    // if now is later, so prune with a huge age keeps all and a tiny age removes all.
    let o = ok(&pss(d, &["prune", "--history", "h.db", "--older-than", "5200w"]));
    assert!(o.contains("pruned 0 traces"), "{o}");
    let o = ok(&pss(d, &["prune", "--history", "h.db", "--older-than", "1s"]));
    assert!(o.contains("pruned 1530 traces"), "{o}");
}

#[test]
fn simulate_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for out in ["a", "b"] {
        ok(&pss(
            d,
            &[
                "simulate",
                "--days",
                "0.5",
                "--services",
                "2",
                "--seed",
                "3",
                "--rate",
                "5",
                "--incidents-per-day",
                "4",
                "-o",
                out,
            ],
        ));
    }
    for f in ["checkout.jsonl", "search.jsonl", "incidents.csv"] {
        assert_eq!(std::fs::read(d.join("a").join(f)).unwrap(), std::fs::read(d.join("b").join(f)).unwrap(), "{f}");
    }
    let inc = std::fs::read_to_string(d.join("a/incidents.csv")).unwrap();
    assert_eq!(inc.lines().count(), 1 + 4, "2 incidents per service: {inc}");
    ok(&pss(d, &["simulate", "--days", "0.5", "--services", "2", "--seed", "4", "--rate", "5", "-o", "c"]));
    assert_ne!(std::fs::read(d.join("a/checkout.jsonl")).unwrap(), std::fs::read(d.join("c/checkout.jsonl")).unwrap());
    err(&pss(d, &["simulate", "--days", "0", "-o", "x"]));
}

#[test]
fn two_writers_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&pss(d, &["simulate", "--days", "0.5", "--services", "2", "--seed", "5", "--rate", "40", "-o", "sim"]));
    let spawn = |svc: &str| {
        Command::new(env!("CARGO_BIN_EXE_pss"))
            .current_dir(d)
            .args(["ingest", &format!("sim/{svc}.jsonl"), "--history", "h.db", "--service", svc])
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn("checkout"), spawn("search"));
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    assert!(count(&d.join("h.db"), "checkout") > 10_000);
    assert!(count(&d.join("h.db"), "search") > 10_000);
}

#[test]
fn a_killed_ingest_leaves_a_sound_database_with_every_finished_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&pss(d, &["ingest", sample().to_str().unwrap(), "--history", "h.db", "--service", "shop"]));
    ok(&pss(d, &["simulate", "--days", "3", "--services", "1", "--seed", "9", "--rate", "200", "-o", "big"]));
    let mut child = Command::new(env!("CARGO_BIN_EXE_pss"))
        .current_dir(d)
        .args(["ingest", "big/checkout.jsonl", "--history", "h.db", "--service", "big"])
        .spawn()
        .unwrap();
    // Wait until the ingest is writing (its WAL grows), then kill it.
    let wal = d.join("h.db-wal");
    let t0 = std::time::Instant::now();
    while std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) < 4 << 20 && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the ingest should have been killed mid-way; make the file bigger");
    let c = rusqlite::Connection::open(d.join("h.db")).unwrap();
    let check: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    drop(c);
    assert_eq!(count(&d.join("h.db"), "shop"), 1530, "the finished file is all there");
    assert_eq!(count(&d.join("h.db"), "big"), 0, "the killed file left nothing");
}

#[test]
fn the_shipped_history_ingests_and_labels_windows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/history");
    for s in ["checkout", "search", "payments"] {
        let f = data.join(format!("{s}.jsonl.gz"));
        let o = ok(&pss(d, &["ingest", f.to_str().unwrap(), "--history", "h.db", "--service", s, "--window", "5m"]));
        assert!(o.contains("inserted, 0 duplicates"), "{o}");
    }
    let inc = data.join("incidents.csv");
    ok(&pss(d, &["incidents", "import", inc.to_str().unwrap(), "--history", "h.db"]));
    let w = ok(&pss(d, &["windows", "--history", "h.db", "--service", "checkout", "--window", "5m"]));
    let labeled = w.lines().filter(|l| l.contains("checkout-")).count();
    assert!(labeled >= 10, "labeled windows: {labeled}");
    assert_eq!(w.lines().count(), 1 + 864, "three days of 5-minute windows");
}

#[test]
fn retention_prunes_automatically_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("old.jsonl"), "{\"trace_id\": \"a\", \"duration\": 1, \"timestamp\": 1000}\n").unwrap();
    ok(&pss(d, &["ingest", "old.jsonl", "--history", "h.db", "--service", "s"]));
    assert_eq!(count(&d.join("h.db"), "s"), 1, "no retention by default");
    std::fs::write(d.join("pss.toml"), "[pss]\nretention = \"30d\"\n").unwrap();
    let o = ok(&pss(d, &["ingest", "old.jsonl", "--history", "h.db", "--service", "s"]));
    assert!(o.contains("retention (30d): pruned 1 traces"), "{o}");
    assert_eq!(count(&d.join("h.db"), "s"), 0);
}

/// The window length is asked for once, at ingest: commands that read (or
/// add to) a history holding one length use it without `--window`.
#[test]
fn the_stored_window_length_is_used_when_none_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::common::shipped_history(d, &["checkout"]);
    let w = ok(&pss(d, &["windows", "--history", "h.db", "--service", "checkout"]));
    assert_eq!(w.lines().count(), 1 + 864, "5-minute windows: {}", w.lines().take(3).collect::<Vec<_>>().join("\n"));
    let o = ok(&pss(d, &["ingest", sample().to_str().unwrap(), "--history", "h.db", "--service", "checkout"]));
    assert!(o.contains("windows updated"), "{o}");
    let c = rusqlite::Connection::open(d.join("h.db")).unwrap();
    let lengths: Vec<f64> = c
        .prepare("SELECT DISTINCT seconds FROM windows")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lengths, [300.0], "re-ingest kept the history's length");
    let t = ok(&crate::common::pss_tune(
        d,
        &["--history", "h.db", "--iterations", "8", "--no-detectors", "-o", "m/t.toml"],
    ));
    assert!(t.contains("windows of 300s"), "{t}");
    let e = ok(&pss(d, &["detect", "eval", "--history", "h.db", "--format", "json"]));
    assert!(e.contains("\"train_windows\""), "{e}");
    // An explicit --window still wins (and says when there is none of it).
    let o = crate::common::pss_tune(d, &["--history", "h.db", "--window", "1m"]);
    assert!(err(&o).contains("no 60s windows"));
}

/// An output that cannot be written is exit 74, not an input error.
#[test]
fn an_unwritable_output_is_exit_74() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("file"), "").unwrap();
    let o = pss(d, &["analyze", sample().to_str().unwrap(), "--format", "json", "-o", "file/report.json"]);
    assert_eq!(o.status.code(), Some(74), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("file"), "names the path");
}
