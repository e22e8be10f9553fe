//! `pss serve` with real components: pypss's own GRPCCollector,
//! RedisCollector and FileFIFOCollector in a Python process, a real
//! redis-server on 127.0.0.1, HTTP and gRPC load from concurrent clients,
//! SIGKILL during load, SIGTERM shutdown.
//!
//! Needs `redis-server` on the PATH and a Python with pypss 1.3.1, grpcio
//! and redis (`PSS_PYTHON`, set by scripts/test.sh, which installs them).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pss::serve::grpc::pb::pss::trace_batch_service_client::TraceBatchServiceClient;
use pss::serve::grpc::pb::pss::TraceBatch;
use pss::serve::grpc::pb::pypss::TraceMessage;

use crate::common::{python, wait_until};

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A redis-server of our own on a free port, killed on drop.
struct Redis {
    child: Child,
    url: String,
}

impl Redis {
    fn start(dir: &Path) -> Redis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH (scripts/test.sh installs it)");
        let url = format!("redis://127.0.0.1:{port}/0");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis { child, url }
    }

    fn con(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str()).unwrap().get_connection().unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `pss serve`, with the addresses it printed; killed on drop.
pub(crate) struct Server {
    child: Child,
    pub grpc: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub otlp_http: Option<SocketAddr>,
    pub otlp_grpc: Option<SocketAddr>,
}

impl Server {
    /// Starts `pss serve --history h.db` in `dir` and waits until it is ready.
    pub(crate) fn start(dir: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pss"))
            .current_dir(dir)
            .args(["serve", "--history", "h.db", "--refresh", "1s"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut grpc, mut http, mut otlp_http, mut otlp_grpc) = (None, None, None, None);
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(a) = line.strip_prefix("pss serve: OTLP/HTTP on http://") {
                otlp_http = Some(a.trim_end_matches("/v1/traces").parse().unwrap());
            }
            if let Some(a) = line.strip_prefix("pss serve: OTLP/gRPC on ") {
                otlp_grpc = Some(a.parse().unwrap());
            }
            if let Some(a) = line.strip_prefix("pss serve: gRPC on ") {
                grpc = Some(a.parse().unwrap());
            }
            if let Some(a) = line.strip_prefix("pss serve: HTTP on http://") {
                http = Some(a.split_whitespace().next().unwrap().parse().unwrap());
            }
            if line.starts_with("pss serve: ready") {
                break;
            }
        }
        // Keep reading stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, grpc, http, otlp_http, otlp_grpc }
    }

    /// SIGTERM, then the exit status.
    pub(crate) fn term(mut self) -> std::process::ExitStatus {
        unsafe_kill(self.child.id(), "TERM");
        self.child.wait().unwrap()
    }

    fn kill9(mut self) {
        unsafe_kill(self.child.id(), "KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    Command::new("kill").args([format!("-{sig}"), pid.to_string()]).status().unwrap();
}

fn count(dir: &Path, service: &str) -> i64 {
    let db = rusqlite::Connection::open(dir.join("h.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.query_row(
        "SELECT COUNT(*) FROM traces t JOIN services s ON s.id = t.service_id WHERE s.name = ?1",
        [service],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

/// Waits until a module has `n` traces (or 30 s), returns its count.
fn count_module(dir: &Path, module: &str, n: i64) -> i64 {
    let c = || {
        let db = rusqlite::Connection::open(dir.join("h.db")).unwrap();
        db.query_row("SELECT COUNT(*) FROM traces WHERE module = ?1", [module], |r| r.get(0)).unwrap_or(0)
    };
    wait_until(Duration::from_secs(30), || c() >= n);
    c()
}

/// Waits until a service has `n` traces (or `secs`), returns its count.
fn wait_for(dir: &Path, service: &str, n: i64, secs: u64) -> i64 {
    wait_until(Duration::from_secs(secs), || count(dir, service) >= n);
    count(dir, service)
}

fn trace(i: usize, t0: f64) -> serde_json::Value {
    serde_json::json!({
        "trace_id": format!("t-{i}"), "name": format!("handler_{}", i % 5), "module": format!("app.mod{}", i % 3),
        "filename": "app.py", "lineno": 10 + i % 5, "duration": 0.01 + (i % 17) as f64 * 0.001,
        "cpu_time": 0.005, "wait_time": 0.001 * (i % 3) as f64, "memory": 1_000_000 + i, "memory_diff": (i % 11) as i64,
        "error": i.is_multiple_of(97), "exception_type": if i.is_multiple_of(97) { "ValueError" } else { "" },
        "branch_tag": format!("b{}", i % 4), "timestamp": t0 + i as f64 * 0.01
    })
}

#[test]
fn pypss_clients_deliver_every_trace_by_grpc_redis_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let redis = Redis::start(d);
    let fifo = d.join("logs/app.jsonl");
    let server = Server::start(
        d,
        &[
            "--grpc",
            "127.0.0.1:0",
            "--redis",
            &redis.url,
            "--follow",
            &format!("{}/logs/*.jsonl", d.display()),
            "--service",
            "py",
        ],
    );
    let port = server.grpc.unwrap().port();
    let script = format!(
        r#"
import time, sys
from pypss.instrumentation.collectors import GRPCCollector, RedisCollector, FileFIFOCollector
t0 = time.time() - 600
def tr(i, via):
    return dict(trace_id=f"{{via}}-{{i}}", name=f"f{{i % 4}}", filename="app.py", lineno=3 + i % 4, module=f"app.{{via}}",
                duration=0.001 * (1 + i % 13), cpu_time=0.0005, wait_time=0.0001 * (i % 5), memory=2_000_000 + i,
                memory_diff=i % 7, error=(i % 50 == 0), exception_type="KeyError" if i % 50 == 0 else None,
                exception_message="missing 'id'" if i % 50 == 0 else None, branch_tag=f"b{{i % 3}}", timestamp=t0 + i * 0.05)
g = GRPCCollector("127.0.0.1:{port}")
for i in range(400): g.add_trace(tr(i, "grpc"))
# pypss's GRPCCollector drops each call's future at once and grpcio cancels a
# call when its future is garbage-collected, so some of the calls above are
# cancelled by the client itself before they reach any server. The same
# collector again, with the futures kept alive (the only change), must
# deliver every trace.
keep = []
h = GRPCCollector("127.0.0.1:{port}")
orig = h.stub.SubmitTrace.future
h.stub.SubmitTrace.future = lambda msg: keep.append(orig(msg))
for i in range(400): h.add_trace(tr(i, "grpckept"))
for f in keep: assert f.result(timeout=30).success
r = RedisCollector("{url}", batch_size=50)
for i in range(400): r.add_trace(tr(i, "redis"))
r.shutdown()
f = FileFIFOCollector("{fifo}", batch_size=50)
for i in range(400): f.add_trace(tr(i, "file"))
f.shutdown()
time.sleep(2)   # let the gRPC futures finish before the channel closes
"#,
        url = redis.url,
        fifo = fifo.display()
    );
    let out = Command::new(python()).arg("-c").arg(&script).output().unwrap();
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    let expected = 1200 + count_module(d, "app.grpc", 0);
    assert_eq!(wait_for(d, "py", expected.max(1200), 60), expected.max(1200));
    // Every trace of the clients that do not cancel their own calls is stored.
    assert_eq!(count_module(d, "app.grpckept", 400), 400);
    assert_eq!(count_module(d, "app.redis", 400), 400);
    assert_eq!(count_module(d, "app.file", 400), 400);
    let unmodified = count_module(d, "app.grpc", 0);
    println!("pypss GRPCCollector, unmodified: {unmodified} of 400 delivered (the rest cancelled by the client on GC)");
    assert!(unmodified > 0);
    let db = rusqlite::Connection::open(d.join("h.db")).unwrap();
    // Fields arrive as sent (through protobuf for gRPC).
    let (dur, et, msg, tag, line): (f64, Option<String>, Option<String>, Option<String>, Option<i64>) = db
        .query_row(
            "SELECT duration, exception_type, exception_message, branch_tag, lineno FROM traces WHERE trace_key = 'id:grpckept-50'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        (dur, et.as_deref(), msg.as_deref(), tag.as_deref(), line),
        (0.001 * 12.0, Some("KeyError"), Some("missing 'id'"), Some("b2"), Some(5))
    );
    let mut con = redis.con();
    let left: i64 = redis::cmd("LLEN").arg("pypss:traces").query(&mut con).unwrap();
    let processing: i64 = redis::cmd("LLEN").arg("pypss:traces:processing").query(&mut con).unwrap();
    assert_eq!((left, processing), (0, 0));
    assert!(server.term().success());

    // Restart: the followed file resumes from its stored position (nothing
    // read twice); appended lines and a rotated file are picked up.
    std::fs::rename(&fifo, d.join("logs/app.1.jsonl")).unwrap();
    let t0 = 1.79e9;
    let fresh: String = (1000..1100).map(|i| trace(i, t0).to_string() + "\n").collect();
    std::fs::write(&fifo, fresh).unwrap();
    let server = Server::start(d, &["--follow", &format!("{}/logs/*.jsonl", d.display()), "--service", "py"]);
    let before = count(d, "py");
    assert_eq!(wait_for(d, "py", before + 100, 30), before + 100);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(d, "py"), before + 100, "nothing read twice");
    let offsets: i64 = db.query_row("SELECT COUNT(*) FROM follow_offsets", [], |r| r.get(0)).unwrap();
    assert_eq!(offsets, 2, "both files are tracked");
    assert!(server.term().success());
}

async fn http_load(addr: SocketAddr, client: usize, batches: usize, t0: f64) -> (usize, usize) {
    let http = reqwest::Client::new();
    let (mut sent, mut refused) = (0, 0);
    for b in 0..batches {
        let base = 10_000_000 * (client + 1) + b * 1000;
        let body: String = (0..1000).map(|i| trace(base + i, t0).to_string() + "\n").collect();
        loop {
            let r = http
                .post(format!("http://{addr}/v1/traces"))
                .header("x-pss-service", "load")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            match r.status().as_u16() {
                200 => break,
                429 => {
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                s => panic!("HTTP {s}: {}", r.text().await.unwrap()),
            }
        }
        sent += 1000;
    }
    (sent, refused)
}

async fn grpc_load(addr: SocketAddr, client: usize, batches: usize, t0: f64) -> (usize, usize) {
    let mut c = TraceBatchServiceClient::connect(format!("http://{addr}")).await.unwrap();
    let (mut sent, mut refused) = (0, 0);
    for b in 0..batches {
        let base = 50_000_000 + 10_000_000 * client + b * 1000;
        let traces: Vec<TraceMessage> = (0..1000)
            .map(|i| {
                let j = base + i;
                TraceMessage {
                    trace_id: format!("g-{j}"),
                    name: "h".into(),
                    module: format!("m{}", j % 3),
                    duration: 0.01 + (j % 7) as f64 * 1e-3,
                    memory: 1_000_000,
                    timestamp: t0 + (j % 100_000) as f64 * 0.01,
                    ..Default::default()
                }
            })
            .collect();
        loop {
            match c.submit_batch(TraceBatch { service: "load".into(), traces: traces.clone() }).await {
                Ok(r) => {
                    assert_eq!(r.get_ref().accepted, 1000);
                    break;
                }
                Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(s) => panic!("gRPC: {s}"),
            }
        }
        sent += 1000;
    }
    (sent, refused)
}

#[test]
fn load_of_200k_traces_over_http_and_grpc_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(d, &["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", "--queue", "8"]);
    let (g, h) = (server.grpc.unwrap(), server.http.unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let t0 = 1.79e9;
    let start = Instant::now();
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..4 {
            tasks.push(tokio::spawn(http_load(h, c, 25, t0)));
            tasks.push(tokio::spawn(grpc_load(g, c, 25, t0)));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let secs = start.elapsed().as_secs_f64();
    let sent: usize = results.iter().map(|r| r.0).sum();
    let refused: usize = results.iter().map(|r| r.1).sum();
    assert_eq!(sent, 200_000);
    assert_eq!(count(d, "load"), 200_000, "every acknowledged trace is stored");
    println!(
        "load: {sent} traces from 8 concurrent clients in {secs:.1} s = {:.0} traces/s (debug build); {refused} batches got back-pressure and were retried",
        sent as f64 / secs
    );
    // /metrics shows the counters and, after the next refresh, live scores.
    let metrics = || reqwest::blocking::get(format!("http://{h}/metrics")).unwrap().text().unwrap();
    wait_until(Duration::from_secs(30), || metrics().contains("pss_score{service=\"load\",module=\"m1\"}"));
    let m = metrics();
    assert!(m.contains("pss_traces_accepted_total{input=\"http\"} 100000"), "{m}");
    assert!(m.contains("pss_traces_accepted_total{input=\"grpc\"} 100000"), "{m}");
    assert!(m.contains("pss_score{service=\"load\",module=\"\"}"), "{m}");
    assert!(m.contains("pss_score{service=\"load\",module=\"m1\"}"), "{m}");
    let st = server.term();
    assert!(st.success(), "SIGTERM exits 0: {st:?}");
}

#[test]
fn sigkill_during_load_keeps_every_acknowledged_trace_and_redis_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let redis = Redis::start(d);
    let mut con = redis.con();
    let t0 = 1.79e9;
    let n = 30_000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut p = redis::pipe();
        for &i in chunk {
            p.rpush("pypss:traces", trace(i, t0).to_string());
        }
        p.query::<()>(&mut con).unwrap();
    }
    let server = Server::start(d, &["--http", "127.0.0.1:0", "--redis", &redis.url, "--service", "r"]);
    let h = server.http.unwrap();
    // HTTP clients record what was acknowledged until the server dies.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let a2 = acked.clone();
    let client = std::thread::spawn(move || {
        let http = reqwest::blocking::Client::new();
        for b in 0.. {
            let ids: Vec<usize> = (0..500).map(|i| 90_000_000 + b * 500 + i).collect();
            let body: String = ids.iter().map(|&i| trace(i, t0).to_string() + "\n").collect();
            match http.post(format!("http://{h}/v1/traces")).header("x-pss-service", "h").body(body).send() {
                Ok(r) if r.status() == 200 => a2.lock().unwrap().extend(ids.iter().map(|i| format!("id:t-{i}"))),
                Ok(_) => {}
                Err(_) => break, // the server is gone
            }
        }
    });
    // Kill it mid-load, once a few batches have been acknowledged.
    wait_until(Duration::from_secs(30), || acked.lock().unwrap().len() >= 2_000);
    server.kill9();
    client.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty(), "some batches were acknowledged before the kill");
    let db = rusqlite::Connection::open(d.join("h.db")).unwrap();
    let stored: std::collections::HashSet<String> = db
        .prepare("SELECT trace_key FROM traces")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let missing = acked.iter().filter(|k| !stored.contains(*k)).count();
    assert_eq!(missing, 0, "every acknowledged HTTP trace survived SIGKILL");
    // Every Redis trace is stored or still in Redis (the list or the processing list).
    let list: Vec<String> = redis::cmd("LRANGE").arg("pypss:traces").arg(0).arg(-1).query(&mut con).unwrap();
    let proc: Vec<String> = redis::cmd("LRANGE").arg("pypss:traces:processing").arg(0).arg(-1).query(&mut con).unwrap();
    let in_redis: std::collections::HashSet<String> = list
        .iter()
        .chain(&proc)
        .map(|s| format!("id:{}", serde_json::from_str::<serde_json::Value>(s).unwrap()["trace_id"].as_str().unwrap()))
        .collect();
    let lost = (0..n).map(|i| format!("id:t-{i}")).filter(|k| !stored.contains(k) && !in_redis.contains(k)).count();
    assert_eq!(lost, 0, "no Redis trace lost ({} stored, {} in redis)", stored.len(), in_redis.len());
    // After a restart the rest arrives and the processing list empties.
    drop(db);
    let server = Server::start(d, &["--redis", &redis.url, "--service", "r"]);
    assert_eq!(wait_for(d, "r", n as i64, 60), n as i64);
    let processing: i64 = redis::cmd("LLEN").arg("pypss:traces:processing").query(&mut con).unwrap();
    assert_eq!(processing, 0);
    assert!(server.term().success());
}

#[test]
fn bad_requests_are_refused_with_reasons_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("token"), "s3cret-token\n").unwrap();
    let server = Server::start(
        d,
        &["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", "--token-file", "token", "--max-body-mib", "1"],
    );
    let h = server.http.unwrap();
    let http = reqwest::blocking::Client::new();
    let post = |body: Vec<u8>, token: Option<&str>| {
        let mut r = http.post(format!("http://{h}/v1/traces")).body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().unwrap()
    };
    assert_eq!(post(b"[]".to_vec(), None).status(), 401);
    assert_eq!(post(b"[]".to_vec(), Some("wrong")).status(), 401);
    let r = post(b"[{\"name\": \"a\", \"duration\": 0.1}, {\"name\": ".to_vec(), Some("s3cret-token"));
    assert_eq!(r.status(), 400);
    let why = r.text().unwrap();
    assert!(why.contains("unexpected end of input"), "{why}");
    // Over the size limit: 413 (the body is written from another thread; the
    // server may stop reading it once the limit is passed).
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(h).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = write!(w, "POST /v1/traces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-token\r\nContent-Length: {}\r\n\r\n", 2 << 20);
            let _ = w.write_all(&vec![b' '; 2 << 20]);
        });
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 413"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        let _ = s.shutdown(std::net::Shutdown::Both); // ends the writer's blocked write
        writer.join().unwrap();
    }
    let ok = post(trace(1, 1.79e9).to_string().into_bytes(), Some("s3cret-token"));
    assert_eq!(ok.status(), 200);
    assert_eq!(http.get(format!("http://{h}/healthz")).send().unwrap().text().unwrap(), "ok\n");
    // gRPC without the token is refused.
    let g = server.grpc.unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let code = rt.block_on(async {
        let mut c = TraceBatchServiceClient::connect(format!("http://{g}")).await.unwrap();
        c.submit_batch(TraceBatch { service: "x".into(), traces: vec![TraceMessage::default()] })
            .await
            .unwrap_err()
            .code()
    });
    assert_eq!(code, tonic::Code::Unauthenticated);
    let m = http.get(format!("http://{h}/metrics")).send().unwrap().text().unwrap();
    assert!(m.contains("pss_messages_rejected_total{input=\"http\"} 4"), "{m}");
    assert!(m.contains("pss_messages_rejected_by_reason_total{input=\"http\",reason=\"too_large\"} 1"), "{m}");
    assert!(m.contains("pss_messages_rejected_total{input=\"grpc\"} 1"), "{m}");
    assert!(m.contains("pss_traces_accepted_total{input=\"http\"} 1"), "{m}");
    assert!(server.term().success());
    let _ = PathBuf::new();
}

/// Sends raw bytes on a new connection and reads until the server answers
/// or closes (bounded); returns what arrived.
fn raw(addr: SocketAddr, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

/// Hostile clients: each is refused with a reason and counted, and the
/// server keeps serving honest clients. Limits are small so the test is.
#[test]
fn hostile_clients_are_refused_and_the_server_keeps_serving() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("token"), "tok-9f8e7d6c5b4a\n").unwrap();
    let server = Server::start(
        d,
        &[
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--token-file",
            "token",
            "--max-body-mib",
            "1",
            "--max-inflated-mib",
            "4",
            "--body-budget-mib",
            "2",
            "--max-connections",
            "6",
            "--header-timeout",
            "1s",
            "--request-timeout",
            "2s",
            "--max-batch-traces",
            "1000",
            "--grpc-idle-timeout",
            "1s",
        ],
    );
    let h = server.http.unwrap();
    let auth = "Authorization: Bearer tok-9f8e7d6c5b4a\r\n";
    let post = |extra: &str, body: &[u8]| {
        let mut req = format!(
            "POST /v1/traces HTTP/1.1\r\nHost: x\r\n{auth}{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        raw(h, &req)
    };
    let honest = |i: usize| {
        let r = post("Content-Type: application/json\r\n", trace(i, 1.79e9).to_string().as_bytes());
        assert!(r.starts_with("HTTP/1.1 200"), "an honest client was refused: {r}");
    };
    honest(1);

    // A gzip bomb: a few KiB that inflate past the 4 MiB limit.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(b"[").unwrap();
    e.write_all(&vec![b' '; 8 << 20]).unwrap();
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    let r = post("Content-Encoding: gzip\r\n", &bomb);
    assert!(r.starts_with("HTTP/1.1 413") && r.contains("decompresses to more than"), "{r}");
    // A 100 MB JSON line, declared: refused before a byte of it is read.
    let r = raw(
        h,
        format!("POST /v1/traces HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 100000000\r\n\r\n[{{\"name\": \"")
            .as_bytes(),
    );
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    // Deep nesting and a wrong content type.
    let r = post("", "[".repeat(100_000).as_bytes());
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("nesting deeper"), "{r}");
    let r = post("Content-Type: multipart/form-data; boundary=x\r\n", b"[]");
    assert!(r.starts_with("HTTP/1.1 415"), "{r}");
    // A body sent slowly (chunked, a byte at a time): 408 at the request timeout.
    {
        let mut s = std::net::TcpStream::connect(h).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "POST /v1/traces HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n\r\n").unwrap();
        let t0 = Instant::now();
        let mut w = s.try_clone().unwrap();
        let trickle = std::thread::spawn(move || {
            for _ in 0..40 {
                if w.write_all(b"1\r\n \r\n").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        let r = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(r.starts_with("HTTP/1.1 408"), "{r}");
        assert!(t0.elapsed() < Duration::from_secs(8));
        let _ = s.shutdown(std::net::Shutdown::Both);
        trickle.join().unwrap();
    }
    // Slow headers (slowloris): the connection is closed at the header timeout.
    let t0 = Instant::now();
    let r = raw(h, b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n");
    assert!(!r.starts_with("HTTP/1.1 200") && t0.elapsed() < Duration::from_secs(8), "{r}");
    // Idle connections up to the limit: one more is refused with 503; once
    // the idle ones time out, honest clients get through again.
    let idle: Vec<_> = (0..6).map(|_| std::net::TcpStream::connect(h).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let r = raw(h, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 503") && r.contains("connection limit"), "{r}");
    wait_until(Duration::from_secs(10), || {
        raw(h, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").starts_with("HTTP/1.1 200")
    });
    drop(idle);
    honest(2);

    // gRPC: a message that is not valid protobuf, and a batch past the limit.
    let g = server.grpc.unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (bad, big) = rt.block_on(async {
        let ch = tonic::transport::Channel::from_shared(format!("http://{g}")).unwrap().connect().await.unwrap();
        let mut grpc = tonic::client::Grpc::new(ch.clone());
        grpc.ready().await.unwrap();
        // Sent where a TraceBatch is expected, its `name` (field 2) reads as a
        // trace whose length prefix runs past the end.
        let codec = tonic::codec::ProstCodec::<TraceMessage, pss::serve::grpc::pb::pss::BatchResponse>::default();
        let path = http::uri::PathAndQuery::from_static("/pss.TraceBatchService/SubmitBatch");
        let msg = TraceMessage { name: "\n\u{7f}".into(), ..Default::default() };
        let bad = grpc.unary(tonic::Request::new(msg), path, codec).await.unwrap_err();
        let mut c = TraceBatchServiceClient::new(ch);
        let mut req =
            tonic::Request::new(TraceBatch { service: "x".into(), traces: vec![TraceMessage::default(); 1001] });
        req.metadata_mut().insert("authorization", "Bearer tok-9f8e7d6c5b4a".parse().unwrap());
        let big = c.submit_batch(req).await.unwrap_err();
        (bad, big)
    });
    // tonic's codec answers INTERNAL for a message it cannot decode.
    assert_eq!(bad.code(), tonic::Code::Internal, "{bad:?}");
    assert!(bad.message().contains("failed to decode"), "{bad:?}");
    assert_eq!(big.code(), tonic::Code::ResourceExhausted, "{big:?}");
    assert!(big.message().contains("at most 1000"), "{big:?}");
    // An idle gRPC connection (not even the HTTP/2 preface) is closed.
    {
        let mut s = std::net::TcpStream::connect(g).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let t0 = Instant::now();
        // The server speaks first (its SETTINGS frame); then the close.
        let mut rest = Vec::new();
        let closed = s.read_to_end(&mut rest).is_ok();
        assert!(closed && t0.elapsed() < Duration::from_secs(8), "the idle connection stayed open");
    }

    let m = reqwest::blocking::get(format!("http://{h}/metrics")).unwrap().text().unwrap();
    for (input, reason, n) in [
        ("http", "too_large", 2),
        ("http", "malformed", 1),
        ("http", "unsupported_media", 1),
        ("http", "timeout", 1),
        ("http", "connection_limit", 1),
        ("grpc", "malformed", 1),
        ("grpc", "too_large", 1),
        ("grpc", "timeout", 1),
    ] {
        let line = format!("pss_messages_rejected_by_reason_total{{input=\"{input}\",reason=\"{reason}\"}} ");
        let got: u64 = m.lines().find_map(|l| l.strip_prefix(&line)).and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!(got >= n, "{input} {reason}: {got} < {n}\n{m}");
    }
    assert!(m.contains("pss_traces_accepted_total{input=\"http\"} 2"), "nothing acknowledged lost: {m}");
    assert!(!m.contains("tok-9f8e7d6c5b4a"), "the token is never shown");
    assert!(server.term().success());
}

/// Live alerting end to end: traces with an injected bad stretch posted to
/// `pss serve` page once per channel and resolve once; a receiver that is
/// down at first gets them later; a restart sends nothing twice.
#[test]
fn live_alerting_pages_once_per_episode_and_resolves_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (base, log) = crate::alert::receiver();
    std::fs::write(
        d.join("pypss.toml"),
        format!(
            "[pypss]\nalerts_enabled = true\nalerts_generic_webhook = \"{base}/flaky/webhook\"\n\
             alerts_slack_webhook = \"{base}/slack\"\nalerts_teams_webhook = \"{base}/teams\"\n\
             alerts_alertmanager_url = \"{base}/am\"\nalert_threshold_ts = 0\nalert_threshold_ms = 0\n\
             alert_threshold_ev = 0\nalert_threshold_be = 0\nalert_threshold_cc = 0\n\
             [pss]\nalert_threshold_pss = 80\n[pss.alarm]\nresolve_after = 2\n"
        ),
    )
    .unwrap();
    // Twelve 10-second windows an hour ago: calm, three bad ones (errors,
    // erratic latency), calm again.
    let t0 = ((pss::timefmt::now() - 3600.0) / 10.0).floor() * 10.0;
    let lines = stretch(t0, 0..12, |w| (4..=6).contains(&w));
    let args = ["--http", "127.0.0.1:0", "--window", "10s", "--service", "shop", "--alarm-grace", "1s"];
    let server = Server::start(d, &args);
    let h = server.http.unwrap();
    let r = reqwest::blocking::Client::new().post(format!("http://{h}/v1/traces")).body(lines).send().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let delivered = |prefix: &str| log.lock().unwrap().iter().filter(|(p, _)| p.starts_with(prefix)).count();
    assert!(
        wait_until(Duration::from_secs(30), || {
            delivered("/flaky/webhook") == 2
                && delivered("/am/") == 2
                && delivered("/slack") == 2
                && delivered("/teams") == 2
        }),
        "fired and resolved on both channels: {:?}",
        log.lock().unwrap()
    );
    let bodies = log.lock().unwrap().clone();
    let hooks: Vec<&serde_json::Value> = bodies.iter().filter(|(p, _)| p == "/flaky/webhook").map(|(_, b)| b).collect();
    assert_eq!(hooks[0]["rule"], "PSS alarm: pss", "{hooks:?}");
    assert!(hooks[0]["message"].as_str().unwrap().starts_with("shop: stability alarm (pss) since"), "{hooks:?}");
    assert!(hooks[1]["message"].as_str().unwrap().starts_with("Resolved: shop stability alarm (pss)"), "{hooks:?}");
    let am: Vec<&serde_json::Value> = bodies.iter().filter(|(p, _)| p == "/am/api/v2/alerts").map(|(_, b)| b).collect();
    assert_eq!(am.len(), 2, "Alertmanager's v2 API under the base URL: {bodies:?}");
    assert!(am[0][0]["startsAt"].is_string() && am[0][0].get("endsAt").is_none());
    assert_eq!(am[1][0]["startsAt"], am[0][0]["startsAt"], "the resolution names the same alert");
    assert!(am[1][0]["endsAt"].is_string());
    let m = reqwest::blocking::get(format!("http://{h}/metrics")).unwrap().text().unwrap();
    assert!(m.contains("pss_notifications_total{channel=\"webhook\",result=\"failed\"} 2"), "{m}");
    assert!(m.contains("pss_notifications_total{channel=\"webhook\",result=\"sent\"} 2"), "{m}");
    assert!(!m.contains(&base), "webhook URLs are not shown");
    assert!(server.term().success());
    let list = crate::common::ok(&crate::common::pss(d, &["alerts", "list", "--history", "h.db"]));
    assert_eq!(list.lines().filter(|l| l.contains("shop from")).count(), 8, "{list}");
    assert!(!list.contains("waiting") && !list.contains(&base), "{list}");
    let test = crate::common::ok(&crate::common::pss(d, &["alerts", "test"]));
    assert!(test.contains("webhook       delivered") && test.contains("alertmanager  delivered"), "{test}");
    assert!(test.contains("slack         delivered") && test.contains("teams         delivered"), "{test}");

    // A restart finds the same episodes again and sends nothing twice.
    let before = log.lock().unwrap().len();
    let server = Server::start(d, &args);
    let h = server.http.unwrap();
    let evaluations = || -> u64 {
        let m = reqwest::blocking::get(format!("http://{h}/metrics")).unwrap().text().unwrap();
        m.lines().find_map(|l| l.strip_prefix("pss_alarm_evaluations_total ")).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    assert!(wait_until(Duration::from_secs(10), || evaluations() >= 3), "the policy was evaluated after the restart");
    std::thread::sleep(Duration::from_millis(500)); // the sender's pass after the last evaluation
    assert_eq!(log.lock().unwrap().len(), before, "nothing sent twice");
    assert!(server.term().success());
}

/// A real Alertmanager (Debian's), started here on 127.0.0.1; killed on drop.
struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start() -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("am.yml"), "route:\n  receiver: 'none'\nreceivers:\n  - name: 'none'\n")
            .unwrap();
        let port = free_port();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", dir.path().join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager on the PATH (scripts/test.sh installs it)");
        let url = format!("http://127.0.0.1:{port}");
        let ready = format!("{url}/-/ready");
        assert!(
            wait_until(Duration::from_secs(20), || reqwest::blocking::get(&ready)
                .is_ok_and(|r| r.status().is_success())),
            "alertmanager did not start"
        );
        Alertmanager { child, url, _dir: dir }
    }

    /// Active alerts' labels.
    fn active(&self) -> Vec<serde_json::Value> {
        let v: serde_json::Value =
            reqwest::blocking::get(format!("{}/api/v2/alerts?active=true", self.url)).unwrap().json().unwrap();
        v.as_array().unwrap().iter().map(|a| a["labels"].clone()).collect()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Live alerting into a real Alertmanager: the episode shows as an active
/// alert with pss's labels, and its resolution ends it.
#[test]
fn a_real_alertmanager_shows_the_alert_and_its_resolution() {
    let am = Alertmanager::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("pypss.toml"),
        format!(
            "[pypss]\nalerts_enabled = true\nalerts_alertmanager_url = \"{}\"\nalert_threshold_ts = 0\n\
             alert_threshold_ms = 0\nalert_threshold_ev = 0\nalert_threshold_be = 0\nalert_threshold_cc = 0\n\
             [pss]\nalert_threshold_pss = 80\n",
            am.url
        ),
    )
    .unwrap();
    let t0 = ((pss::timefmt::now() - 600.0) / 10.0).floor() * 10.0;
    let server =
        Server::start(d, &["--http", "127.0.0.1:0", "--window", "10s", "--service", "shop", "--alarm-grace", "1s"]);
    let h = server.http.unwrap();
    let post = |body: String| {
        let r = reqwest::blocking::Client::new().post(format!("http://{h}/v1/traces")).body(body).send().unwrap();
        assert_eq!(r.status(), 200);
    };
    post(stretch(t0, 0..7, |w| w >= 4));
    assert!(
        wait_until(Duration::from_secs(30), || am
            .active()
            .iter()
            .any(|l| l["alertname"] == "PSS alarm" && l["service"] == "shop")),
        "the alert is active in Alertmanager: {:?}",
        am.active()
    );
    post(stretch(t0, 7..10, |_| false));
    assert!(wait_until(Duration::from_secs(30), || am.active().is_empty()), "resolved: {:?}", am.active());
    assert!(server.term().success());
}

/// A newly promoted policy is put in force without a restart; a broken one
/// is refused and the old one stays.
#[test]
fn the_alarm_policy_file_is_reloaded_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("pypss.toml"),
        "[pypss]\nalerts_enabled = true\nalerts_generic_webhook = \"http://127.0.0.1:9/x\"\n",
    )
    .unwrap();
    std::fs::write(d.join("policy.toml"), "[pss]\nalert_threshold_pss = 60\n").unwrap();
    let server = Server::start(d, &["--http", "127.0.0.1:0", "--policy", "policy.toml", "--window", "10s"]);
    let h = server.http.unwrap();
    let metrics = || reqwest::blocking::get(format!("http://{h}/metrics")).unwrap().text().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || metrics().contains("pss_alarm_policy_info{source=\"policy.toml\"} 1"))
    );
    std::thread::sleep(Duration::from_millis(50)); // a distinct modification time
    std::fs::write(
        d.join("policy.toml"),
        "[pss]\nalert_threshold_pss = 70\n[pss.alarm]\nfire_after = 2\nfire_window = 3\n",
    )
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || metrics().contains("pss_alarm_policy_reloads_total{result=\"ok\"} 1")),
        "{}",
        metrics()
    );
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(d.join("policy.toml"), "[pss.alarm]\nfire_aftr = 2\n").unwrap();
    assert!(wait_until(Duration::from_secs(10), || metrics()
        .contains("pss_alarm_policy_reloads_total{result=\"failed\"} 1")));
    assert!(server.term().success());
}

/// A notification recorded while its receiver is down survives a SIGKILL of
/// the server and is delivered after the restart, once.
#[test]
fn a_recorded_notification_survives_sigkill_and_is_sent_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port(); // nothing listens here yet
    std::fs::write(
        d.join("pypss.toml"),
        format!(
            "[pypss]\nalerts_enabled = true\nalerts_generic_webhook = \"http://127.0.0.1:{port}/hook\"\n\
             alert_threshold_ts = 0\nalert_threshold_ms = 0\nalert_threshold_ev = 0\nalert_threshold_be = 0\n\
             alert_threshold_cc = 0\n[pss]\nalert_threshold_pss = 80\n"
        ),
    )
    .unwrap();
    let t0 = ((pss::timefmt::now() - 3600.0) / 10.0).floor() * 10.0;
    let lines = stretch(t0, 0..6, |w| w >= 3);
    let args = ["--http", "127.0.0.1:0", "--window", "10s", "--service", "shop", "--alarm-grace", "1s"];
    let server = Server::start(d, &args);
    let h = server.http.unwrap();
    reqwest::blocking::Client::new().post(format!("http://{h}/v1/traces")).body(lines).send().unwrap();
    let failed = || {
        reqwest::blocking::get(format!("http://{h}/metrics"))
            .map(|r| {
                r.text().unwrap_or_default().contains("pss_notifications_total{channel=\"webhook\",result=\"failed\"}")
            })
            .unwrap_or(false)
    };
    assert!(wait_until(Duration::from_secs(20), failed), "the page was recorded and its first attempt failed");
    server.kill9();
    let (_, log) = crate::alert::receiver_on(port);
    let server = Server::start(d, &args);
    assert!(
        wait_until(Duration::from_secs(20), || log.lock().unwrap().len() == 1),
        "delivered after the restart: {:?}",
        log.lock().unwrap()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(log.lock().unwrap().len(), 1, "once");
    assert!(log.lock().unwrap()[0].1["message"].as_str().unwrap().starts_with("shop: stability alarm"));
    assert!(server.term().success());
}

/// JSON Lines of 10-second windows from `t0`, 20 traces each: calm, or —
/// in `bad` — failing half the time with erratic latency (PSS well below 80).
fn stretch(t0: f64, windows: std::ops::Range<usize>, bad: impl Fn(usize) -> bool) -> String {
    let mut lines = String::new();
    for w in windows {
        let bad = bad(w);
        for i in 0..20 {
            let duration = if bad { 0.01 + (i % 7) as f64 * 0.3 } else { 0.010 + (i % 3) as f64 * 0.0001 };
            lines += &serde_json::json!({"name": "h", "module": "app", "duration": duration, "memory": 1000,
                "error": bad && i % 2 == 0, "timestamp": t0 + w as f64 * 10.0 + i as f64 * 0.4})
            .to_string();
            lines.push('\n');
        }
    }
    lines
}
