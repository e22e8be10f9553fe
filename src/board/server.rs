//! The board's HTTP side: the embedded pages and the JSON API under
//! `/api/`, as an axum router that `pss board` serves alone and `pss serve
//! --board` mounts beside its HTTP input. Every response carries a
//! Content-Security-Policy without inline scripts; with a token, the API
//! wants `Authorization: Bearer <token>` (the page asks for it once).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::assets;
use super::data::{self, QueryError, Range};
use crate::config::Config;

/// What the board serves from.
#[derive(Clone)]
pub struct BoardState {
    /// The history database; trace-file boards swap in a new one when a
    /// file changes.
    pub history: Arc<RwLock<PathBuf>>,
    /// `"history"` or `"files"` (what the page says it shows).
    pub mode: &'static str,
    /// What is shown: the history's path, or the trace files.
    pub label: String,
    pub cfg: Arc<Config>,
    /// Where tuned policies and detectors are (`models/`).
    pub models: PathBuf,
    /// An explicit alarm policy file (else the one in force per service).
    pub policy_file: Option<PathBuf>,
    pub token: Option<Arc<String>>,
    /// Bumped whenever the data changes (a re-read file, windows written by
    /// `pss serve`): the page polls `/api/meta` and redraws on a change.
    pub generation: Arc<AtomicU64>,
}

impl std::fmt::Debug for BoardState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoardState").field("mode", &self.mode).field("label", &self.label).finish()
    }
}

/// The CSP every response carries: scripts and styles from this origin only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// The board's routes (pages and API), with their state.
pub fn router(state: BoardState) -> Router {
    Router::new()
        .route("/", get(|| async { page(assets::INDEX_HTML, "text/html; charset=utf-8") }))
        .route("/board", get(|| async { page(assets::INDEX_HTML, "text/html; charset=utf-8") }))
        .route("/assets/app.js", get(|| async { page(assets::APP_JS, "text/javascript; charset=utf-8") }))
        .route("/assets/app.css", get(|| async { page(assets::APP_CSS, "text/css; charset=utf-8") }))
        .route("/assets/uplot.js", get(|| async { page(assets::UPLOT_JS, "text/javascript; charset=utf-8") }))
        .route("/assets/uplot.css", get(|| async { page(assets::UPLOT_CSS, "text/css; charset=utf-8") }))
        .route("/assets/uplot-LICENSE.txt", get(|| async { page(assets::UPLOT_LICENSE, "text/plain; charset=utf-8") }))
        .route("/assets/icon.svg", get(|| async { page(assets::ICON_SVG, "image/svg+xml") }))
        .route("/favicon.ico", get(|| async { page(assets::ICON_SVG, "image/svg+xml") }))
        .route("/api/meta", get(meta))
        .route("/api/overview", get(overview))
        .route("/api/series", get(series))
        .route("/api/heatmap", get(heatmap))
        .route("/api/module", get(module))
        .route("/api/incidents", get(incidents))
        .route("/api/alarms", get(alarms))
        .route("/api/detector", get(detector))
        .route("/api/alerts", get(alerts))
        .route("/api/patterns", get(patterns))
        .route("/diagnosis", get(diagnosis))
        .with_state(state)
}

fn page(body: &'static str, kind: &'static str) -> Response {
    secure(([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response())
}

/// The query string every API call understands.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    pub service: Option<String>,
    /// Window length, seconds.
    pub window: Option<f64>,
    pub from: Option<f64>,
    pub to: Option<f64>,
    /// Points the chart has room for (the server downsamples to them).
    pub points: Option<usize>,
    pub module: Option<String>,
    pub kind: Option<String>,
}

impl Params {
    fn range(&self) -> Result<Range, QueryError> {
        let service = self.service.clone().ok_or_else(|| QueryError::Input("give service=NAME".into()))?;
        Ok(Range { service, window: self.window, from: self.from, to: self.to })
    }

    fn points(&self) -> usize {
        self.points.unwrap_or(600).clamp(10, 5000)
    }
}

fn authorized(s: &BoardState, headers: &HeaderMap) -> bool {
    use subtle::ConstantTimeEq;
    let Some(token) = &s.token else { return true };
    let got = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    got.is_some_and(|g| g.len() == token.len() && bool::from(g.as_bytes().ct_eq(token.as_bytes())))
}

fn json_response(status: StatusCode, v: serde_json::Value) -> Response {
    secure((status, [(header::CACHE_CONTROL, "no-store")], axum::Json(v)).into_response())
}

/// Runs a query on a fresh connection to the history, off the async threads.
async fn query<T, F>(s: BoardState, f: F) -> Result<T, QueryError>
where
    T: Send + 'static,
    F: FnOnce(&dyn crate::store::Store, &BoardState) -> Result<T, QueryError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let path = s.history.read().expect("the history path lock is not poisoned").clone();
        let store = crate::store::open(&path)?;
        f(&*store, &s)
    })
    .await
    .unwrap_or_else(|_| Err(QueryError::Failed))
}

/// An API call: the token checked, the query run, its value or error as JSON.
async fn api<T, F>(s: BoardState, headers: HeaderMap, f: F) -> Response
where
    T: serde::Serialize + Send + 'static,
    F: FnOnce(&dyn crate::store::Store, &BoardState) -> Result<T, QueryError> + Send + 'static,
{
    if !authorized(&s, &headers) {
        return json_response(StatusCode::UNAUTHORIZED, serde_json::json!({ "error": "a bearer token is required" }));
    }
    match query(s, f).await {
        Ok(v) => json_response(StatusCode::OK, serde_json::to_value(v).expect("API values serialize")),
        Err(QueryError::Input(m)) => json_response(StatusCode::BAD_REQUEST, serde_json::json!({ "error": m })),
        Err(e) => json_response(StatusCode::INTERNAL_SERVER_ERROR, serde_json::json!({ "error": e.to_string() })),
    }
}

async fn meta(State(s): State<BoardState>, headers: HeaderMap) -> Response {
    api(s, headers, |store, s| {
        Ok(serde_json::json!({
            "mode": s.mode,
            "label": s.label,
            "generation": s.generation.load(Ordering::Relaxed),
            "services": data::services(store)?,
            "pss_version": env!("CARGO_PKG_VERSION"),
        }))
    })
    .await
}

async fn overview(State(s): State<BoardState>, headers: HeaderMap, Query(p): Query<Params>) -> Response {
    api(s, headers, move |store, s| data::overview(store, &p.range()?, &s.cfg)).await
}

async fn series(State(s): State<BoardState>, headers: HeaderMap, Query(p): Query<Params>) -> Response {
    api(s, headers, move |store, _| data::series(store, &p.range()?, p.module.as_deref(), p.points())).await
}

async fn heatmap(State(s): State<BoardState>, headers: HeaderMap, Query(p): Query<Params>) -> Response {
    api(s, headers, move |store, _| {
        data::heatmap(store, &p.range()?, p.kind.as_deref().unwrap_or("errors"), p.points().min(400))
    })
    .await
}

async fn module(State(s): State<BoardState>, headers: HeaderMap, Query(p): Query<Params>) -> Response {
    api(s, headers, move |store, s| {
        let m = p.module.clone().ok_or_else(|| QueryError::Input("give module=NAME".into()))?;
        data::module_detail(store, &p.range()?, &m, &s.cfg)
    })
    .await
}

async fn incidents(State(s): State<BoardState>, headers: HeaderMap, Query(p): Query<Params>) -> Response {
    api(s, headers, move |store, _| data::incidents(store, &p.range()?)).await
}

async fn alarms(State(s): State<BoardState>, headers: HeaderMap, Query(p): Query<Params>) -> Response {
    api(s, headers, move |store, s| data::alarms(store, &p.range()?, &s.cfg, s.policy_file.as_deref(), &s.models)).await
}

async fn detector(State(s): State<BoardState>, headers: HeaderMap, Query(p): Query<Params>) -> Response {
    api(s, headers, move |store, _| data::detector_scores(store, &p.range()?, p.points())).await
}

async fn patterns(State(s): State<BoardState>, headers: HeaderMap, Query(p): Query<Params>) -> Response {
    api(s, headers, move |store, _| data::patterns(store, &p.range()?)).await
}

async fn alerts(State(s): State<BoardState>, headers: HeaderMap, Query(p): Query<Params>) -> Response {
    api(s, headers, move |store, _| {
        let since = p.from.unwrap_or(0.0);
        Ok(store.notifications(since)?)
    })
    .await
}

/// The CSP of a diagnosis document: its own inline styles, no scripts.
const DOC_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; \
                       form-action 'none'; frame-ancestors 'none'";

#[derive(Debug, Deserialize)]
pub struct DiagnosisParams {
    pub service: String,
    pub incident: String,
    /// The token, for a document opened in a new tab (links cannot send headers).
    pub token: Option<String>,
}

async fn diagnosis(State(s): State<BoardState>, headers: HeaderMap, Query(p): Query<DiagnosisParams>) -> Response {
    let mut headers = headers;
    if let Some(t) = &p.token {
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}")) {
            headers.insert(header::AUTHORIZATION, v);
        }
    }
    if !authorized(&s, &headers) {
        return (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response();
    }
    let (status, body) =
        match query(s, move |store, s| data::diagnosis_html(store, &p.service, &p.incident, &s.cfg)).await {
            Ok(html) => (StatusCode::OK, html),
            Err(QueryError::Input(m)) => (StatusCode::BAD_REQUEST, m),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    let kind = if status == StatusCode::OK { "text/html; charset=utf-8" } else { "text/plain; charset=utf-8" };
    let mut r = (status, [(header::CONTENT_TYPE, kind)], body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOC_CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}
