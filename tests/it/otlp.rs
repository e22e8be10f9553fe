//! `pss serve --otlp-http / --otlp-grpc` with real OpenTelemetry clients: the
//! Python SDK and its own OTLP/HTTP and OTLP/gRPC exporters
//! (`otel_client.py`; scripts/test.sh installs them), plus raw requests for
//! what the SDK never sends (JSON, gzip, malformed bodies, partial success).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use prost::Message;
use pss::serve::otlp::pb::collector::trace_service_client::TraceServiceClient;
use pss::serve::otlp::pb::collector::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use pss::serve::otlp::pb::trace::{ResourceSpans, ScopeSpans, Span};
use pss::serve::otlp::pb::RpcStatus;

use crate::common::{python, repo, wait_until};
use crate::serve::Server;

/// Runs the instrumented program; returns the spans the SDK recorded.
fn sdk(
    dir: &Path,
    protocol: &str,
    endpoint: &str,
    service: &str,
    rounds: usize,
    threads: usize,
) -> Vec<serde_json::Value> {
    let out = Command::new(python())
        .current_dir(dir)
        .arg(repo("tests/it/otel_client.py"))
        .args([protocol, endpoint, service, &rounds.to_string(), &threads.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "the OpenTelemetry client failed");
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The stored traces of a service by trace key.
fn stored(dir: &Path, service: &str) -> HashMap<String, serde_json::Value> {
    let db = rusqlite::Connection::open(dir.join("h.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut q = db
        .prepare(
            "SELECT t.trace_key, t.name, t.module, t.duration, t.timestamp, t.error, t.exception_type, \
             t.exception_message, t.branch_tag, t.memory, t.wait_time, t.cpu_time, t.filename, t.lineno \
             FROM traces t JOIN services s ON s.id = t.service_id WHERE s.name = ?1",
        )
        .unwrap();
    let rows = q
        .query_map([service], |r| {
            Ok((
                r.get::<_, String>(0)?,
                serde_json::json!({
                    "name": r.get::<_, String>(1)?, "module": r.get::<_, String>(2)?,
                    "duration": r.get::<_, f64>(3)?, "timestamp": r.get::<_, f64>(4)?,
                    "error": r.get::<_, i64>(5)? != 0, "exception_type": r.get::<_, Option<String>>(6)?,
                    "exception_message": r.get::<_, Option<String>>(7)?, "branch_tag": r.get::<_, Option<String>>(8)?,
                    "memory": r.get::<_, Option<f64>>(9)?, "wait_time": r.get::<_, Option<f64>>(10)?,
                    "cpu_time": r.get::<_, Option<f64>>(11)?, "filename": r.get::<_, Option<String>>(12)?,
                    "lineno": r.get::<_, Option<i64>>(13)?,
                }),
            ))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn metrics(server: &Server) -> String {
    reqwest::blocking::get(format!("http://{}/metrics", server.http.unwrap())).unwrap().text().unwrap()
}

fn metric(m: &str, series: &str) -> f64 {
    m.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{series} not in /metrics"))
        .parse()
        .unwrap()
}

/// Every span the SDK recorded is stored once, mapped as the README says.
fn check_mapping(spans: &[serde_json::Value], got: &HashMap<String, serde_json::Value>) {
    assert_eq!(got.len(), spans.len(), "every span arrives, once");
    for s in spans {
        let key = format!("id:otel:{}:{}", s["trace_id"].as_str().unwrap(), s["span_id"].as_str().unwrap());
        let t = got.get(&key).unwrap_or_else(|| panic!("span {key} ({}) not stored", s["name"]));
        let a = &s["attributes"];
        assert_eq!(t["name"], s["name"]);
        let module = a.get("code.namespace").cloned().unwrap_or_else(|| s["scope"].clone());
        assert_eq!(t["module"], module, "{key}");
        let (start, end) = (s["start"].as_u64().unwrap(), s["end"].as_u64().unwrap());
        approx::assert_abs_diff_eq!(t["duration"].as_f64().unwrap(), (end - start) as f64 / 1e9, epsilon = 1e-9);
        approx::assert_abs_diff_eq!(t["timestamp"].as_f64().unwrap(), start as f64 / 1e9, epsilon = 1e-6);
        assert_eq!(t["error"], s["error"]);
        match s["exceptions"].as_array().unwrap().last() {
            Some(e) if s["error"] == true => {
                assert_eq!(t["exception_type"], e["exception.type"]);
                assert_eq!(t["exception_message"], e["exception.message"]);
            }
            _ => assert!(t["exception_type"].is_null()),
        }
        assert_eq!(t["branch_tag"], a.get("pss.branch_tag").cloned().unwrap_or_default());
        // A number attribute is the reading; a string one ("lots") is not: absent (NULL).
        let num = |k: &str| a.get(k).filter(|v| v.is_number()).cloned().map(|v| v.as_f64().unwrap());
        assert_eq!(t["memory"].as_f64(), num("pss.memory"), "{key}");
        assert_eq!(t["wait_time"].as_f64(), num("pss.wait_time"));
        assert_eq!(t["cpu_time"].as_f64(), num("pss.cpu_time"));
        assert_eq!(t["filename"], a.get("code.filepath").cloned().unwrap_or_default());
        assert_eq!(t["lineno"], a.get("code.lineno").cloned().unwrap_or_default());
    }
}

#[test]
fn the_opentelemetry_sdk_exports_every_span_over_http_and_grpc_mapped_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server =
        Server::start(d, &["--otlp-http", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    let http_spans = sdk(d, "http", &format!("http://{}/v1/traces", server.otlp_http.unwrap()), "shop-http", 4, 2);
    let grpc_spans = sdk(d, "grpc", &server.otlp_grpc.unwrap().to_string(), "shop-grpc", 4, 2);
    // 2 threads x 4 rounds x (root, price_cart, charge) + 2 x 2 failing reserve_stock.
    assert_eq!((http_spans.len(), grpc_spans.len()), (28, 28));
    check_mapping(&http_spans, &stored(d, "shop-http"));
    check_mapping(&grpc_spans, &stored(d, "shop-grpc"));
    let m = metrics(&server);
    assert_eq!(metric(&m, "pss_traces_accepted_total{input=\"otlp_http\"}"), 28.0);
    assert_eq!(metric(&m, "pss_traces_accepted_total{input=\"otlp_grpc\"}"), 28.0);
    assert_eq!(metric(&m, "pss_otlp_spans_total{kind=\"server\"}"), 16.0);
    assert_eq!(metric(&m, "pss_otlp_spans_total{kind=\"client\"}"), 16.0);
    assert_eq!(metric(&m, "pss_otlp_spans_total{kind=\"internal\"}"), 24.0);
    // The string "lots" on every charge span cannot be a memory reading: counted, not silently lost.
    assert_eq!(metric(&m, "pss_otlp_unmapped_values_total{attribute=\"pss.memory\",type=\"string\"}"), 16.0);
    assert_eq!(metric(&m, "pss_otlp_spans_without_total{field=\"memory\"}"), 40.0);
    // Windows are computed like any input's, and the report says what was not measured.
    wait_until(Duration::from_secs(10), || {
        let db = rusqlite::Connection::open(d.join("h.db")).unwrap();
        db.query_row(
            "SELECT COUNT(*) FROM windows w JOIN services s ON s.id = w.service_id WHERE s.name = 'shop-grpc'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_or(0)
            > 0
    });
    assert!(server.term().success());
    let w = crate::common::ok(&crate::common::pss(d, &["windows", "--history", "h.db", "--service", "shop-grpc"]));
    assert!(w.lines().count() >= 2, "a window table: {w}");
}

/// Holds the history's write lock for `hold` (the writer waits; the queue fills).
fn stall_the_store(db: &Path, hold: Duration) -> std::thread::JoinHandle<()> {
    let db = db.to_path_buf();
    let locked = std::sync::Arc::new(std::sync::Barrier::new(2));
    let l2 = locked.clone();
    let h = std::thread::spawn(move || {
        let c = rusqlite::Connection::open(db).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        l2.wait();
        std::thread::sleep(hold);
        c.execute_batch("COMMIT").unwrap();
    });
    locked.wait();
    h
}

#[test]
fn under_back_pressure_the_sdk_retries_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = ["--otlp-http", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"];
    let server = Server::start(d, &[&args[..], &["--queue", "1", "--patience", "0s"]].concat());
    let stall = stall_the_store(&d.join("h.db"), Duration::from_secs(3));
    let (h, g) = (server.otlp_http.unwrap(), server.otlp_grpc.unwrap());
    let dd = d.to_path_buf();
    let http = std::thread::spawn(move || sdk(&dd, "http", &format!("http://{h}/v1/traces"), "bp-http", 3, 4));
    let grpc_spans = sdk(d, "grpc", &g.to_string(), "bp-grpc", 3, 4);
    let http_spans = http.join().unwrap();
    stall.join().unwrap();
    check_mapping(&http_spans, &stored(d, "bp-http"));
    check_mapping(&grpc_spans, &stored(d, "bp-grpc"));
    let m = metrics(&server);
    let busy = |i: &str| metric(&m, &format!("pss_messages_rejected_by_reason_total{{input=\"{i}\",reason=\"busy\"}}"));
    assert!(busy("otlp_http") > 0.0 && busy("otlp_grpc") > 0.0, "back-pressure was exercised: {m}");
    assert!(server.term().success());
}

fn request(n: usize, bad: usize) -> ExportTraceServiceRequest {
    use pss::serve::otlp::pb::common::{any_value::Value, AnyValue, KeyValue};
    use pss::serve::otlp::pb::resource::Resource;
    let t0 = 1_790_000_000_000_000_000u64;
    let span = |i: usize, ok: bool| Span {
        trace_id: vec![7; 16],
        span_id: (i as u64 + 1).to_be_bytes().to_vec(),
        name: format!("op{}", i % 3),
        start_time_unix_nano: t0 + i as u64 * 1_000_000,
        end_time_unix_nano: if ok { t0 + i as u64 * 1_000_000 + 500_000 } else { 1 },
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue { value: Some(Value::StringValue("raw".into())) }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..n).map(|i| span(i, true)).chain((n..n + bad).map(|i| span(i, false))).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn json_gzip_partial_success_and_malformed_bodies_get_the_specifications_answers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("token"), "tok\n").unwrap();
    std::fs::set_permissions(d.join("token"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let server = Server::start(
        d,
        &["--otlp-http", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0", "--http", "127.0.0.1:0", "--token-file", "token"],
    );
    let url = format!("http://{}/v1/traces", server.otlp_http.unwrap());
    let c = reqwest::blocking::Client::new();
    let post = |ct: &str, body: Vec<u8>, gzip: bool| {
        let mut r = c.post(&url).header("content-type", ct).bearer_auth("tok").body(body);
        if gzip {
            r = r.header("content-encoding", "gzip");
        }
        r.send().unwrap()
    };
    // Protobuf with two spans that end before they start: a partial success.
    let r = post("application/x-protobuf", request(5, 2).encode_to_vec(), false);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    let p = ExportTraceServiceResponse::decode(r.bytes().unwrap()).unwrap().partial_success.unwrap();
    assert_eq!(p.rejected_spans, 2);
    assert!(p.error_message.contains("ends before it starts"), "{}", p.error_message);
    // The same spans again, gzip: stored once.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &request(5, 0).encode_to_vec()).unwrap();
    assert_eq!(post("application/x-protobuf", gz.finish().unwrap(), true).status(), 200);
    // OTLP/JSON (the specification's own example), answered in JSON.
    let example = std::fs::read(repo("proto/opentelemetry/examples/trace.json")).unwrap();
    let r = post("application/json", example, false);
    assert_eq!((r.status().as_u16(), r.headers()["content-type"].to_str().unwrap()), (200, "application/json"));
    assert_eq!(r.text().unwrap(), "{}");
    // Malformed: 400 with a google.rpc.Status in the request's encoding; not retryable (no Retry-After).
    let r = post("application/x-protobuf", b"\xff\xff\xff garbage".to_vec(), false);
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("retry-after").is_none());
    let st = RpcStatus::decode(r.bytes().unwrap()).unwrap();
    assert_eq!(st.code, 3);
    assert!(st.message.contains("ExportTraceServiceRequest"), "{}", st.message);
    let r = post(
        "application/json",
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"zz"}]}]}]}"#.to_vec(),
        false,
    );
    assert_eq!(r.status(), 400);
    let st: serde_json::Value = r.json().unwrap();
    assert!(st["message"].as_str().unwrap().contains("spans[0].spanId"), "{st}");
    assert_eq!(post("text/csv", b"a,b".to_vec(), false).status(), 415);
    assert_eq!(c.post(&url).header("content-type", "application/json").body("{}").send().unwrap().status(), 401);
    // gRPC: malformed protobuf is INVALID_ARGUMENT; a good request, gzip-compressed, is stored.
    let g = server.otlp_grpc.unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (bad, ok) = rt.block_on(async {
        let ch = tonic::transport::Channel::from_shared(format!("http://{g}")).unwrap().connect().await.unwrap();
        fn auth<T>(mut r: tonic::Request<T>) -> tonic::Request<T> {
            r.metadata_mut().insert("authorization", "Bearer tok".parse().unwrap());
            r
        }
        // Raw bytes that are not a request, through a client with a bytes codec.
        let mut raw = tonic::client::Grpc::new(ch.clone());
        raw.ready().await.unwrap();
        let path = http::uri::PathAndQuery::from_static("/opentelemetry.proto.collector.trace.v1.TraceService/Export");
        let bad: Result<tonic::Response<ExportTraceServiceResponse>, _> =
            raw.unary(auth(tonic::Request::new(Garbage)), path, GarbageCodec).await;
        let mut client = TraceServiceClient::new(ch).send_compressed(tonic::codec::CompressionEncoding::Gzip);
        let ok = client.export(auth(tonic::Request::new(request(8, 1)))).await.unwrap().into_inner();
        (bad.unwrap_err(), ok)
    });
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    assert_eq!(ok.partial_success.unwrap().rejected_spans, 1);
    let got = stored(d, "raw");
    assert_eq!(got.len(), 8, "spans 1-5 twice over HTTP, then 1-8 over gRPC: 8 traces");
    assert_eq!(stored(d, "my.service").len(), 1);
    let m = metrics(&server);
    assert_eq!(metric(&m, "pss_traces_duplicate_total{input=\"otlp_http\"}"), 5.0);
    assert_eq!(metric(&m, "pss_otlp_spans_rejected_total"), 3.0);
    assert_eq!(metric(&m, "pss_messages_rejected_by_reason_total{input=\"otlp_http\",reason=\"malformed\"}"), 2.0);
    assert_eq!(metric(&m, "pss_messages_rejected_by_reason_total{input=\"otlp_grpc\",reason=\"malformed\"}"), 1.0);
    assert!(server.term().success());
}

/// Bytes that are not protobuf.
struct Garbage;

/// Sends [`Garbage`] as the request and decodes the answer as OTLP's response.
#[derive(Clone, Copy)]
struct GarbageCodec;

impl tonic::codec::Codec for GarbageCodec {
    type Encode = Garbage;
    type Decode = ExportTraceServiceResponse;
    type Encoder = GarbageEncoder;
    type Decoder = <tonic::codec::ProstCodec<ExportTraceServiceRequest, ExportTraceServiceResponse> as tonic::codec::Codec>::Decoder;
    fn encoder(&mut self) -> Self::Encoder {
        GarbageEncoder
    }
    fn decoder(&mut self) -> Self::Decoder {
        tonic::codec::ProstCodec::<ExportTraceServiceRequest, ExportTraceServiceResponse>::raw_decoder(
            tonic::codec::BufferSettings::default(),
        )
    }
}

struct GarbageEncoder;

impl tonic::codec::Encoder for GarbageEncoder {
    type Item = Garbage;
    type Error = tonic::Status;
    fn encode(&mut self, _: Garbage, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put_slice(dst, b"\xff\xff\xff\xff not protobuf");
        Ok(())
    }
}
