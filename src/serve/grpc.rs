//! gRPC input, wire-compatible with pypss's `pypss.TraceService/SubmitTrace`
//! (an unmodified `GRPCCollector` delivers into it), plus pss's
//! `pss.TraceBatchService/SubmitBatch`. Each call is answered after its
//! traces are committed; a full queue is `RESOURCE_EXHAUSTED`.

use std::sync::Arc;

use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use super::metrics::Metrics;
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
}

impl Grpc {
    // tonic's handlers return `Status`; boxing it here would only be unboxed again.
    #[allow(clippy::result_large_err)]
    fn check<T>(&self, r: &Request<T>) -> Result<String, Status> {
        let auth = r.metadata().get("authorization").and_then(|v| v.to_str().ok());
        if !super::http::authorized(&self.token, auth) {
            self.metrics.rejected(InputKind::Grpc, 1);
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
                self.metrics.rejected(InputKind::Grpc, n);
                return Err(Status::resource_exhausted(e.to_string()));
            }
            Err(e) => return Err(Status::unavailable(e.to_string())),
        }
        match rx.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e @ JobError::Invalid(_))) => Err(Status::invalid_argument(e.to_string())),
            Ok(Err(e)) => Err(Status::unavailable(e.to_string())),
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
}

/// Builds the gRPC input; the future serves until `shutdown` resolves.
pub(super) async fn build(
    cfg: GrpcConfig,
    ctx: super::input::InputContext,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(std::net::SocketAddr, impl std::future::Future<Output = Result<(), tonic::transport::Error>>)> {
    let GrpcConfig { address, max_message_bytes, patience } = cfg;
    let listener = tokio::net::TcpListener::bind(address).await?;
    let addr = listener.local_addr()?;
    let g = Grpc { queue: ctx.queue, metrics: ctx.metrics, token: ctx.token, default_service: ctx.service, patience };
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    // pypss's GRPCCollector drops each call's future at once, and grpcio
    // cancels a call when its future is garbage-collected: every trace
    // arrives followed by a RST_STREAM. hyper's rapid-reset guard would
    // answer that with GOAWAY and lose the rest of the connection, so the
    // limit is raised; the store step runs in its own task (below) so a
    // trace that arrived is kept even when its call is cancelled.
    let fut = tonic::transport::Server::builder()
        .http2_max_pending_accept_reset_streams(Some(100_000))
        .add_service(TraceServiceServer::new(g.clone()).max_decoding_message_size(max_message_bytes))
        .add_service(TraceBatchServiceServer::new(g).max_decoding_message_size(max_message_bytes))
        .serve_with_incoming_shutdown(incoming, shutdown);
    Ok((addr, fut))
}
