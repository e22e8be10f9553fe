//! HTTP input: `POST /v1/traces` (JSON array, `{"traces": …}` or JSON Lines,
//! possibly gzip; service from the `X-PSS-Service` header or `?service=`),
//! `GET /healthz`, `GET /metrics` (Prometheus text). 200 only after the batch
//! is committed.
//!
//! Clients are untrusted, so every refusal has a status, a reason in the
//! body and a count in `/metrics` (`pss_messages_rejected_by_reason_total`):
//! 401 without the bearer token when one is set; 415 for a content type or
//! encoding pss does not read; 413 over the body limit (or a gzip body that
//! inflates past its limit); 408 when the body does not arrive within the
//! request timeout; 429 when the store is behind or the in-memory body
//! budget is spent; 400 with the parser's reason for a malformed body; 503
//! past the connection limit. Headers must arrive within the header timeout,
//! which also closes idle keep-alive connections (slowloris).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tokio::sync::{oneshot, Semaphore};

use super::metrics::{Metrics, Reason};
use super::writer::{InputKind, Job, JobError, Queue, Refused};

/// The HTTP input's configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpConfig {
    pub address: SocketAddr,
    /// Largest accepted body, bytes.
    pub max_body_bytes: usize,
    /// How long a request waits for room in the queue before a 429.
    pub patience: Duration,
    /// Open connections at most; more are answered 503 and closed.
    pub max_connections: usize,
    /// Request headers must arrive within this; also the keep-alive idle timeout.
    pub header_timeout: Duration,
    /// The whole body must arrive within this.
    pub request_timeout: Duration,
    /// Bytes of request bodies held in memory at once (received, queued or
    /// being stored), over all connections.
    pub body_budget_bytes: usize,
    /// The dashboard's pages and API, served beside the input (`pss serve --board`).
    #[serde(skip)]
    pub board: Option<crate::board::BoardState>,
}

#[derive(Clone)]
struct Ctx {
    queue: Queue,
    metrics: Arc<Metrics>,
    token: Option<Arc<String>>,
    default_service: Arc<String>,
    cfg: Arc<HttpConfig>,
    /// The body budget, in KiB permits.
    budget: Arc<Semaphore>,
}

/// Checks `Authorization: Bearer <token>` when a token is configured, in
/// constant time (`subtle`; only the length is not secret).
pub fn authorized(token: &Option<Arc<String>>, header: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    match token {
        None => true,
        Some(t) => header
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|given| bool::from(given.as_bytes().ct_eq(t.as_bytes()))),
    }
}

/// The media types pss reads as trace documents (parameters aside), and no
/// type at all.
const MEDIA_TYPES: [&str; 8] = [
    "application/json",
    "application/x-ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "text/plain",
    "application/gzip",
    "application/x-gzip",
    "application/octet-stream",
];

/// Why the headers do not describe a body pss reads, if they do not.
fn media_refusal(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get("content-type") {
        let t = v.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !MEDIA_TYPES.contains(&t.as_str()) {
            return Some(format!(
                "content type '{}' is not a trace document; send one of {}",
                t.chars().take(80).collect::<String>(),
                MEDIA_TYPES.join(", ")
            ));
        }
    }
    if let Some(v) = headers.get("content-encoding") {
        let e = v.to_str().unwrap_or("").trim().to_ascii_lowercase();
        if !matches!(e.as_str(), "" | "identity" | "gzip") {
            return Some(format!(
                "content encoding '{}' is not supported; send identity or gzip",
                e.chars().take(40).collect::<String>()
            ));
        }
    }
    None
}

fn refuse(c: &Ctx, reason: Reason, status: StatusCode, msg: String) -> Response {
    c.metrics.rejected(InputKind::Http, reason, 1);
    (status, format!("{msg}\n")).into_response()
}

async fn submit(
    State(c): State<Ctx>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !authorized(&c.token, headers.get("authorization").and_then(|v| v.to_str().ok())) {
        return refuse(&c, Reason::Unauthorized, StatusCode::UNAUTHORIZED, "missing or wrong bearer token".into());
    }
    if let Some(why) = media_refusal(&headers) {
        return refuse(&c, Reason::UnsupportedMedia, StatusCode::UNSUPPORTED_MEDIA_TYPE, why);
    }
    let limits = BodyLimits::of(&c.cfg);
    let (bytes, permit) = match receive(&c.budget, &limits, &headers, body).await {
        Ok(r) => r,
        Err(r) => return refuse(&c, r.reason, r.status, r.message),
    };
    let service = headers
        .get("x-pss-service")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| q.get("service").cloned())
        .unwrap_or_else(|| c.default_service.to_string());
    let (tx, rx) = oneshot::channel();
    let job = Job { input: InputKind::Http, service, name: "POST /v1/traces".into(), body: bytes.to_vec(), ack: tx };
    drop(bytes);
    match c.queue.offer_within(job, c.cfg.patience).await {
        Ok(()) => {}
        Err(e @ Refused::Full(_)) => {
            c.metrics.rejected(InputKind::Http, Reason::Busy, 1);
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], format!("{e}\n")).into_response();
        }
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
    let answer = rx.await;
    drop(permit);
    match answer {
        Ok(Ok(r)) => (
            StatusCode::OK,
            axum::Json(
                serde_json::json!({"accepted": r.inserted, "duplicates": r.duplicates, "skipped": r.skipped.total()}),
            ),
        )
            .into_response(),
        Ok(Err(e)) => {
            let status = match e {
                JobError::Invalid(_) => StatusCode::BAD_REQUEST,
                JobError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                JobError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            refuse(&c, e.reason(), status, e.to_string())
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the store stopped before committing\n").into_response(),
    }
}

/// The limits a request body is read within.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyLimits {
    pub max_body_bytes: usize,
    pub patience: Duration,
    pub request_timeout: Duration,
}

impl BodyLimits {
    pub(super) fn of(c: &HttpConfig) -> Self {
        BodyLimits { max_body_bytes: c.max_body_bytes, patience: c.patience, request_timeout: c.request_timeout }
    }
}

/// Why a request was refused before it reached the store.
#[derive(Debug)]
pub(super) struct Refusal {
    pub reason: Reason,
    pub status: StatusCode,
    pub message: String,
}

/// The body budget for `body_budget_bytes`, in KiB permits (room for one
/// largest body at least).
pub(super) fn body_budget(body_budget_bytes: usize, max_body_bytes: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new((body_budget_bytes / 1024).max(max_body_bytes.div_ceil(1024)).max(1)))
}

/// Reads a request body within `limits`: a declared length over the limit
/// is refused before reading; room in the body `budget` is held (the permit)
/// until the caller has stored the batch; the body must arrive within the
/// request timeout.
pub(super) async fn receive(
    budget: &Arc<Semaphore>,
    limits: &BodyLimits,
    headers: &HeaderMap,
    body: Body,
) -> Result<(axum::body::Bytes, tokio::sync::OwnedSemaphorePermit), Refusal> {
    let max = limits.max_body_bytes;
    let refusal = |reason, status, message| Refusal { reason, status, message };
    let declared = headers.get("content-length").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(refusal(Reason::TooLarge, StatusCode::PAYLOAD_TOO_LARGE, format!("body over {max} bytes")));
    }
    let kib = (declared.unwrap_or(max as u64).div_ceil(1024)).max(1) as u32;
    let permit = match tokio::time::timeout(limits.patience, budget.clone().acquire_many_owned(kib)).await {
        Ok(Ok(p)) => p,
        _ => {
            let msg = "the server holds as many request bodies as its budget allows; retry with backoff".into();
            return Err(refusal(Reason::Busy, StatusCode::TOO_MANY_REQUESTS, msg));
        }
    };
    match tokio::time::timeout(limits.request_timeout, axum::body::to_bytes(body, max)).await {
        Err(_) => {
            let msg = format!("the body did not arrive within {:?}", limits.request_timeout);
            Err(refusal(Reason::Timeout, StatusCode::REQUEST_TIMEOUT, msg))
        }
        Ok(Err(e)) if over_limit(&e) => {
            Err(refusal(Reason::TooLarge, StatusCode::PAYLOAD_TOO_LARGE, format!("body over {max} bytes")))
        }
        Ok(Err(e)) => Err(refusal(Reason::Malformed, StatusCode::BAD_REQUEST, format!("reading the body: {e}"))),
        Ok(Ok(b)) => Ok((b, permit)),
    }
}

/// Whether reading a body failed on the length limit.
fn over_limit(e: &axum::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        src = s.source();
    }
    false
}

/// Builds the HTTP input; the future serves until `shutdown` resolves, then
/// lets requests in flight finish.
pub(super) async fn build(
    cfg: HttpConfig,
    input: super::input::InputContext,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl std::future::Future<Output = std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(cfg.address).await?;
    let addr = listener.local_addr()?;
    let m = input.metrics.clone();
    let ctx = Ctx {
        queue: input.queue,
        metrics: input.metrics.clone(),
        token: input.token,
        default_service: input.service,
        budget: body_budget(cfg.body_budget_bytes, cfg.max_body_bytes),
        cfg: Arc::new(cfg.clone()),
    };
    let app = Router::new()
        .route("/v1/traces", post(submit))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(move || async move { ([("content-type", "text/plain; version=0.0.4")], m.render()) }))
        .with_state(ctx);
    let app = match cfg.board.clone() {
        Some(b) => app.merge(crate::board::router(b)),
        None => app,
    };
    let serve =
        serve_router(listener, app, cfg.max_connections, cfg.header_timeout, InputKind::Http, input.metrics, shutdown);
    Ok((addr, serve))
}

/// Serves `app` on `listener` (HTTP/1.1) until `shutdown`, then lets requests
/// in flight finish: at most `max_connections` open (one more is answered 503
/// and closed, counted for `input`), headers within `header_timeout` (which
/// also closes idle keep-alive connections).
pub(super) async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    max_connections: usize,
    header_timeout: Duration,
    input: InputKind,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let gate = Arc::new(Semaphore::new(max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let sock = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((sock, _)) => sock,
                // Out of file descriptors, or an aborted handshake: not fatal.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = gate.clone().try_acquire_owned() else {
            metrics.rejected(input, Reason::ConnectionLimit, 1);
            let msg = "connection limit reached; retry later\n";
            let _ = sock.try_write(
                format!(
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{msg}",
                    msg.len()
                )
                .as_bytes(),
            );
            continue;
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(256 * 1024)
            .serve_connection(
                hyper_util::rt::TokioIo::new(sock),
                hyper_util::service::TowerToHyperService::new(app.clone()),
            );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(60), graceful.shutdown()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_media_types() {
        let t = Some(Arc::new("s3cret".to_string()));
        assert!(authorized(&t, Some("Bearer s3cret")));
        assert!(!authorized(&t, Some("Bearer s3cre")) && !authorized(&t, Some("s3cret")) && !authorized(&t, None));
        assert!(authorized(&None, None));
        let h = |k: &'static str, v: &'static str| {
            let mut m = HeaderMap::new();
            m.insert(k, v.parse().unwrap());
            m
        };
        assert!(media_refusal(&HeaderMap::new()).is_none());
        assert!(media_refusal(&h("content-type", "application/json; charset=utf-8")).is_none());
        assert!(media_refusal(&h("content-encoding", "gzip")).is_none());
        assert!(media_refusal(&h("content-type", "multipart/form-data; boundary=x")).is_some());
        assert!(media_refusal(&h("content-encoding", "br")).is_some());
    }
}
