//! `pss diagnose` / `pss report` end to end on the shipped checkout history,
//! with the LLM part talking to a real HTTP server on 127.0.0.1 that checks
//! each request and answers with completions, errors, garbage and timeouts.

use crate::common::{ok, pss, repo, shipped_history};
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::Value;

const KEY: &str = "sk-test-0123456789-SECRET";

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    auth: Option<String>,
    body: Value,
}

type Log = Arc<Mutex<Vec<Seen>>>;

async fn answer(log: Log, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> axum::response::Response {
    let path = uri.path().to_string();
    let seen = Seen {
        method: method.to_string(),
        path: path.clone(),
        auth: headers.get("authorization").map(|v| v.to_str().unwrap().to_string()),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let tries = {
        let mut l = log.lock().unwrap();
        l.push(seen);
        l.iter().filter(|s| s.path == path).count()
    };
    let completion = |text: &str| {
        serde_json::json!({"model": "test-model-1", "choices": [{"message": {"role": "assistant", "content": text}}]})
            .to_string()
    };
    match path.as_str() {
        "/ok/v1/chat/completions" => {
            (StatusCode::OK, completion("Hypothesis: the database dependency timed out.")).into_response()
        }
        "/flaky/v1/chat/completions" if tries < 3 => (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response(),
        "/flaky/v1/chat/completions" => (StatusCode::OK, completion("Third time lucky.")).into_response(),
        "/unauth/v1/chat/completions" => (StatusCode::UNAUTHORIZED, format!("bad key {KEY}")).into_response(),
        "/garbage/v1/chat/completions" => (StatusCode::OK, "<html>not json</html>").into_response(),
        "/slow/v1/chat/completions" => {
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            (StatusCode::OK, completion("too late")).into_response()
        }
        "/ollama/api/generate" => (
            StatusCode::OK,
            serde_json::json!({"model": "llama3", "response": "Ollama says: lock contention.", "done": true})
                .to_string(),
        )
            .into_response(),
        _ => (StatusCode::NOT_FOUND, "no such route").into_response(),
    }
}

/// Starts the server; returns its base URL and the request log.
fn server() -> (String, Log) {
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let l2 = log.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let app = axum::Router::new()
                .fallback(move |m: Method, u: Uri, h: HeaderMap, b: Bytes| answer(l2.clone(), m, u, h, b));
            axum::serve(listener, app).await.unwrap();
        });
    });
    (format!("http://{addr}"), log)
}

/// The shipped checkout history, plus an incident with a hostile title (it
/// must come out escaped).
fn history(d: &Path) {
    shipped_history(d, &["checkout"]);
    let csv = std::fs::read_to_string(repo("datasets/history/incidents.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    let evil = "evil-1,checkout,2026-11-02T12:00:00Z,2026-11-02T12:30:00Z,sev3,<script>alert(1)</script> & co";
    std::fs::write(d.join("evil.csv"), format!("{header}\n{evil}\n")).unwrap();
    ok(&pss(d, &["incidents", "import", "evil.csv", "--history", "h.db"]));
}

#[test]
fn incident_report_with_and_without_an_llm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    history(d);
    let (base, log) = server();
    let diag = |extra: &[&str]| {
        let mut a = vec!["diagnose", "--history", "h.db", "--incident", "checkout-3", "--window", "5m"];
        a.extend_from_slice(extra);
        pss(d, &a)
    };

    // A run recorded by `pss analyze --store-history` before the incident, in
    // pypss's history table: the report checks regression against it too.
    let db = rusqlite::Connection::open(d.join("h.db")).unwrap();
    db.execute(
        "INSERT INTO pss_history (timestamp, pss, ts, ms, ev, be, cc, meta) \
         VALUES (1793562000, 95, 0.9, 0.9, 0.9, 0.9, 0.9, '{\"service\": \"checkout\"}')",
        [],
    )
    .unwrap();
    drop(db);

    // No provider: the evidence and the rule-based diagnosis, no HTTP at all.
    let md = ok(&diag(&[]));
    assert!(md.contains("REGRESSION DETECTED: Current PSS (22.0)"), "{md}");
    for want in [
        "# Incident checkout-3",
        "## During vs baseline",
        "## Onset",
        "## Patterns",
        "## Rule-based diagnosis",
        "ConnectionError",
    ] {
        assert!(md.contains(want), "missing {want}:\n{md}");
    }
    assert!(log.lock().unwrap().is_empty());
    let j: Value = serde_json::from_str(&ok(&diag(&["--format", "json"]))).unwrap();
    assert!(j["during"]["latency"]["p99"].as_f64().unwrap() > 5.0 * j["before"]["latency"]["p99"].as_f64().unwrap());
    assert!(j["onset"]["lead_seconds"].as_f64().unwrap() >= 0.0, "{}", j["onset"]);
    assert!(j["timeline"].as_array().unwrap().iter().any(|p| p["in_subject"] == true && p["flagged"] == true));
    // An incident in the quiet night: its windows are too small to alarm,
    // and the report says so (checkout-3's, in the day, does not).
    let night = ok(&pss(d, &["diagnose", "--history", "h.db", "--incident", "checkout-5", "--window", "5m"]));
    assert!(night.contains("fewer application traces than min\\_window\\_traces: no PSS alarm"), "{night}");
    assert!(night.contains("| incident, too few traces to alarm |"), "{night}");
    assert!(!md.contains("no PSS alarm could fire"), "{md}");

    // OpenAI-compatible: the request is checked, the narrative lands under its heading.
    let url = format!("{base}/ok/v1");
    let md = ok(&diag(&["--provider", "openai", "--base-url", &url, "--api-key", KEY, "--model", "gpt-test"]));
    assert!(md.contains("## LLM narrative (test-model-1 via Openai)"), "{md}");
    assert!(md.contains("the database dependency timed out"));
    let seen = log.lock().unwrap().last().unwrap().clone();
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/ok/v1/chat/completions"));
    assert_eq!(seen.auth.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(seen.body["model"], "gpt-test");
    assert_eq!(seen.body["max_tokens"], 1000);
    let prompt = seen.body["messages"][1]["content"].as_str().unwrap();
    assert_eq!(seen.body["messages"][0]["role"], "system");
    assert!(prompt.contains("checkout-3") && prompt.contains("latency p50") && prompt.contains("onset"), "{prompt}");
    assert!(prompt.len() <= 12_000);
    // pypss's default provider: openai when a key is given, without --provider.
    let before = log.lock().unwrap().len();
    let md = ok(&diag(&["--base-url", &url, "--api-key", KEY]));
    assert!(md.contains("## LLM narrative (test-model-1 via Openai)"), "{md}");
    assert_eq!(log.lock().unwrap().len(), before + 1);

    // 503 twice, then an answer: retried with backoff.
    let url = format!("{base}/flaky/v1");
    let j: Value = serde_json::from_str(&ok(&diag(&[
        "--provider",
        "openai",
        "--base-url",
        &url,
        "--api-key",
        KEY,
        "--format",
        "json",
    ])))
    .unwrap();
    assert_eq!(j["narrative"]["Written"]["attempts"], 3, "{}", j["narrative"]);

    // Failures leave a complete report, say why, exit 0 — or 1 with --require-llm.
    for (route, why) in [("unauth", "401 Unauthorized"), ("garbage", "not the JSON"), ("nowhere", "404 Not Found")] {
        let url = format!("{base}/{route}/v1");
        let o = diag(&["--provider", "openai", "--base-url", &url, "--api-key", KEY]);
        let md = ok(&o);
        assert!(
            md.contains("## Rule-based diagnosis") && md.contains("The LLM part failed:") && md.contains(why),
            "{route}: {md}"
        );
        let all = format!("{md}{}", String::from_utf8_lossy(&o.stderr));
        assert!(!all.contains(KEY), "{route}: the key leaked");
        let o = diag(&["--provider", "openai", "--base-url", &url, "--api-key", KEY, "--require-llm"]);
        assert_eq!(o.status.code(), Some(1), "{route}");
    }
    // A timeout from the config file; no key at all is a clear message without a request.
    std::fs::write(d.join("pypss.toml"), "[pypss]\nllm_timeout_seconds = 0.5\n").unwrap();
    let url = format!("{base}/slow/v1");
    let md = ok(&diag(&["--provider", "openai", "--base-url", &url, "--api-key", KEY]));
    assert!(md.contains("no answer within"), "{md}");
    let before = log.lock().unwrap().len();
    let md = ok(&diag(&["--provider", "openai", "--base-url", &url]));
    assert!(md.contains("no API key"), "{md}");
    assert_eq!(log.lock().unwrap().len(), before);

    // Ollama's generate API, as pypss configures it.
    let url = format!("{base}/ollama/api/generate");
    let md = ok(&diag(&["--provider", "ollama", "--base-url", &url]));
    assert!(md.contains("Ollama says: lock contention."), "{md}");
    let seen = log.lock().unwrap().last().unwrap().clone();
    assert_eq!(seen.path, "/ollama/api/generate");
    assert_eq!(seen.body["stream"], false);
    assert_eq!(seen.body["model"], "llama3");
    assert!(seen.auth.is_none());

    // HTML: one file, no external fetches, hostile strings escaped.
    ok(&pss(
        d,
        &[
            "diagnose",
            "--history",
            "h.db",
            "--incident",
            "evil-1",
            "--window",
            "5m",
            "--format",
            "html",
            "-o",
            "evil.html",
        ],
    ));
    let html = std::fs::read_to_string(d.join("evil.html")).unwrap();
    assert!(!html.contains("<script"), "unescaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    assert!(html.contains("<svg"), "timeline chart");

    // A period that is not an incident.
    let md = ok(&pss(
        d,
        &[
            "report",
            "--history",
            "h.db",
            "--service",
            "checkout",
            "--from",
            "2026-11-02T16:00:00Z",
            "--to",
            "2026-11-02T18:00:00Z",
            "--window",
            "5m",
        ],
    ));
    assert!(md.starts_with("# Stability report — checkout"), "{md}");
    assert!(md.contains("Baseline: the same hours on 1 earlier day(s)"), "{md}");
    // Bad input: exit 2 with a reason.
    let o = pss(d, &["diagnose", "--history", "h.db", "--incident", "nope", "--window", "5m"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no incident 'nope'"));
}

#[test]
fn trace_file_diagnosis_shows_the_slowest_functions_source() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("app.py"),
        "import time\n\ndef slow(x):\n    time.sleep(x)\n    return x\n\ndef other():\n    pass\n",
    )
    .unwrap();
    let app = d.join("app.py");
    let mut traces = Vec::new();
    for i in 0..50 {
        let (name, line, dur) = if i == 17 { ("slow", 3, 2.5) } else { ("other", 7, 0.01 + i as f64 * 1e-4) };
        traces
            .push(serde_json::json!({"name": name, "module": "app", "filename": app.to_str().unwrap(), "lineno": line,
            "duration": dur, "memory": 1000, "wait_time": 0.001, "error": false, "timestamp": 1.7e9 + i as f64}));
    }
    std::fs::write(d.join("t.json"), serde_json::to_string(&traces).unwrap()).unwrap();
    let md = ok(&pss(d, &["diagnose", "--trace-file", "t.json"]));
    assert!(md.contains("## Slowest function") && md.contains("app:slow"), "{md}");
    assert!(md.contains("def slow(x):\n    time.sleep(x)\n    return x"), "{md}");
    assert!(!md.contains("def other"), "only the slowest function");
}

/// A trace may name any file; what diagnosis reads is bounded by the source
/// root. A secret outside it — by absolute path, `../`, or a symlink — never
/// appears in a document (any format) or in a request to the LLM server; a
/// file inside the root does.
#[test]
fn source_outside_the_root_never_reaches_a_document_or_the_llm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().canonicalize().unwrap();
    let proj = d.join("proj");
    std::fs::create_dir(&proj).unwrap();
    std::fs::write(proj.join("app.py"), "def slow():\n    return 'INSIDE-OK'\n").unwrap();
    let secret = d.join("secret.py");
    std::fs::write(&secret, "API_TOKEN = 'TOP-SECRET-42'\n").unwrap();
    std::os::unix::fs::symlink(&secret, proj.join("link.py")).unwrap();
    let (base, log) = server();
    let url = format!("{base}/ok/v1");
    let app = proj.join("app.py").display().to_string();
    let abs_secret = secret.display().to_string();
    for (filename, inside) in
        [(app.as_str(), true), (abs_secret.as_str(), false), ("../secret.py", false), ("link.py", false)]
    {
        let traces: Vec<Value> = (0..30)
            .map(|i| {
                serde_json::json!({"name": if i == 7 { "slow" } else { "f" }, "module": "app", "filename": filename,
                    "lineno": 1, "duration": if i == 7 { 2.0 } else { 0.01 }, "memory": 1000, "timestamp": 1.7e9 + i as f64})
            })
            .collect();
        std::fs::write(proj.join("t.json"), serde_json::to_string(&traces).unwrap()).unwrap();
        for format in ["markdown", "html", "json"] {
            let o = pss(
                &proj,
                &[
                    "diagnose",
                    "--trace-file",
                    "t.json",
                    "--format",
                    format,
                    "--provider",
                    "openai",
                    "--base-url",
                    &url,
                    "--api-key",
                    KEY,
                ],
            );
            let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            assert!(o.status.success(), "{filename} {format}: {text}");
            assert!(!text.contains("TOP-SECRET"), "{filename} {format}: the secret leaked:\n{text}");
            assert_eq!(text.contains("INSIDE-OK"), inside, "{filename} {format}:\n{text}");
            if !inside && format == "markdown" {
                assert!(text.contains("source not read: outside the source root"), "{filename}: {text}");
            }
        }
    }
    let seen = log.lock().unwrap();
    assert_eq!(seen.len(), 12, "one request per run");
    assert!(seen.iter().all(|s| !s.body.to_string().contains("TOP-SECRET")), "the secret reached the LLM server");
    assert_eq!(seen.iter().filter(|s| s.body.to_string().contains("INSIDE-OK")).count(), 3, "inside: sent");
    drop(seen);
    // --source-root elsewhere: even the project's own file is outside it.
    let elsewhere = d.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let traces: Vec<Value> = (0..30)
        .map(|i| {
            serde_json::json!({"name": "slow", "module": "app", "filename": app, "lineno": 1,
            "duration": 0.01 + i as f64 * 0.01, "memory": 1000, "timestamp": 1.7e9 + i as f64})
        })
        .collect();
    std::fs::write(proj.join("t.json"), serde_json::to_string(&traces).unwrap()).unwrap();
    let md = ok(&pss(&proj, &["diagnose", "--trace-file", "t.json", "--source-root", elsewhere.to_str().unwrap()]));
    assert!(!md.contains("INSIDE-OK") && md.contains("outside the source root"), "{md}");
}
