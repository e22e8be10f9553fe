//! Command-level tests of `pss analyze`: bad input, exit codes, formats,
//! configuration errors, escaping.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::pss;

fn pss_stdin(dir: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pss"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn sample_traces(n: usize) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"trace_id":"t{i}","name":"f{}","module":"m{}","duration":{},"memory":{},"wait_time":0.0005,"error":{},"branch_tag":"{}","timestamp":{}}}"#,
                i % 3,
                i % 2,
                0.01 + (i % 7) as f64 * 0.003,
                1000 + i * 10,
                i % 11 == 0,
                if i % 2 == 0 { "a" } else { "b" },
                1700000000.0 + i as f64
            )
        })
        .collect();
    format!("[{}]", items.join(",\n"))
}

#[test]
fn bad_inputs_exit_2_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(sample_traces(200).as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("empty.json", vec![], Some("empty")),
        ("blank.json", b"  \n\t\n".to_vec(), Some("empty")),
        ("truncated.json", br#"[{"duration": 1.0}, {"durat"#.to_vec(), Some(":1:")),
        ("trailing.json", b"[{\"duration\": 1.0}]\n garbage".to_vec(), Some(":2:")),
        ("scalar.json", b"42".to_vec(), Some("number")),
        ("string.json", b"\"traces\"".to_vec(), Some("string")),
        ("traces5.json", br#"{"traces": 5}"#.to_vec(), Some("must be an array")),
        ("binary.bin", vec![0u8, 159, 146, 150, 0, 1, 2, 3, 255, 254], Some("binary")),
        ("badutf8.json", b"[{\"name\": \"\xff\xfe\"}]".to_vec(), Some("UTF-8")),
        ("nesting.json", "[".repeat(100_000).into_bytes(), Some("nesting")),
        ("truncated.json.gz", gz[..gz.len() / 2].to_vec(), Some("gzip")),
        ("noshape.json", br#"{"overall": {"pss": 5}}"#.to_vec(), Some("no \"traces\"")),
        ("badline.jsonl", b"{\"duration\": 1}\n{\"duration\": 2}\n{\"duration\": 3,\n".to_vec(), Some(":3:")),
    ];
    for (name, bytes, needle) in cases {
        std::fs::write(d.join(name), &bytes).unwrap();
        let o = pss(d, &["analyze", name]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(name), "{name}: message must name the file: {err}");
        if let Some(n) = needle {
            assert!(err.contains(n), "{name}: expected {n:?} in {err}");
        }
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
    let o = pss(d, &["analyze", "does-not-exist.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("does-not-exist.json"));
    std::fs::create_dir(d.join("adir")).unwrap();
    let o = pss(d, &["analyze", "adir"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("directory"));
    let o = pss(d, &["analyze"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn empty_array_scores_zero_like_pypss() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("e.json"), "[]").unwrap();
    let o = pss(dir.path(), &["analyze", "e.json", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pss"], Value::from(0));
    assert_eq!(v["breakdown"]["timing_stability"], Value::from(0));
    assert_eq!(v["skipped"], Value::from(0));
}

#[test]
fn fail_if_below_is_a_ci_gate() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.json"), sample_traces(300)).unwrap();
    let v: Value = serde_json::from_slice(&pss(dir.path(), &["analyze", "t.json", "--format", "json"]).stdout).unwrap();
    let score = v["pss"].as_i64().unwrap();
    let above = (score + 1).to_string();
    let at = score.to_string();
    let o = pss(dir.path(), &["analyze", "t.json", "--fail-if-below", &above]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("below threshold"));
    let o = pss(dir.path(), &["analyze", "t.json", "--fail-if-below", &at]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn skipped_traces_are_counted_and_printed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.json"),
        r#"[{"duration": 0.1}, {"duration": 1e400}, 7, {"duration": 0.2, "memory": "x"}, {"duration": NaN}]"#,
    )
    .unwrap();
    let o = pss(dir.path(), &["analyze", "t.json", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["skipped"], Value::from(4));
    assert_eq!(v["skipped_by_reason"]["non_finite"], Value::from(2));
    assert!(stderr(&o).contains("skipped 4 traces"));
    let o = pss(dir.path(), &["analyze", "t.json"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("Skipped: 4 traces"));
}

#[test]
fn several_files_and_stdin_combine() {
    let dir = tempfile::tempdir().unwrap();
    let all = sample_traces(100);
    let v: Vec<Value> = serde_json::from_str(&all).unwrap();
    std::fs::write(dir.path().join("a.json"), serde_json::to_string(&v[..60]).unwrap()).unwrap();
    let b: String = v[60..].iter().map(|t| t.to_string() + "\n").collect();
    std::fs::write(dir.path().join("all.json"), &all).unwrap();
    let whole: Value =
        serde_json::from_slice(&pss(dir.path(), &["analyze", "all.json", "--format", "json"]).stdout).unwrap();
    let o = pss_stdin(dir.path(), &["analyze", "a.json", "-", "--format", "json"], b.as_bytes());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let split: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(split["pss"], whole["pss"]);
    assert_eq!(split["breakdown"], whole["breakdown"]);
    assert_eq!(split["traces"], Value::from(100));
}

#[test]
fn csv_and_parquet_score_like_json() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let all = sample_traces(120);
    std::fs::write(dir.path().join("t.json"), &all).unwrap();
    let v: Vec<Value> = serde_json::from_str(&all).unwrap();
    let mut csv = String::from("trace_id,name,module,duration,memory,wait_time,error,branch_tag,timestamp\n");
    for t in &v {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            t["trace_id"].as_str().unwrap(),
            t["name"].as_str().unwrap(),
            t["module"].as_str().unwrap(),
            t["duration"],
            t["memory"],
            t["wait_time"],
            t["error"],
            t["branch_tag"].as_str().unwrap(),
            t["timestamp"]
        ));
    }
    std::fs::write(dir.path().join("t.csv"), &csv).unwrap();
    let mut df = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(dir.path().join("t.csv")))
        .unwrap()
        .finish()
        .unwrap();
    let f = std::fs::File::create(dir.path().join("t.parquet")).unwrap();
    ParquetWriter::new(f).finish(&mut df).unwrap();
    let get = |f: &str| -> Value {
        let o = pss(dir.path(), &["analyze", f, "--format", "json"]);
        assert_eq!(o.status.code(), Some(0), "{f}: {}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let j = get("t.json");
    for f in ["t.csv", "t.parquet"] {
        let g = get(f);
        assert_eq!(g["pss"], j["pss"], "{f}");
        assert_eq!(g["breakdown"], j["breakdown"], "{f}");
        assert_eq!(g["modules"], j["modules"], "{f}");
    }
}

#[test]
fn config_errors_name_key_and_file_and_unknown_keys_warn() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.json"), sample_traces(20)).unwrap();
    std::fs::write(dir.path().join("pypss.toml"), "[pypss]\nw_ts = -0.3\n").unwrap();
    let o = pss(dir.path(), &["analyze", "t.json"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("pypss.toml") && e.contains("w_ts"), "{e}");
    std::fs::write(dir.path().join("pypss.toml"), "[pypss]\nalpha = 3\nnot_a_key = 1\n").unwrap();
    let o = pss(dir.path(), &["analyze", "t.json"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("not_a_key"));
    std::fs::write(dir.path().join("custom.toml"), "[pss]\nscore_latency_tail_percentile = 120\n").unwrap();
    let o = pss(dir.path(), &["analyze", "t.json", "--config", "custom.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("score_latency_tail_percentile"));
}

#[test]
fn html_escapes_trace_strings_and_is_self_contained() {
    let dir = tempfile::tempdir().unwrap();
    let evil = r#"[{"name":"<script>alert(1)</script>","module":"<img src=x onerror=alert(2)>","duration":0.1,"error":true,"exception_type":"E<b>","exception_message":"</td><script>x</script>"},{"name":"ok","module":"m","duration":0.2}]"#;
    std::fs::write(dir.path().join("t.json"), evil).unwrap();
    let o = pss(dir.path(), &["analyze", "t.json", "--format", "html", "--by", "name"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let html = String::from_utf8(o.stdout).unwrap();
    assert!(!html.contains("<script"), "unescaped script tag");
    assert!(!html.contains("<img"), "unescaped img tag");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    for fetch in ["src=\"http", "href=\"http", "url(", "@import", "<link", "<script"] {
        assert!(!html.contains(fetch), "no external fetches: found {fetch}");
    }
    let o = pss(dir.path(), &["analyze", "t.json", "--format", "markdown", "--output", "out/r.md"]);
    assert_eq!(o.status.code(), Some(0));
    let md = std::fs::read_to_string(dir.path().join("out/r.md")).unwrap();
    assert!(md.contains("# Program Stability Score"));
    assert!(!md.contains("<script>"));
}

/// pypss's `module: null` is the module "None" in its JSON (pss's too), and
/// "(no module)" wherever a person reads it.
#[test]
fn a_trace_without_a_module_reads_as_no_module() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let traces: Vec<serde_json::Value> = (0..40)
        .map(|i| {
            serde_json::json!({ "name": "f", "module": if i % 2 == 0 { serde_json::Value::Null } else { "app".into() },
                "duration": 0.01 + (i % 5) as f64 * 0.001, "wait_time": 0.0, "memory": 1000, "error": false,
                "timestamp": 1_795_680_000.0 + i as f64 })
        })
        .collect();
    std::fs::write(d.join("t.json"), serde_json::to_string(&traces).unwrap()).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&crate::common::ok(&crate::common::pss(d, &["analyze", "t.json", "--format", "json"])))
            .unwrap();
    assert!(json["modules"].get("None").is_some(), "pypss's key stays: {}", json["modules"]);
    for format in ["text", "markdown", "html"] {
        let out = crate::common::ok(&crate::common::pss(d, &["analyze", "t.json", "--format", format]));
        assert!(out.contains("(no module)"), "{format}: {out}");
    }
}

/// pypss's own command line (the console script beside the test interpreter).
fn pypss_cli(dir: &Path, args: &[&str]) -> Output {
    let bin = crate::common::python().with_file_name("pypss");
    Command::new(bin).current_dir(dir).args(args).output().unwrap()
}

#[test]
fn pypss_invocations_work_unchanged_output_json_html_and_history_db_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("t.json"), sample_traces(300)).unwrap();
    // `--output R` without --format: pypss's JSON in R, the text report and "Report saved to R" on stdout.
    let p = pypss_cli(d, &["analyze", "--trace-file", "t.json", "--output", "out/p.json"]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    let o = pss(d, &["analyze", "--trace-file", "t.json", "--output", "out/s.json"]);
    let text = crate::common::ok(&o);
    assert!(text.contains("PSS") && text.trim_end().ends_with("Report saved to out/s.json"), "{text}");
    assert!(String::from_utf8_lossy(&p.stdout).trim_end().ends_with("Report saved to out/p.json"));
    let read = |f: &str| serde_json::from_str::<Value>(&std::fs::read_to_string(d.join(f)).unwrap()).unwrap();
    let (pj, sj) = (read("out/p.json"), read("out/s.json"));
    for k in pj.as_object().unwrap().keys() {
        assert_eq!(pj[k], sj[k], "key {k} as pypss writes it");
    }
    // `--html --output R`: the HTML report, titled by default_html_report_title.
    std::fs::write(d.join("pypss.toml"), "[pypss]\ndefault_html_report_title = \"Checkout <stability>\"\n").unwrap();
    let o = pss(d, &["analyze", "--trace-file", "t.json", "--output", "r.html", "--html"]);
    crate::common::ok(&o);
    let html = std::fs::read_to_string(d.join("r.html")).unwrap();
    assert!(html.contains("<title>Checkout &lt;stability&gt;</title>"), "{}", &html[..400.min(html.len())]);
    // `history --db-path` a database that does not exist: pypss's answer, exit 0.
    let p = pypss_cli(d, &["history", "--db-path", "none.db"]);
    let s = pss(d, &["history", "--db-path", "none2.db"]);
    assert!(s.status.success());
    assert_eq!(String::from_utf8_lossy(&s.stdout), String::from_utf8_lossy(&p.stdout));
    assert_eq!(String::from_utf8_lossy(&s.stdout), "No history found.\n");
    assert!(!d.join("none2.db").exists(), "nothing created");
    let s = pss(d, &["history", "--db-path", "none2.db", "--export", "json"]);
    assert_eq!(crate::common::ok(&s).trim(), "[]");
}

/// Every command line pypss 1.3.1's README shows, with `pypss` replaced by
/// `pss`, next to pypss's own run of the same line in a folder of its own
/// (`pypss run`, which instruments Python, stays pypss's; its trace file is
/// what the other lines read). Same exit codes; the same JSON report; the
/// same history rows.
#[test]
fn every_command_line_of_pypss_readme_runs_under_pss() {
    let traces = sample_traces(400);
    let (pd, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pd, sd) = (pd.path(), sd.path());
    for d in [pd, sd] {
        std::fs::write(d.join("traces.json"), &traces).unwrap();
    }
    let lines: [&[&str]; 7] = [
        &["analyze", "--trace-file", "traces.json", "--output", "report.txt"],
        &["analyze", "--trace-file", "traces.json", "--fail-if-below", "80"],
        &["analyze", "--trace-file", "traces.json", "--store-history"],
        &["analyze", "--trace-file", "traces.json", "--store-history"],
        &["history", "--limit", "20"],
        &["history", "--days", "7"],
        &["history", "--days", "30", "--export", "csv"],
    ];
    let mut outs = Vec::new();
    for line in lines {
        let p = pypss_cli(pd, line);
        let s = pss(sd, line);
        assert_eq!(s.status.code(), p.status.code(), "pss {}: {}", line.join(" "), stderr(&s));
        outs.push((p, s));
    }
    // --output: pypss's JSON report in report.txt.
    let read =
        |d: &Path| serde_json::from_str::<Value>(&std::fs::read_to_string(d.join("report.txt")).unwrap()).unwrap();
    let (sj, pj) = (read(sd), read(pd));
    for k in pj.as_object().unwrap().keys() {
        assert_eq!(sj[k], pj[k], "report.txt key {k}");
    }
    // The history: two stored runs, the same scores, in pypss's table (pypss_history.db).
    // Byte for byte pypss's, timestamps aside (CRLF, json.dumps meta, click's last newline).
    let csv = |o: &Output| String::from_utf8_lossy(&o.stdout).split("\r\n").map(str::to_string).collect::<Vec<_>>();
    let no_time = |rows: &[String]| {
        rows.iter()
            .map(|r| r.split(',').enumerate().filter(|(k, _)| *k != 1).map(|(_, f)| f).collect::<Vec<_>>().join(","))
            .collect::<Vec<_>>()
    };
    let (pc, sc) = (csv(&outs[6].0), csv(&outs[6].1));
    assert_eq!(sc.len(), 4, "header, two rows, click's newline: {sc:?}");
    assert_eq!(no_time(&sc), no_time(&pc));
    assert!(sd.join("pypss_history.db").exists());
    let table = String::from_utf8_lossy(&outs[4].1.stdout).to_string();
    assert!(table.contains("Historical PSS Trends"), "{table}");
    // `pss board traces.json`: serves the file (pypss's port 8080 is taken when
    // another board runs here; the line as written binds 127.0.0.1:8080).
    if std::net::TcpListener::bind("127.0.0.1:8080").is_ok() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pss"))
            .current_dir(sd)
            .args(["board", "traces.json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ok = crate::common::wait_until(std::time::Duration::from_secs(20), || {
            reqwest::blocking::get("http://127.0.0.1:8080/api/meta").is_ok_and(|r| r.status().is_success())
        });
        let _ = child.kill();
        let _ = child.wait();
        assert!(ok, "pss board traces.json serves on 127.0.0.1:8080");
    }
}

#[test]
fn pss_tune_writes_the_whole_config_as_pypss_tune_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("b.json"), sample_traces(300)).unwrap();
    let p = pypss_cli(d, &["tune", "--baseline", "b.json", "--output", "p.toml", "--iterations", "10"]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    let s = pss(d, &["tune", "--baseline", "b.json", "--output", "s.toml", "--iterations", "10"]);
    crate::common::ok(&s);
    let read = |f: &str| -> toml::Table { toml::from_str(&std::fs::read_to_string(d.join(f)).unwrap()).unwrap() };
    let (pt, st) = (read("p.toml"), read("s.toml"));
    let (pt, st) = (pt["pypss"].as_table().unwrap(), st["pypss"].as_table().unwrap());
    assert_eq!(pt.keys().collect::<Vec<_>>(), st.keys().collect::<Vec<_>>(), "every pypss key, in pypss's order");
    let tuned = ["w_ts", "w_ms", "w_ev", "w_be", "w_cc", "alpha", "beta", "gamma", "mem_spike_threshold_ratio"];
    for (k, v) in pt {
        if !tuned.contains(&k.as_str()) && k != "concurrency_wait_threshold" {
            assert_eq!(&st[k], v, "{k}: not tuned, as pypss writes it");
        }
    }
    // pypss reads the file pss wrote.
    std::fs::copy(d.join("s.toml"), d.join("pypss.toml")).unwrap();
    let again = pypss_cli(d, &["analyze", "--trace-file", "b.json"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
}

/// Custom metrics flow past the report: a stored run's meta, the windows
/// `pss ingest` stores (and their Parquet/CSV export), the board's overview.
#[test]
fn custom_metrics_reach_history_windows_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("t.json"), sample_traces(200)).unwrap();
    std::fs::write(
        d.join("pypss.toml"),
        "[pypss]\nplugins = [\"IO\", \"NET\"]\n[[pss.metrics]]\ncode = \"SLOW\"\nstatistic = \"p95_ratio\"\nsensitivity = 0.5\nweight = 0.1\n",
    )
    .unwrap();
    crate::common::ok(&pss(d, &["analyze", "t.json", "--store-history"]));
    let h: Value = serde_json::from_str(&crate::common::ok(&pss(d, &["history", "--export", "json"]))).unwrap();
    let custom = &h[0]["meta"]["custom"];
    assert!(custom["IO"].is_number() && custom["NET"].is_number() && custom["SLOW"].is_number(), "{h}");
    crate::common::ok(&pss(d, &["ingest", "t.json", "--history", "h.db", "--service", "s", "--window", "1h"]));
    crate::common::ok(&pss(d, &["windows", "--history", "h.db", "--service", "s", "--export", "csv", "-o", "w.csv"]));
    let csv = std::fs::read_to_string(d.join("w.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for code in ["IO", "NET", "SLOW"] {
        assert!(header.contains(&code), "{header:?}");
    }
    // The window's PSS is the report's (all 200 traces fall in one hour).
    let report: Value =
        serde_json::from_str(&crate::common::ok(&pss(d, &["analyze", "t.json", "--format", "json"]))).unwrap();
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()].parse::<f64>().unwrap();
    assert_eq!(col("pss"), report["pss"].as_f64().unwrap());
    assert_eq!(pss::pystats::py_round2(col("IO")), report["breakdown"]["IO"].as_f64().unwrap());
}
