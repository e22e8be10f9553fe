//! Ingest throughput of `pss serve` (driven by `benches/serve.sh`): starts the
//! release binary on a fresh database and sends traces over HTTP (batches of
//! 1,000, JSON Lines) and the gRPC batch RPC, then the same number of spans
//! as OTLP/HTTP protobuf and OTLP/gRPC `Export` requests of 1,000 spans, from
//! concurrent clients; counts what is in the database. Prints one line per
//! input.
//!
//! Usage: serve_bench PSS_BINARY WORKDIR [TRACES_PER_INPUT] [CLIENTS] [REFRESH] [alerting]
//!
//! With `alerting`, live alerting is on (every service and module window
//! evaluated by the alarm policy at each refresh); the server's CPU time is
//! printed either way, to compare.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Instant;

use pss::serve::grpc::pb::pss::trace_batch_service_client::TraceBatchServiceClient;
use pss::serve::grpc::pb::pss::TraceBatch;
use pss::serve::grpc::pb::pypss::TraceMessage;

fn line(i: usize) -> String {
    format!(
        "{{\"trace_id\":\"h{i}\",\"name\":\"handler_{}\",\"module\":\"app.m{}\",\"duration\":{},\"wait_time\":0.001,\"memory\":{},\"error\":{},\"branch_tag\":\"b{}\",\"timestamp\":{}}}\n",
        i % 5,
        i % 3,
        0.01 + (i % 17) as f64 * 1e-3,
        1_000_000 + i,
        i.is_multiple_of(97),
        i % 4,
        1.79e9 + i as f64 * 0.001
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (bin, dir) = (&args[1], std::path::PathBuf::from(&args[2]));
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(400_000);
    let clients: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(4);
    let refresh = args.get(5).cloned().unwrap_or_else(|| "60s".into());
    let alerting = args.get(6).is_some_and(|a| a == "alerting");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    if alerting {
        // A receiver nobody listens on: the cost measured is evaluation and the outbox.
        std::fs::write(
            dir.join("pypss.toml"),
            "[pypss]\nalerts_enabled = true\nalerts_generic_webhook = \"http://127.0.0.1:9/hook\"\n\
             [pss.alarm]\nmodule_pss = 60\n",
        )
        .unwrap();
    }
    let mut child = Command::new(bin)
        .current_dir(&dir)
        .args([
            "serve",
            "--history",
            "bench.db",
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--refresh",
            &refresh,
        ])
        // The comparison runs use 1 s windows, so many close during the run.
        .args(if args.len() > 5 { vec!["--window", "1s"] } else { vec![] })
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut grpc, mut http): (Option<SocketAddr>, Option<SocketAddr>) = (None, None);
    let (mut otlp_http, mut otlp_grpc): (Option<SocketAddr>, Option<SocketAddr>) = (None, None);
    for l in lines.by_ref() {
        let l = l.unwrap();
        if let Some(a) = l.strip_prefix("pss serve: OTLP/HTTP on http://") {
            otlp_http = a.trim_end_matches("/v1/traces").parse().ok();
        }
        if let Some(a) = l.strip_prefix("pss serve: OTLP/gRPC on ") {
            otlp_grpc = a.parse().ok();
        }
        if let Some(a) = l.strip_prefix("pss serve: gRPC on ") {
            grpc = a.parse().ok();
        }
        if let Some(a) = l.strip_prefix("pss serve: HTTP on http://") {
            http = a.split_whitespace().next().and_then(|a| a.parse().ok());
        }
        if l.starts_with("pss serve: ready") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let (grpc, http) = (grpc.unwrap(), http.unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let per = n / clients / 1000;

    // Requests built before the clock starts.
    let sent = clients * per * 1000;
    let bodies: Vec<Vec<Vec<u8>>> = (0..clients)
        .map(|c| {
            (0..per).map(|b| (0..1000).map(|i| line((c * per + b) * 1000 + i)).collect::<String>().into()).collect()
        })
        .collect();
    let url = format!("http://{http}/v1/traces");
    let secs = timed(
        &rt,
        bodies,
        || (reqwest::Client::new(), url.clone()),
        |(c, url), body| async move { post_until_taken(&c, &url, None, body).await },
    );
    rate("http  batches of 1000", clients, sent, "traces", secs);

    let batches: Vec<Vec<Vec<TraceMessage>>> = (0..clients)
        .map(|c| {
            (0..per)
                .map(|b| {
                    (0..1000)
                        .map(|i| {
                            let j = (c * per + b) * 1000 + i;
                            TraceMessage {
                                trace_id: format!("g{j}"),
                                name: format!("handler_{}", j % 5),
                                module: format!("app.m{}", j % 3),
                                duration: 0.01 + (j % 17) as f64 * 1e-3,
                                wait_time: 0.001,
                                memory: 1_000_000 + j as i64,
                                error: j.is_multiple_of(97),
                                branch_tag: format!("b{}", j % 4),
                                timestamp: 1.79e9 + j as f64 * 0.001,
                                ..Default::default()
                            }
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let secs = timed(
        &rt,
        batches,
        || TraceBatchServiceClient::new(channel(grpc)),
        |mut c, traces| async move {
            while let Err(s) = c.submit_batch(TraceBatch { service: "bench".into(), traces: traces.clone() }).await {
                assert_eq!(s.code(), tonic::Code::ResourceExhausted);
            }
        },
    );
    rate("grpc  SubmitBatch of 1000", clients, sent, "traces", secs);
    otlp(&rt, otlp_http.unwrap(), otlp_grpc.unwrap(), clients, per);
    // Let the last refresh (windows, and with alerting their evaluation) run,
    // then read the server's CPU time (user + system) from /proc.
    if args.len() > 5 {
        std::thread::sleep(std::time::Duration::from_secs(3));
    }
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .zip(fields.get(12))
        .map_or(0.0, |(u, s)| u.parse::<f64>().unwrap_or(0.0) + s.parse::<f64>().unwrap_or(0.0));
    println!(
        "server CPU {:.2} s (alerting {}, refresh {refresh})",
        ticks / 100.0,
        if alerting { "on, every service and module window" } else { "off" }
    );
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap();
    let db = rusqlite::Connection::open(dir.join("bench.db")).unwrap();
    let stored: i64 = db.query_row("SELECT COUNT(*) FROM traces", [], |r| r.get(0)).unwrap();
    println!("stored {stored} of {} sent", 4 * sent);
}

/// One OTLP request of 1,000 spans (ids from `first`), with the attributes
/// the HTTP and gRPC traces above carry.
fn otlp_request(first: usize) -> pss::serve::otlp::pb::collector::ExportTraceServiceRequest {
    use pss::serve::otlp::pb::common::{any_value::Value, AnyValue, InstrumentationScope, KeyValue};
    use pss::serve::otlp::pb::resource::Resource;
    use pss::serve::otlp::pb::trace::{ResourceSpans, ScopeSpans, Span, Status};
    let kv =
        |k: &str, v: Value| KeyValue { key: k.into(), value: Some(AnyValue { value: Some(v) }), ..Default::default() };
    let spans = (first..first + 1000)
        .map(|j| {
            let start = 1_790_000_000_000_000_000u64 + j as u64 * 1_000_000;
            Span {
                trace_id: (j as u128).to_be_bytes().to_vec(),
                span_id: (j as u64).to_be_bytes().to_vec(),
                name: format!("handler_{}", j % 5),
                kind: 2,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 10_000_000 + (j % 17) as u64 * 1_000_000,
                attributes: vec![
                    kv("code.namespace", Value::StringValue(format!("app.m{}", j % 3))),
                    kv("pss.wait_time", Value::DoubleValue(0.001)),
                    kv("pss.memory", Value::IntValue(1_000_000 + j as i64)),
                    kv("pss.branch_tag", Value::StringValue(format!("b{}", j % 4))),
                ],
                status: Some(Status { code: if j.is_multiple_of(97) { 2 } else { 0 }, message: String::new() }),
                ..Default::default()
            }
        })
        .collect();
    pss::serve::otlp::pb::collector::ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Value::StringValue("otlp".into()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope { name: "bench".into(), ..Default::default() }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// OTLP/HTTP protobuf, then OTLP/gRPC, `clients` × `per` requests of 1,000 spans each.
fn otlp(rt: &tokio::runtime::Runtime, http: SocketAddr, grpc: SocketAddr, clients: usize, per: usize) {
    use prost::Message;
    use pss::serve::otlp::pb::collector::trace_service_client::TraceServiceClient;
    let sent = clients * per * 1000;
    let bodies: Vec<Vec<Vec<u8>>> =
        (0..clients).map(|c| (0..per).map(|b| otlp_request((c * per + b) * 1000).encode_to_vec()).collect()).collect();
    let url = format!("http://{http}/v1/traces");
    let secs = timed(
        rt,
        bodies,
        || (reqwest::Client::new(), url.clone()),
        |(c, url), body| async move { post_until_taken(&c, &url, Some("application/x-protobuf"), body).await },
    );
    rate("otlp/http protobuf, 1000 spans a request", clients, sent, "spans", secs);
    // Different span ids from the HTTP run: a second service's worth, not duplicates.
    let requests: Vec<Vec<_>> =
        (0..clients).map(|c| (0..per).map(|b| otlp_request(sent + (c * per + b) * 1000)).collect()).collect();
    let secs = timed(
        rt,
        requests,
        || TraceServiceClient::new(channel(grpc)),
        |mut c, req| async move {
            while let Err(s) = c.export(req.clone()).await {
                assert_eq!(s.code(), tonic::Code::Unavailable);
            }
        },
    );
    rate("otlp/grpc Export, 1000 spans a request", clients, sent, "spans", secs);
}

/// One task per client, each sending its items in order with a client of
/// its own (`send` retries what the server refuses with back-pressure);
/// the seconds it all took.
fn timed<T, C, Fut>(
    rt: &tokio::runtime::Runtime,
    work: Vec<Vec<T>>,
    connect: impl Fn() -> C,
    send: impl Fn(C, T) -> Fut + Copy + Send + 'static,
) -> f64
where
    T: Send + 'static,
    C: Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let t = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = work
            .into_iter()
            .map(|items| {
                let c = connect();
                tokio::spawn(async move {
                    for item in items {
                        send(c.clone(), item).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    t.elapsed().as_secs_f64()
}

/// POSTs `body` until the server takes it (200), again after each 429.
async fn post_until_taken(c: &reqwest::Client, url: &str, content_type: Option<&str>, body: Vec<u8>) {
    loop {
        let mut r = c.post(url).body(body.clone());
        if let Some(t) = content_type {
            r = r.header("content-type", t);
        }
        let status = r.send().await.unwrap().status();
        if status == 200 {
            return;
        }
        assert_eq!(status, 429);
    }
}

/// A gRPC channel to `addr`, connected on first use (inside the timing).
fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect_lazy()
}

fn rate(what: &str, clients: usize, sent: usize, unit: &str, secs: f64) {
    println!("{what}, {clients} clients: {sent} {unit} in {secs:.2} s = {:.0} {unit}/s", sent as f64 / secs);
}
