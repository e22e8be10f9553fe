//! `pss serve`: a collection service real pypss clients send to. Each input
//! (gRPC, HTTP, Redis, files) is a module with a config struct and a
//! `build`/`run`, feeding one bounded queue to one writer that commits to the
//! history store before anything is acknowledged.

pub mod follow;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod redis_input;
pub mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::store::SqliteStore;

/// Everything `pss serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub history: PathBuf,
    pub grpc: Option<SocketAddr>,
    pub http: Option<http::HttpConfig>,
    pub redis: Option<redis_input::RedisConfig>,
    pub follow: Option<follow::FollowConfig>,
    pub service: String,
    pub token: Option<String>,
    pub writer: writer::WriterConfig,
    pub max_message_bytes: usize,
    /// How long a gRPC or HTTP request waits for room in the queue.
    pub patience: Duration,
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Input(String),
}

/// Where the inputs listen (the ports when 0 was asked for).
#[derive(Debug, Clone, Default)]
pub struct Bound {
    pub grpc: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
}

/// Runs until SIGTERM or SIGINT (or `shutdown` resolves), then stops the
/// inputs, drains the queue, recomputes the last windows and returns.
/// `on_bound` is called once every listener is up.
pub fn run(
    cfg: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(&Bound),
) -> Result<Arc<metrics::Metrics>, ServeError> {
    let store = SqliteStore::open(&cfg.history)?;
    let metrics = Arc::new(metrics::Metrics::default());
    let (queue, writer) = writer::start(store, cfg.writer.clone(), metrics.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServeError::Input(format!("tokio runtime: {e}")))?;
    let stop = Arc::new(AtomicBool::new(false));
    let token = cfg.token.clone().map(Arc::new);
    let service = Arc::new(cfg.service.clone());
    let mut threads = Vec::new();
    if let Some(r) = cfg.redis.clone() {
        let (q, m, s) = (queue.clone(), metrics.clone(), stop.clone());
        threads.push(std::thread::spawn(move || redis_input::run(r, q, m, s).map_err(|e| e.to_string())));
    }
    if let Some(f) = cfg.follow.clone() {
        let (q, m, s, db) = (queue.clone(), metrics.clone(), stop.clone(), cfg.history.clone());
        threads.push(std::thread::spawn(move || follow::run(f, &db, q, m, s).map_err(|e| e.to_string())));
    }
    let result: Result<(), ServeError> = rt.block_on(async {
        let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
        let signal = |tx: &tokio::sync::broadcast::Sender<()>| {
            let mut rx = tx.subscribe();
            async move {
                let _ = rx.recv().await;
            }
        };
        let mut bound = Bound::default();
        let mut tasks = Vec::new();
        if let Some(addr) = cfg.grpc {
            let gc =
                grpc::GrpcConfig { address: addr, max_message_bytes: cfg.max_message_bytes, patience: cfg.patience };
            let (a, fut) = grpc::build(gc, queue.clone(), metrics.clone(), token.clone(), service.clone(), signal(&tx))
                .await
                .map_err(|e| ServeError::Bind { what: "--grpc", addr: addr.to_string(), source: e })?;
            bound.grpc = Some(a);
            tasks.push(tokio::spawn(async move { fut.await.map_err(|e| e.to_string()) }));
        }
        if let Some(h) = cfg.http.clone() {
            let addr = h.address;
            let (a, fut) = http::build(h, queue.clone(), metrics.clone(), token.clone(), service.clone(), signal(&tx))
                .await
                .map_err(|e| ServeError::Bind { what: "--http", addr: addr.to_string(), source: e })?;
            bound.http = Some(a);
            tasks.push(tokio::spawn(async move { fut.await.map_err(|e| e.to_string()) }));
        }
        on_bound(&bound);
        let term = async {
            #[cfg(unix)]
            {
                let mut t = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .map_err(|e| ServeError::Input(e.to_string()))?;
                tokio::select! {
                    _ = t.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                    _ = shutdown => {}
                }
            }
            Ok::<(), ServeError>(())
        };
        term.await?;
        let _ = tx.send(());
        // Graceful: in-flight requests finish; idle keep-alive connections
        // are not waited for beyond the grace period.
        let grace = tokio::time::Instant::now() + Duration::from_secs(5);
        for t in tasks {
            let abort = t.abort_handle();
            match tokio::time::timeout_at(grace, t).await {
                Ok(Ok(Err(e))) => return Err(ServeError::Input(e)),
                Ok(_) => {}
                Err(_) => abort.abort(),
            }
        }
        Ok(())
    });
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for t in threads {
        match t.join() {
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("an input thread panicked".into()),
            _ => {}
        }
    }
    drop(queue);
    rt.shutdown_timeout(Duration::from_secs(5));
    match writer.join() {
        Ok(Err(e)) => errors.push(e),
        Err(_) => errors.push("the writer thread panicked".into()),
        _ => {}
    }
    result?;
    if !errors.is_empty() {
        return Err(ServeError::Input(errors.join("; ")));
    }
    Ok(metrics)
}
