//! gRPC input, wire-compatible with pypss's `pypss.TraceService/SubmitTrace`
//! (an unmodified `GRPCCollector` delivers into it), plus pss's
//! `pss.TraceBatchService/SubmitBatch`. Each call is answered after its
//! traces are committed; a full queue is `RESOURCE_EXHAUSTED`.

use std::sync::Arc;

use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use super::metrics::{Metrics, Reason};
use super::writer::{InputKind, Job, JobError, Queue, Refused};

/// Generated from `proto/` by `build.rs`.
pub mod pb {
    /// pypss's package, unchanged.
    pub mod pypss {
        tonic::include_proto!("pypss");
    }
    /// pss's own batch service.
    pub mod pss {
        tonic::include_proto!("pss");
    }
}

use pb::pss::trace_batch_service_server::{TraceBatchService, TraceBatchServiceServer};
use pb::pss::{BatchResponse, TraceBatch};
use pb::pypss::trace_service_server::{TraceService, TraceServiceServer};
use pb::pypss::{TraceMessage, TraceResponse};

/// A trace message as the JSON object pypss would have written.
pub fn to_json(m: &TraceMessage) -> serde_json::Value {
    let mut o = serde_json::json!({
        "name": m.name, "filename": m.filename, "lineno": m.lineno, "module": m.module,
        "duration": m.duration, "cpu_time": m.cpu_time, "wait_time": m.wait_time,
        "memory": m.memory, "memory_diff": m.memory_diff, "error": m.error,
        "exception_type": if m.exception_type.is_empty() { serde_json::Value::Null } else { m.exception_type.clone().into() },
        "exception_message": if m.exception_message.is_empty() { serde_json::Value::Null } else { m.exception_message.clone().into() },
        "branch_tag": if m.branch_tag.is_empty() { serde_json::Value::Null } else { m.branch_tag.clone().into() },
        "timestamp": m.timestamp,
    });
    if !m.trace_id.is_empty() {
        o["trace_id"] = m.trace_id.clone().into();
    }
    o
}

/// The gRPC services' shared state.
#[derive(Clone)]
pub struct Grpc {
    queue: Queue,
    metrics: Arc<Metrics>,
    token: Option<Arc<String>>,
    default_service: Arc<String>,
    patience: std::time::Duration,
    max_batch_traces: usize,
}

impl Grpc {
    // tonic's handlers return `Status`; boxing it here would only be unboxed again.
    #[allow(clippy::result_large_err)]
    fn check<T>(&self, r: &Request<T>) -> Result<String, Status> {
        let auth = r.metadata().get("authorization").and_then(|v| v.to_str().ok());
        if !super::http::authorized(&self.token, auth) {
            self.metrics.rejected(InputKind::Grpc, Reason::Unauthorized, 1);
            return Err(Status::unauthenticated("missing or wrong bearer token"));
        }
        Ok(r.metadata()
            .get("x-pss-service")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| self.default_service.to_string()))
    }

    /// Stores in a task of its own: a client that cancels its call (as
    /// pypss's collector does) does not cancel the store.
    async fn store(&self, service: String, body: Vec<u8>, n: u64) -> Result<crate::store::IngestReport, Status> {
        let me = self.clone();
        match tokio::spawn(async move { me.store_now(service, body, n).await }).await {
            Ok(r) => r,
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }

    async fn store_now(&self, service: String, body: Vec<u8>, n: u64) -> Result<crate::store::IngestReport, Status> {
        let (tx, rx) = oneshot::channel();
        let job = Job { input: InputKind::Grpc, service, name: "gRPC".into(), body, ack: tx };
        match self.queue.offer_within(job, self.patience).await {
            Ok(()) => {}
            Err(e @ Refused::Full(_)) => {
                self.metrics.rejected(InputKind::Grpc, Reason::Busy, n);
                return Err(Status::resource_exhausted(e.to_string()));
            }
            Err(e) => return Err(Status::unavailable(e.to_string())),
        }
        match rx.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.metrics.rejected(InputKind::Grpc, e.reason(), n);
                Err(match e {
                    JobError::Invalid(m) => Status::invalid_argument(m),
                    JobError::TooLarge(m) => Status::resource_exhausted(m),
                    JobError::Store(_) => Status::unavailable(e.to_string()),
                })
            }
            Err(_) => Err(Status::unavailable("the store stopped before committing")),
        }
    }
}

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn submit_trace(&self, r: Request<TraceMessage>) -> Result<Response<TraceResponse>, Status> {
        let service = self.check(&r)?;
        let body = serde_json::to_vec(&to_json(r.get_ref())).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let rep = self.store(service, body, 1).await?;
        let message = if rep.duplicates > 0 { "duplicate (already stored)" } else { "stored" };
        Ok(Response::new(TraceResponse { success: true, message: message.into() }))
    }
}

#[tonic::async_trait]
impl TraceBatchService for Grpc {
    async fn submit_batch(&self, r: Request<TraceBatch>) -> Result<Response<BatchResponse>, Status> {
        let mut service = self.check(&r)?;
        let b = r.into_inner();
        if b.traces.len() > self.max_batch_traces {
            self.metrics.rejected(InputKind::Grpc, Reason::TooLarge, 1);
            return Err(Status::resource_exhausted(format!(
                "{} traces in one batch; at most {} (split the batch)",
                b.traces.len(),
                self.max_batch_traces
            )));
        }
        if !b.service.is_empty() {
            service = b.service.clone();
        }
        let mut body = Vec::with_capacity(b.traces.len() * 300);
        for t in &b.traces {
            serde_json::to_writer(&mut body, &to_json(t)).map_err(|e| Status::invalid_argument(e.to_string()))?;
            body.push(b'\n');
        }
        let rep = self.store(service, body, b.traces.len() as u64).await?;
        Ok(Response::new(BatchResponse {
            success: true,
            message: "stored".into(),
            accepted: rep.inserted,
            duplicates: rep.duplicates,
        }))
    }
}

/// The gRPC input's configuration.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct GrpcConfig {
    pub address: std::net::SocketAddr,
    /// Largest accepted message, bytes.
    pub max_message_bytes: usize,
    /// How long a call waits for room in the queue before RESOURCE_EXHAUSTED.
    pub patience: std::time::Duration,
    /// Open connections at most; more are closed at once and counted.
    pub max_connections: usize,
    /// Traces in one batch at most.
    pub max_batch_traces: usize,
    /// A connection on which nothing arrives for this long is closed.
    pub idle_timeout: std::time::Duration,
}

/// Builds the gRPC input; the future serves until `shutdown` resolves.
pub(super) async fn build(
    cfg: GrpcConfig,
    ctx: super::input::InputContext,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(std::net::SocketAddr, impl std::future::Future<Output = Result<(), tonic::transport::Error>>)> {
    let GrpcConfig { address, max_message_bytes, patience, max_connections, max_batch_traces, idle_timeout } = cfg;
    let listener = tokio::net::TcpListener::bind(address).await?;
    let addr = listener.local_addr()?;
    let metrics = ctx.metrics.clone();
    let g = Grpc {
        queue: ctx.queue,
        metrics: ctx.metrics,
        token: ctx.token,
        default_service: ctx.service,
        patience,
        max_batch_traces,
    };
    let routes =
        tonic::service::Routes::new(TraceServiceServer::new(g.clone()).max_decoding_message_size(max_message_bytes))
            .add_service(TraceBatchServiceServer::new(g).max_decoding_message_size(max_message_bytes));
    let fut = serve_routes(listener, routes, max_connections, idle_timeout, InputKind::Grpc, metrics, shutdown);
    Ok((addr, fut))
}

/// Serves `routes` on `listener` until `shutdown`: at most `max_connections`
/// open, each closed after `idle` without traffic, refusals counted for
/// `input`.
pub(super) fn serve_routes(
    listener: tokio::net::TcpListener,
    routes: tonic::service::Routes,
    max_connections: usize,
    idle: std::time::Duration,
    input: InputKind,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> impl std::future::Future<Output = Result<(), tonic::transport::Error>> {
    let incoming = limited_incoming(listener, max_connections, idle, input, metrics.clone());
    // pypss's GRPCCollector drops each call's future at once, and grpcio
    // cancels a call when its future is garbage-collected: every trace
    // arrives followed by a RST_STREAM. hyper's rapid-reset guard would
    // answer that with GOAWAY and lose the rest of the connection, so the
    // limit is raised; the store step runs in its own task (below) so a
    // trace that arrived is kept even when its call is cancelled.
    tonic::transport::Server::builder()
        .http2_max_pending_accept_reset_streams(Some(100_000))
        .layer(CountRefusals { metrics, input })
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown)
}

/// A connection that holds its place under the connection limit, closed
/// when nothing arrives on it for `idle` (idle or half-open clients cannot
/// hold the limit).
struct Limited {
    io: tokio::net::TcpStream,
    _permit: tokio::sync::OwnedSemaphorePermit,
    idle: std::time::Duration,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    input: InputKind,
    metrics: Arc<Metrics>,
}

impl tonic::transport::server::Connected for Limited {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl tokio::io::AsyncRead for Limited {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = tokio::time::Instant::now() + self.idle;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match std::future::Future::poll(self.deadline.as_mut(), cx) {
                Poll::Ready(()) => {
                    self.metrics.rejected(self.input, Reason::Timeout, 1);
                    Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "idle connection closed")))
                }
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl tokio::io::AsyncWrite for Limited {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Accepted connections, at most `max` open at once: one more is closed at
/// once and counted (gRPC has no way to say why before its handshake).
fn limited_incoming(
    listener: tokio::net::TcpListener,
    max: usize,
    idle: std::time::Duration,
    input: InputKind,
    metrics: Arc<Metrics>,
) -> impl tokio_stream::Stream<Item = std::io::Result<Limited>> {
    let gate = Arc::new(tokio::sync::Semaphore::new(max.max(1)));
    async_stream_like(listener, move |io| match gate.clone().try_acquire_owned() {
        Ok(permit) => Some(Limited {
            io,
            _permit: permit,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            input,
            metrics: metrics.clone(),
        }),
        Err(_) => {
            metrics.rejected(input, Reason::ConnectionLimit, 1);
            None
        }
    })
}

/// The listener's connections through `admit` (a refused one is dropped,
/// which closes it); accept errors (out of descriptors) are waited out.
fn async_stream_like(
    listener: tokio::net::TcpListener,
    admit: impl FnMut(tokio::net::TcpStream) -> Option<Limited> + Send + 'static,
) -> impl tokio_stream::Stream<Item = std::io::Result<Limited>> {
    futures_util::stream::unfold((listener, admit), |(listener, mut admit)| async move {
        loop {
            match listener.accept().await {
                Ok((io, _)) => {
                    let _ = io.set_nodelay(true);
                    if let Some(c) = admit(io) {
                        return Some((Ok(c), (listener, admit)));
                    }
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    })
}

/// Counts calls that end in an error status before pss's handlers see them
/// (a message that is not valid protobuf, or over the size limit).
#[derive(Clone)]
struct CountRefusals {
    metrics: Arc<Metrics>,
    input: InputKind,
}

impl<S> tower_layer::Layer<S> for CountRefusals {
    type Service = CountRefusalsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CountRefusalsService { inner, metrics: self.metrics.clone(), input: self.input }
    }
}

#[derive(Clone)]
struct CountRefusalsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
    input: InputKind,
}

impl<S, B, RB> tower_service::Service<http::Request<B>> for CountRefusalsService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: http_body::Body + Send + 'static,
{
    type Response = http::Response<CountedBody<RB>>;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = self.inner.call(req);
        let (metrics, input) = (self.metrics.clone(), self.input);
        Box::pin(async move {
            let resp = fut.await?;
            // A unary error is "trailers-only": the status is in the headers.
            if let Some(reason) = codec_refusal(resp.headers()) {
                metrics.rejected(input, reason, 1);
                return Ok(resp.map(|body| CountedBody { body, metrics: None, input }));
            }
            Ok(resp.map(|body| CountedBody { body, metrics: Some(metrics), input }))
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts a decode failure in its trailers
    /// (INVALID_ARGUMENT or RESOURCE_EXHAUSTED raised by tonic's codec).
    struct CountedBody<B> {
        #[pin]
        body: B,
        metrics: Option<Arc<Metrics>>,
        input: InputKind,
    }
}

impl<B: http_body::Body> http_body::Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let out = this.body.poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &out {
            if let Some(reason) = frame.trailers_ref().and_then(codec_refusal) {
                if let Some(m) = this.metrics.take() {
                    m.rejected(*this.input, reason, 1);
                }
            }
        }
        out
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}

/// A status tonic's codec raises for a bad message, as a reason; pss's own
/// handlers count theirs where they refuse (their messages are pss's).
fn codec_refusal(trailers: &http::HeaderMap) -> Option<Reason> {
    let status = trailers.get("grpc-status")?.to_str().ok()?;
    // grpc-message is percent-encoded.
    let message = trailers.get("grpc-message").and_then(|m| m.to_str().ok()).unwrap_or("").replace("%20", " ");
    match status {
        // tonic 0.13: INTERNAL "failed to decode Protobuf message: ..."
        "3" | "13" if message.contains("failed to decode") => Some(Reason::Malformed),
        // tonic: "Error, decoded message length too large: ..."
        "8" if message.contains("message length too large") => Some(Reason::TooLarge),
        _ => None,
    }
}
