//! `pss board`: its API gives the CLI's numbers, it is locked down as the
//! README says, and the pages work in a real browser (Debian's Chromium and
//! chromium-driver, driven from Python's selenium: `board_browser.py`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::{ok, pss, python, repo, shipped_history};

/// A running board (or `pss serve --board`) and its base URL.
struct Running {
    child: Child,
    base: String,
}

impl Running {
    /// Starts `pss ARGS` in `dir` and waits for the line announcing `prefix` + URL.
    fn start(dir: &Path, args: &[&str], prefix: &str) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pss"))
            .current_dir(dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut base = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix(prefix) {
                base = Some(rest.split_whitespace().next().unwrap().trim_end_matches('/').to_string());
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Running { child, base: base.expect("the server announced its address") }
    }

    fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let r = reqwest::blocking::get(format!("{}{path}", self.base)).unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.text().unwrap())
    }

    fn json(&self, path: &str) -> serde_json::Value {
        let (status, _, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_api_gives_the_numbers_pss_analyze_and_pss_windows_give() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // A trace file: the overview is `pss analyze --format json` of it.
    let sample = repo("datasets/sample-traces.json");
    let b = Running::start(d, &["board", sample.to_str().unwrap(), "--http", "127.0.0.1:0"], "pss board: ");
    let meta = b.json("/api/meta");
    assert_eq!(meta["mode"], "files");
    assert_eq!(meta["services"][0]["name"], "sample-traces");
    let o = b.json("/api/overview?service=sample-traces");
    let a: serde_json::Value =
        serde_json::from_str(&ok(&pss(d, &["analyze", sample.to_str().unwrap(), "--format", "json"]))).unwrap();
    assert_eq!(o["pss"], a["pss"]);
    assert_eq!(o["breakdown"], a["breakdown"]);
    assert_eq!(o["modules"], a["modules"], "every module's PSS, sub-scores, traces and errors");
    let worst: Vec<i64> =
        o["modules_worst_first"].as_array().unwrap().iter().map(|m| m["pss"].as_i64().unwrap()).collect();
    assert!(worst.windows(2).all(|w| w[0] <= w[1]), "{worst:?}");
    // The window lengths a trace file offers arrive in the background.
    assert!(crate::common::wait_until(std::time::Duration::from_secs(20), || {
        b.json("/api/meta")["services"][0]["windows"].as_array().unwrap().len() == 5
    }));
    // Unasked, the series are of the service's default length: one whose windows mostly score.
    let default = b.json("/api/meta")["services"][0]["window"].as_f64().unwrap();
    let s = b.json("/api/series?service=sample-traces&points=5000");
    assert_eq!(s["window"].as_f64(), Some(default));
    let scored = s["pss"].as_array().unwrap().iter().filter(|v| !v.is_null()).count();
    assert!(scored * 2 >= s["t"].as_array().unwrap().len() && scored > 0, "{default} s: {s}");
    let m = b.json("/api/module?service=sample-traces&module=api.orders");
    assert!(m["traces"].as_u64().unwrap() > 0 && !m["latency"].as_array().unwrap().is_empty());
    drop(b);

    // A file that changes is read again, as pypss's board does.
    let all: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&sample).unwrap()).unwrap();
    std::fs::write(d.join("live.json"), serde_json::to_string(&all[..600]).unwrap()).unwrap();
    let b = Running::start(d, &["board", "live.json", "--http", "127.0.0.1:0"], "pss board: ");
    let before = b.json("/api/overview?service=live")["traces"].as_u64().unwrap();
    std::fs::write(d.join("live.json"), serde_json::to_string(&all).unwrap()).unwrap();
    assert!(
        crate::common::wait_until(std::time::Duration::from_secs(20), || {
            b.json("/api/overview?service=live")["traces"].as_u64().unwrap() == all.len() as u64
        }),
        "the board did not re-read the file ({before} traces before)"
    );
    drop(b);

    // A history: the series are `pss windows`' window scores.
    let db = shipped_history(d, &["payments"]);
    let b = Running::start(d, &["board", "--history", db.to_str().unwrap(), "--http", "127.0.0.1:0"], "pss board: ");
    let s = b.json("/api/series?service=payments&points=5000");
    assert_eq!(s["step"], 1);
    ok(&pss(d, &["windows", "--history", "h.db", "--service", "payments", "--export", "csv", "-o", "w.csv"]));
    let csv = std::fs::read_to_string(d.join("w.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let (ci, cp, cs) = (
        header.iter().position(|h| *h == "start").unwrap(),
        header.iter().position(|h| *h == "pss").unwrap(),
        header.iter().position(|h| *h == "too_small").unwrap(),
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let t: Vec<f64> = s["t"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(t.len(), rows.len());
    let meta = b.json("/api/meta");
    assert_eq!(meta["services"][0]["from"].as_f64(), Some(t[0]));
    assert_eq!(meta["services"][0]["to"].as_f64(), Some(t[t.len() - 1] + 300.0));
    for (k, r) in rows.iter().enumerate() {
        assert_eq!(r[ci].parse::<f64>().unwrap(), t[k]);
        let small = matches!(r[cs], "true" | "1");
        let api = s["pss"][k].as_f64();
        if small {
            assert_eq!(api, None, "a too-small window is a gap");
        } else {
            assert_eq!(api, Some(r[cp].parse::<f64>().unwrap()), "window {k}");
        }
    }
    // Bad input: a clear 400; the page's own headers lock it down.
    let (status, _, body) = b.get("/api/series?service=nope");
    assert_eq!(status, 400);
    assert!(body.contains("no service 'nope'"), "{body}");
    let (status, headers, page) = b.get("/");
    assert_eq!(status, 200);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(
        !page.contains("<script>") && !page.contains("http://") && !page.contains("https://"),
        "no inline script, nothing fetched from elsewhere"
    );
    let (_, _, js) = b.get("/assets/uplot.js");
    assert!(js.len() > 40_000, "uPlot is embedded");
    let first_load: usize = ["/", "/assets/app.js", "/assets/app.css", "/assets/uplot.js", "/assets/uplot.css"]
        .iter()
        .map(|p| b.get(p).2.len())
        .sum();
    assert!(first_load < 1_000_000, "first load {first_load} bytes");
    // A diagnosis is one click away.
    let (status, headers, doc) = b.get("/diagnosis?service=payments&incident=payments-1");
    assert_eq!(status, 200, "{doc}");
    assert!(
        doc.contains("payments-1")
            && headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'")
    );
    drop(b);

    // A token: the API wants it.
    std::fs::write(d.join("token"), "s3cret\n").unwrap();
    let mut perms = std::fs::metadata(d.join("token")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(d.join("token"), perms).unwrap();
    let b = Running::start(
        d,
        &["board", "--history", db.to_str().unwrap(), "--http", "127.0.0.1:0", "--token-file", "token"],
        "pss board: ",
    );
    assert_eq!(b.get("/api/meta").0, 401);
    let r = reqwest::blocking::Client::new().get(format!("{}/api/meta", b.base)).bearer_auth("s3cret").send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(b.get("/").0, 200, "the page itself loads and asks for the token");
}

#[test]
fn the_board_works_in_a_real_browser_and_updates_live() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    shipped_history(d, &["checkout"]);
    let s = Running::start(
        d,
        &["serve", "--history", "h.db", "--http", "127.0.0.1:0", "--board", "--refresh", "1s"],
        "pss serve: board on ",
    );
    let shots = std::env::var("PSS_BOARD_SCREENSHOTS").unwrap_or_else(|_| "-".into());
    let out = Command::new(python()).arg(repo("tests/it/board_browser.py")).arg(&s.base).arg(&shots).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("all board checks passed"), "{text}");
    eprintln!("{text}");
}
