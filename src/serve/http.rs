//! HTTP input: `POST /v1/traces` (JSON array, `{"traces": …}` or JSON Lines;
//! service from the `X-PSS-Service` header or `?service=`), `GET /healthz`,
//! `GET /metrics` (Prometheus text). 200 only after the batch is committed;
//! 429 when the store is behind; 400 with the reason for a malformed body;
//! 413 over the size limit; 401 without the bearer token when one is set.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tokio::sync::oneshot;

use super::metrics::Metrics;
use super::writer::{InputKind, Job, JobError, Queue, Refused};

/// The HTTP input's configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpConfig {
    pub address: SocketAddr,
    /// Largest accepted body, bytes.
    pub max_body_bytes: usize,
    /// How long a request waits for room in the queue before a 429.
    pub patience: std::time::Duration,
}

#[derive(Clone)]
struct Ctx {
    queue: Queue,
    metrics: Arc<Metrics>,
    token: Option<Arc<String>>,
    default_service: Arc<String>,
    patience: std::time::Duration,
}

/// Checks `Authorization: Bearer <token>` when a token is configured.
pub fn authorized(token: &Option<Arc<String>>, header: Option<&str>) -> bool {
    match token {
        None => true,
        Some(t) => header.and_then(|h| h.strip_prefix("Bearer ")).is_some_and(|given| constant_eq(given, t)),
    }
}

/// Comparison that does not stop at the first difference.
fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn submit(
    State(c): State<Ctx>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&c.token, headers.get("authorization").and_then(|v| v.to_str().ok())) {
        c.metrics.rejected(InputKind::Http, 1);
        return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
    }
    let service = headers
        .get("x-pss-service")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| q.get("service").cloned())
        .unwrap_or_else(|| c.default_service.to_string());
    let (tx, rx) = oneshot::channel();
    let job = Job { input: InputKind::Http, service, name: "POST /v1/traces".into(), body: body.to_vec(), ack: tx };
    match c.queue.offer_within(job, c.patience).await {
        Ok(()) => {}
        Err(e @ Refused::Full(_)) => {
            c.metrics.rejected(InputKind::Http, 1);
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], format!("{e}\n")).into_response();
        }
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
    match rx.await {
        Ok(Ok(r)) => (
            StatusCode::OK,
            axum::Json(
                serde_json::json!({"accepted": r.inserted, "duplicates": r.duplicates, "skipped": r.skipped.total()}),
            ),
        )
            .into_response(),
        Ok(Err(e @ JobError::Invalid(_))) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the store stopped before committing\n").into_response(),
    }
}

/// Builds the HTTP input; the future serves until `shutdown` resolves.
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
        metrics: input.metrics,
        token: input.token,
        default_service: input.service,
        patience: cfg.patience,
    };
    let app = Router::new()
        .route("/v1/traces", post(submit))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(move || async move { ([("content-type", "text/plain; version=0.0.4")], m.render()) }))
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .with_state(ctx);
    Ok((addr, async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await }))
}
