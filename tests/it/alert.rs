//! Alerting against pypss itself: the same traces and the same `pypss.toml`
//! through pypss 1.3.1's `AlertEngine` and through `pss analyze`, both
//! posting to one loopback receiver, give the same JSON bodies on every
//! channel (timestamps aside).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::Uri;
use serde_json::Value;

use crate::common::{ok, pss, python};

pub type Log = Arc<Mutex<Vec<(String, Value)>>>;

/// A receiver on 127.0.0.1 that records every POST (path, JSON body) it
/// accepts; under `/flaky/` it answers 503 to the first two.
pub fn receiver() -> (String, Log) {
    receiver_on(0)
}

/// [`receiver`] on a given port (0: any free one).
pub fn receiver_on(port: u16) -> (String, Log) {
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let l2 = log.clone();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let app = axum::Router::new().fallback(move |u: Uri, b: Bytes| {
                let l = l2.clone();
                let refused = refused.clone();
                async move {
                    use std::sync::atomic::Ordering;
                    if u.path().starts_with("/flaky/") && refused.fetch_add(1, Ordering::SeqCst) < 2 {
                        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down");
                    }
                    l.lock().unwrap().push((u.path().to_string(), serde_json::from_slice(&b).unwrap_or(Value::Null)));
                    (axum::http::StatusCode::OK, "ok")
                }
            });
            axum::serve(listener, app).await.unwrap();
        });
    });
    (format!("http://{addr}"), log)
}

/// Traces that break several rules: erratic latency, errors, one slow module.
fn traces() -> String {
    let items: Vec<Value> = (0..240)
        .map(|i| {
            let db = i % 3 == 0;
            serde_json::json!({
                "name": if db { "query" } else { "handle" }, "module": if db { "app.db" } else { "app.web" },
                "duration": if db { 0.01 + ((i * 37) % 11) as f64 * 0.2 } else { 0.01 + (i % 5) as f64 * 0.001 },
                "memory": 1_000_000 + (i % 7) * 1000, "wait_time": 0.0, "error": i % 9 == 0,
                "exception_type": if i % 9 == 0 { "Timeout" } else { "" },
                "timestamp": 1.7e9 + i as f64,
            })
        })
        .collect();
    serde_json::to_string(&items).unwrap()
}

fn config(base: &str, side: &str, extra: &str) -> String {
    format!(
        "[pypss]\nalerts_enabled = true\nalerts_slack_webhook = \"{base}/{side}/slack\"\n\
         alerts_teams_webhook = \"{base}/{side}/teams\"\nalerts_generic_webhook = \"{base}/{side}/webhook\"\n\
         alerts_alertmanager_url = \"{base}/{side}/am\"\n{extra}\n\
         [[pypss.custom_alert_rules]]\nname = \"Low PSS\"\nseverity = \"critical\"\n\
         conditions = [{{ metric = \"pss\", operator = \"<\", value = 95 }}]\n\
         [[pypss.custom_alert_rules]]\nname = \"Slow DB\"\nmodule_pattern = \"app\\\\.d\"\n\
         conditions = [{{ metric = \"timing_stability\", operator = \"<=\", value = 0.9 }}, {{ metric = \"pss\", operator = \">\", value = 1 }}]\n"
    )
}

const PYPSS_SIDE: &str = r#"
import json, sys
import pypss.core.core as core
import pypss.cli.discovery as discovery
import pypss.alerts.channels as channels
from pypss.alerts.engine import AlertEngine
traces = json.load(open("t.json"))
report = core.compute_pss_from_traces(traces)
modules = discovery.get_module_score_breakdown(traces)
history = json.loads(sys.argv[1])
alerts = AlertEngine().run(report, history=history, module_scores=modules)
channels._alert_queue.join()
print(len(alerts))
"#;

/// Bodies per channel, in arrival order, timestamps removed.
fn bodies(log: &Log, side: &str) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (path, body) in log.lock().unwrap().iter() {
        if let Some(ch) = path.strip_prefix(&format!("/{side}/")) {
            let mut b = body.clone();
            if let Some(o) = b.as_object_mut() {
                o.remove("timestamp");
            }
            // What pss adds for Alertmanager's v2 API (pypss leaves it out).
            for a in b.as_array_mut().into_iter().flatten() {
                if let Some(o) = a.as_object_mut() {
                    for k in ["startsAt", "endsAt", "generatorURL"] {
                        assert!(side == "py" || o.remove(k).is_some(), "pss sends {k}");
                    }
                }
            }
            // pss posts to Alertmanager's v2 API under the base URL.
            let ch = ch.strip_suffix("/api/v2/alerts").unwrap_or(ch);
            out.entry(ch.to_string()).or_default().push(b);
        }
    }
    out
}

fn side_dir(d: &Path, name: &str, cfg: &str) -> std::path::PathBuf {
    let p = d.join(name);
    std::fs::create_dir(&p).unwrap();
    std::fs::write(p.join("pypss.toml"), cfg).unwrap();
    std::fs::write(p.join("t.json"), traces()).unwrap();
    p
}

#[test]
fn pss_sends_what_pypss_sends_on_every_channel_and_honours_the_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (base, log) = receiver();
    // The stored runs, latest first: the regression rule compares with their mean.
    let history = [95.0, 92.0, 90.0];
    let py = side_dir(d, "py", &config(&base, "py", ""));
    let hist_json =
        serde_json::to_string(&history.iter().map(|p| serde_json::json!({"pss": p})).collect::<Vec<_>>()).unwrap();
    let o =
        std::process::Command::new(python()).current_dir(&py).args(["-c", PYPSS_SIDE, &hist_json]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let n: usize = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();

    let rs = side_dir(d, "rs", &config(&base, "rs", ""));
    {
        let mut s = pss::store::open(&rs.join("h.db")).unwrap();
        for (k, p) in history.iter().rev().enumerate() {
            let row = pss::domain::HistoryRow {
                id: 0,
                timestamp: pss::timefmt::now() - 600.0 + k as f64,
                pss: *p,
                sub: pss::domain::SubScores::default(),
                meta: serde_json::json!({}),
            };
            s.save_history(&row).unwrap();
        }
    }
    let out = ok(&pss(&rs, &["analyze", "--trace-file", "t.json", "--store-history", "--history", "h.db"]));
    assert!(out.contains(&format!("🔔 {n} Alerts triggered and sent.")), "{out}");

    let (want, got) = (bodies(&log, "py"), bodies(&log, "rs"));
    assert_eq!(want.keys().collect::<Vec<_>>(), ["am", "slack", "teams", "webhook"]);
    let rules: Vec<&str> = want["webhook"].iter().map(|b| b["rule"].as_str().unwrap()).collect();
    for r in ["Timing Stability Surge", "Error Burst", "Stability Regression", "Low PSS", "Slow DB"] {
        assert!(rules.contains(&r), "the case should fire {r}: {rules:?}");
    }
    for ch in want.keys() {
        assert_eq!(got.get(ch), Some(&want[ch]), "{ch}: pss's bodies differ from pypss's");
    }

    // Within the cooldown nothing is sent again; with alerts_cooldown_seconds = 0 (which
    // pypss ignores: it hard-codes 3600 s) everything is.
    let before = log.lock().unwrap().len();
    ok(&pss(&rs, &["analyze", "--trace-file", "t.json", "--history", "h.db"]));
    assert_eq!(log.lock().unwrap().len(), before, "a second run within the cooldown sends nothing");
    std::fs::write(rs.join("pypss.toml"), config(&base, "rs", "alerts_cooldown_seconds = 0")).unwrap();
    let out = ok(&pss(&rs, &["analyze", "--trace-file", "t.json", "--history", "h.db"]));
    assert!(out.contains("Alerts triggered and sent."), "{out}");
    assert!(log.lock().unwrap().len() > before);
    // A silenced service sends nothing, cooldown or not.
    ok(&pss(&rs, &["alerts", "silence", "--service", "shop", "--for", "1h", "--history", "h.db"]));
    let before = log.lock().unwrap().len();
    let out = ok(&pss(&rs, &["analyze", "--trace-file", "t.json", "--history", "h.db", "--service", "shop"]));
    assert!(!out.contains("Alerts triggered"), "{out}");
    assert_eq!(log.lock().unwrap().len(), before, "silenced");
}

/// pypss's Prometheus backend against Debian's real Pushgateway: what
/// pypss's `PrometheusStorage` pushes and what `pss analyze --store-history`
/// pushes with `storage_backend = "prometheus"` read back the same.
#[test]
fn the_pushgateway_gets_what_pypss_pushes() {
    use std::process::{Command, Stdio};
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gw = format!("127.0.0.1:{port}");
    let mut child = Command::new("prometheus-pushgateway")
        .arg(format!("--web.listen-address={gw}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-pushgateway on the PATH (scripts/test.sh installs it)");
    let metrics = || reqwest::blocking::get(format!("http://{gw}/metrics")).map(|r| r.text().unwrap_or_default());
    assert!(
        crate::common::wait_until(std::time::Duration::from_secs(20), || metrics().is_ok()),
        "pushgateway did not start"
    );
    let pushed =
        |m: &str| -> Vec<String> { m.lines().filter(|l| l.starts_with("pypss_")).map(str::to_string).collect() };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("t.json"), traces()).unwrap();
    std::fs::write(
        d.join("pypss.toml"),
        format!("[pypss]\nstorage_backend = \"prometheus\"\nstorage_uri = \"{gw}\"\n"),
    )
    .unwrap();
    let script = "import json\nimport pypss.core.core as core\nfrom pypss.storage import get_storage_backend\n\
                  from pypss.utils.config import GLOBAL_CONFIG as c\n\
                  r = core.compute_pss_from_traces(json.load(open('t.json')))\n\
                  get_storage_backend({'storage_backend': c.storage_backend, 'storage_uri': c.storage_uri}).save(r)\n";
    let o = Command::new(python()).current_dir(d).args(["-c", script]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = pushed(&metrics().unwrap());
    assert_eq!(want.len(), 6, "{want:?}");
    // Clear the job, then push from pss.
    reqwest::blocking::Client::new().delete(format!("http://{gw}/metrics/job/pypss")).send().unwrap();
    assert!(pushed(&metrics().unwrap()).is_empty());
    let out = ok(&pss(d, &["analyze", "--trace-file", "t.json", "--store-history"]));
    assert!(out.contains("pushed to the Pushgateway"), "{out}");
    assert_eq!(pushed(&metrics().unwrap()), want);
    let _ = child.kill();
    let _ = child.wait();
}
