//! OTLP/HTTP: `POST /v1/traces` with an `ExportTraceServiceRequest` as
//! protobuf (`application/x-protobuf`) or JSON (`application/json`),
//! identity or gzip, answered in the request's encoding. On the same
//! hardened HTTP server as pss's HTTP input (connection limit, header and
//! body timeouts, body size and memory budget, bounded inflation).
//!
//! Status codes as the OTLP specification says: 200 (with a partial success
//! when spans were rejected); 400 malformed, 401 unauthorized, 413 too
//! large, 415 unsupported media — not retryable; 429 (store behind) and 503
//! (store failed, stopping) with `Retry-After` — retryable. Every error body
//! is a `google.rpc.Status` in the request's encoding.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use prost::Message;
use tokio::sync::Semaphore;

use super::pb::collector::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use super::pb::RpcStatus;
use super::{map::decode_json, ExportError, Exporter, SpanMapping, RETRY_AFTER};
use crate::serve::http::{authorized, body_budget, receive, BodyLimits, HttpConfig};
use crate::serve::metrics::Reason;
use crate::serve::writer::InputKind;

/// The OTLP/HTTP input's configuration: pss's HTTP limits, how far a gzip
/// body may inflate, and the span mapping.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct OtlpHttpConfig {
    pub http: HttpConfig,
    pub max_inflated_bytes: u64,
    pub mapping: SpanMapping,
}

#[derive(Clone)]
struct Ctx {
    exporter: Exporter,
    token: Option<Arc<String>>,
    limits: BodyLimits,
    budget: Arc<Semaphore>,
    max_inflated: u64,
}

/// The two encodings OTLP/HTTP defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// An answer in `enc`: the response message, or a `google.rpc.Status`.
fn answer(enc: Encoding, status: StatusCode, body: Vec<u8>, retry: bool) -> Response {
    let mut r = (status, [("content-type", enc.content_type())], body).into_response();
    if retry {
        r.headers_mut().insert("retry-after", RETRY_AFTER.as_secs().into());
    }
    r
}

fn error_body(enc: Encoding, status: StatusCode, message: &str) -> Vec<u8> {
    // google.rpc.Code for the HTTP status (the body's `code` field).
    let code = match status {
        StatusCode::BAD_REQUEST => 3,
        StatusCode::UNAUTHORIZED => 16,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => 8,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        StatusCode::REQUEST_TIMEOUT => 4,
        _ => 2,
    };
    match enc {
        Encoding::Protobuf => RpcStatus { code, message: message.to_string(), details: vec![] }.encode_to_vec(),
        Encoding::Json => {
            serde_json::to_vec(&serde_json::json!({"code": code, "message": message})).unwrap_or_default()
        }
    }
}

/// An error answer: a `google.rpc.Status` in `enc`, with `Retry-After`
/// when OTLP says the status is retryable (429, 503).
fn error(enc: Encoding, status: StatusCode, message: &str) -> Response {
    let retry = matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE);
    answer(enc, status, error_body(enc, status, message), retry)
}

impl Ctx {
    /// A refusal before the exporter saw the request, counted here.
    fn refuse(&self, enc: Encoding, reason: Reason, status: StatusCode, message: &str) -> Response {
        self.exporter.metrics.rejected(InputKind::OtlpHttp, reason, 1);
        error(enc, status, message)
    }
}

/// The request's encoding from its content type, or why it is not one.
fn encoding(headers: &HeaderMap) -> Result<Encoding, String> {
    let t = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let t = t.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match t.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(format!(
            "content type '{}' is not OTLP/HTTP; send application/x-protobuf or application/json",
            t.chars().take(80).collect::<String>()
        )),
    }
}

/// The body inflated when it is gzip, at most `limit` bytes.
fn inflate(headers: &HeaderMap, bytes: &[u8], limit: u64) -> Result<Option<Vec<u8>>, (Reason, StatusCode, String)> {
    let e = headers.get("content-encoding").and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_ascii_lowercase();
    match e.as_str() {
        "" | "identity" => Ok(None),
        "gzip" => {
            let mut out = Vec::new();
            // Every member of a multi-member gzip body, as the trace reader reads them.
            let mut d = flate2::read::MultiGzDecoder::new(bytes).take(limit + 1);
            d.read_to_end(&mut out)
                .map_err(|e| (Reason::Malformed, StatusCode::BAD_REQUEST, format!("the gzip body is corrupt: {e}")))?;
            if out.len() as u64 > limit {
                let m = format!("the body decompresses to more than {limit} bytes; send smaller batches");
                return Err((Reason::TooLarge, StatusCode::PAYLOAD_TOO_LARGE, m));
            }
            Ok(Some(out))
        }
        other => Err((
            Reason::UnsupportedMedia,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "content encoding '{}' is not supported; send identity or gzip",
                other.chars().take(40).collect::<String>()
            ),
        )),
    }
}

async fn export(State(c): State<Ctx>, headers: HeaderMap, body: Body) -> Response {
    let enc = match encoding(&headers) {
        Ok(e) => e,
        Err(m) => {
            return c.refuse(Encoding::Protobuf, Reason::UnsupportedMedia, StatusCode::UNSUPPORTED_MEDIA_TYPE, &m)
        }
    };
    if !authorized(&c.token, headers.get("authorization").and_then(|v| v.to_str().ok())) {
        return c.refuse(enc, Reason::Unauthorized, StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let (bytes, permit) = match receive(&c.budget, &c.limits, &headers, body).await {
        Ok(r) => r,
        Err(r) => return c.refuse(enc, r.reason, r.status, &r.message),
    };
    let inflated = match inflate(&headers, &bytes, c.max_inflated) {
        Ok(i) => i,
        Err((reason, status, m)) => return c.refuse(enc, reason, status, &m),
    };
    let raw: &[u8] = inflated.as_deref().unwrap_or(&bytes);
    let req = match enc {
        Encoding::Protobuf => {
            ExportTraceServiceRequest::decode(raw).map_err(|e| format!("not a protobuf ExportTraceServiceRequest: {e}"))
        }
        Encoding::Json => decode_json(raw),
    };
    drop(inflated);
    drop(bytes);
    let req = match req {
        Ok(r) => r,
        Err(m) => return c.refuse(enc, Reason::Malformed, StatusCode::BAD_REQUEST, &m),
    };
    let service = headers.get("x-pss-service").and_then(|v| v.to_str().ok()).map(str::to_string);
    let result = c.exporter.export(req, service).await;
    drop(permit);
    // The exporter counted its own refusals.
    match result {
        Ok(resp) => answer(enc, StatusCode::OK, response_body(enc, &resp), false),
        Err(e) => {
            let status = match e {
                ExportError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
                ExportError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                ExportError::Invalid(_) => StatusCode::BAD_REQUEST,
                ExportError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            };
            error(enc, status, &e.to_string())
        }
    }
}

/// The response message in `enc` (OTLP/JSON: int64 as a string).
fn response_body(enc: Encoding, r: &ExportTraceServiceResponse) -> Vec<u8> {
    match enc {
        Encoding::Protobuf => r.encode_to_vec(),
        Encoding::Json => {
            let v = match &r.partial_success {
                Some(p) => serde_json::json!({"partialSuccess": {
                    "rejectedSpans": p.rejected_spans.to_string(), "errorMessage": p.error_message}}),
                None => serde_json::json!({}),
            };
            serde_json::to_vec(&v).unwrap_or_default()
        }
    }
}

/// Builds the OTLP/HTTP input; the future serves until `shutdown` resolves.
pub(crate) async fn build(
    cfg: OtlpHttpConfig,
    ctx: crate::serve::input::InputContext,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl std::future::Future<Output = std::io::Result<()>>)> {
    let h = &cfg.http;
    let listener = tokio::net::TcpListener::bind(h.address).await?;
    let addr = listener.local_addr()?;
    let metrics = ctx.metrics.clone();
    let state = Ctx {
        exporter: Exporter::new(&ctx, cfg.mapping.clone(), h.patience, InputKind::OtlpHttp),
        token: ctx.token.clone(),
        limits: BodyLimits::of(h),
        budget: body_budget(h.body_budget_bytes, h.max_body_bytes),
        max_inflated: cfg.max_inflated_bytes,
    };
    let app = Router::new().route("/v1/traces", post(export)).with_state(state);
    let serve = crate::serve::http::serve_router(
        listener,
        app,
        h.max_connections,
        h.header_timeout,
        InputKind::OtlpHttp,
        metrics,
        shutdown,
    );
    Ok((addr, serve))
}
