//! `pss serve`: a collection service real pypss clients send to. Each input
//! (gRPC, HTTP, Redis, files, OTLP/HTTP, OTLP/gRPC) is a module with a serde config that builds a
//! running component from one shared context ([`input::Input`]), feeding one
//! bounded queue to one writer that commits to the history store before
//! anything is acknowledged.

pub mod alerting;
pub(crate) mod follow;
pub mod grpc;
pub(crate) mod http;
pub(crate) mod input;
pub(crate) mod metrics;
pub mod otlp;
pub(crate) mod redis_input;
pub(crate) mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use input::{Input, InputContext, InputError};

/// Everything `pss serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub history: PathBuf,
    pub grpc: Option<grpc::GrpcConfig>,
    pub http: Option<http::HttpConfig>,
    pub redis: Option<redis_input::RedisConfig>,
    pub follow: Option<follow::FollowConfig>,
    pub otlp_http: Option<otlp::http::OtlpHttpConfig>,
    pub otlp_grpc: Option<otlp::grpc::OtlpGrpcConfig>,
    pub service: String,
    pub token: Option<String>,
    pub writer: writer::WriterConfig,
    /// Live alerting (when `alerts_enabled`).
    pub alerting: Option<alerting::Alerting>,
}

impl ServeConfig {
    /// The configured inputs.
    fn inputs(&self) -> Vec<Box<dyn Input>> {
        let mut v: Vec<Box<dyn Input>> = Vec::new();
        if let Some(c) = &self.grpc {
            v.push(Box::new(c.clone()));
        }
        if let Some(c) = &self.http {
            v.push(Box::new(c.clone()));
        }
        if let Some(c) = &self.redis {
            v.push(Box::new(c.clone()));
        }
        if let Some(c) = &self.follow {
            v.push(Box::new(c.clone()));
        }
        if let Some(c) = &self.otlp_http {
            v.push(Box::new(c.clone()));
        }
        if let Some(c) = &self.otlp_grpc {
            v.push(Box::new(c.clone()));
        }
        v
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("signal handler: {0}")]
    Signal(#[source] std::io::Error),
    #[error("the writer: {0}")]
    Writer(String),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Several(Vec<ServeError>),
}

/// Where the inputs listen (the ports when 0 was asked for).
#[derive(Debug, Clone, Default)]
pub struct Bound {
    pub grpc: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub otlp_http: Option<SocketAddr>,
    pub otlp_grpc: Option<SocketAddr>,
}

/// Waits for SIGTERM, Ctrl-C or `shutdown`.
async fn terminated(shutdown: impl std::future::Future<Output = ()>) -> Result<(), ServeError> {
    let mut t =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(ServeError::Signal)?;
    tokio::select! {
        _ = t.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = shutdown => {}
    }
    Ok(())
}

/// Runs until SIGTERM or SIGINT (or `shutdown` resolves), then stops the
/// inputs, drains the queue, recomputes the last windows and returns.
/// `on_bound` is called once every input is up.
pub fn run(
    cfg: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(&Bound),
) -> Result<Arc<metrics::Metrics>, ServeError> {
    let store = crate::store::open(&cfg.history)?;
    let metrics = Arc::new(metrics::Metrics::default());
    let stop_sender = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (evaluator, sender) = match &cfg.alerting {
        Some(a) => {
            let (wake, woken) = std::sync::mpsc::channel();
            let sender = alerting::start_sender(
                cfg.history.clone(),
                a.alerts.clone(),
                metrics.clone(),
                woken,
                stop_sender.clone(),
            );
            let w = &cfg.writer.ingest;
            (Some(alerting::Evaluator::new(a, w.window_seconds, &w.unknown_module, wake)), Some(sender))
        }
        None => (None, None),
    };
    let (queue, writer) = writer::start(store, cfg.writer.clone(), metrics.clone(), evaluator);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let ctx = InputContext {
        queue: queue.clone(),
        metrics: metrics.clone(),
        token: cfg.token.clone().map(Arc::new),
        service: Arc::new(cfg.service.clone()),
        history: cfg.history.clone(),
        shutdown: stopped,
    };
    let mut errors: Vec<ServeError> = Vec::new();
    rt.block_on(async {
        let mut bound = Bound::default();
        let mut running = Vec::new();
        for i in cfg.inputs() {
            let name = i.name();
            let r = match i.build(ctx.clone()).await {
                Ok(r) => r,
                Err(e) => {
                    errors.push(e.into());
                    break;
                }
            };
            match name {
                "grpc" => bound.grpc = r.address,
                "http" => bound.http = r.address,
                "otlp_http" => bound.otlp_http = r.address,
                "otlp_grpc" => bound.otlp_grpc = r.address,
                _ => {}
            }
            running.push((name, r.graceful, tokio::spawn(r.task)));
        }
        if errors.is_empty() {
            on_bound(&bound);
            if let Err(e) = terminated(shutdown).await {
                errors.push(e);
            }
        }
        let _ = stop.send(true);
        // Graceful: in-flight requests finish; idle keep-alive connections
        // are not waited for beyond the grace period. Blocking consumers
        // finish the batch in hand.
        let grace = tokio::time::Instant::now() + Duration::from_secs(5);
        for (name, graceful, t) in running {
            let abort = t.abort_handle();
            let done = if graceful { tokio::time::timeout_at(grace, t).await.ok() } else { Some(t.await) };
            match done {
                Some(Ok(Err(e))) => errors.push(e.into()),
                Some(Err(_)) => errors.push(InputError::Panicked(name).into()),
                Some(Ok(Ok(()))) => {}
                None => abort.abort(),
            }
        }
    });
    drop(ctx);
    drop(queue);
    rt.shutdown_timeout(Duration::from_secs(5));
    match writer.join() {
        Ok(Err(e)) => errors.push(ServeError::Writer(e)),
        Err(_) => errors.push(ServeError::Writer("the writer thread panicked".into())),
        _ => {}
    }
    // The sender makes one last pass; what it cannot deliver stays in the outbox.
    stop_sender.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(s) = sender {
        match s.join() {
            Ok(Err(e)) => errors.push(ServeError::Writer(format!("alert sender: {e}"))),
            Err(_) => errors.push(ServeError::Writer("the alert sender panicked".into())),
            _ => {}
        }
    }
    match errors.len() {
        0 => Ok(metrics),
        1 => Err(errors.remove(0)),
        _ => Err(ServeError::Several(errors)),
    }
}
/// Why a token file is readable by others than its owner, if it is (the
/// server warns: anyone who can read it can send traces).
pub fn token_file_exposure(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{}: the token file is readable by group or others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_others_can_read_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "t").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(token_file_exposure(&f).unwrap().contains("chmod 600"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(token_file_exposure(&f), None);
    }
}
