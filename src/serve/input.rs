//! The shape every input of `pss serve` takes (vector's sources): a serde
//! config that `build`s a running component from one shared context — the
//! queue to the store, the metrics, the bearer token, the default service
//! and the shutdown signal. gRPC and HTTP are async servers; Redis and
//! files are blocking consumers on their own threads that wait on events
//! (BLMOVE, inotify), not sleeps.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use super::follow::{FollowConfig, FollowError};
use super::grpc::GrpcConfig;
use super::http::HttpConfig;
use super::metrics::Metrics;
use super::redis_input::{RedisConfig, RedisInputError};
use super::writer::Queue;

/// A boxed future, as the trait returns them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What every input is built from.
#[derive(Clone)]
pub struct InputContext {
    pub queue: Queue,
    pub metrics: Arc<Metrics>,
    /// The bearer token network clients must send.
    pub token: Option<Arc<String>>,
    /// Service name for traces whose request names none.
    pub service: Arc<String>,
    /// The history database (the file input keeps its read positions there).
    pub history: PathBuf,
    pub(crate) shutdown: tokio::sync::watch::Receiver<bool>,
}

impl InputContext {
    /// Resolves when the server stops.
    pub fn shutdown(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// True once the server stops (for blocking inputs between waits).
    pub fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// Why an input could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("--{input} {address}: {source}")]
    Bind {
        input: &'static str,
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("HTTP: {0}")]
    Http(#[source] std::io::Error),
    #[error(transparent)]
    Redis(#[from] RedisInputError),
    #[error(transparent)]
    Follow(#[from] FollowError),
    #[error("the {0} input panicked")]
    Panicked(&'static str),
}

/// A built input.
pub struct Running {
    /// Where a network input listens (the port when 0 was asked for).
    pub address: Option<SocketAddr>,
    /// Runs until the shutdown signal, then finishes what is in hand.
    pub task: BoxFuture<Result<(), InputError>>,
    /// A network server: idle keep-alive connections are not waited for
    /// beyond the grace period. Blocking consumers finish their batch.
    pub graceful: bool,
}

/// One input of `pss serve`.
pub trait Input: Send {
    /// The name in messages and metrics (`grpc`, `http`, `redis`, `files`).
    fn name(&self) -> &'static str;
    /// Binds or connects, and returns the running input.
    fn build(self: Box<Self>, ctx: InputContext) -> BoxFuture<Result<Running, InputError>>;
}

/// A network server that bound `address` (or failed to), serving until the
/// shutdown signal.
fn listening<F>(
    input: &'static str,
    address: SocketAddr,
    bound: std::io::Result<(SocketAddr, F)>,
) -> Result<Running, InputError>
where
    F: Future<Output = Result<(), InputError>> + Send + 'static,
{
    let (addr, serve) = bound.map_err(|source| InputError::Bind { input, address: address.to_string(), source })?;
    Ok(Running { address: Some(addr), task: Box::pin(serve), graceful: true })
}

impl Input for GrpcConfig {
    fn name(&self) -> &'static str {
        "grpc"
    }
    fn build(self: Box<Self>, ctx: InputContext) -> BoxFuture<Result<Running, InputError>> {
        Box::pin(async move {
            let (address, shutdown) = (self.address, ctx.shutdown());
            let bound = super::grpc::build(*self, ctx, shutdown).await;
            listening("grpc", address, bound.map(|(a, f)| (a, async move { Ok(f.await?) })))
        })
    }
}

impl Input for HttpConfig {
    fn name(&self) -> &'static str {
        "http"
    }
    fn build(self: Box<Self>, ctx: InputContext) -> BoxFuture<Result<Running, InputError>> {
        Box::pin(async move {
            let (address, shutdown) = (self.address, ctx.shutdown());
            let bound = super::http::build(*self, ctx, shutdown).await;
            listening("http", address, bound.map(|(a, f)| (a, async move { f.await.map_err(InputError::Http) })))
        })
    }
}

impl Input for super::otlp::http::OtlpHttpConfig {
    fn name(&self) -> &'static str {
        "otlp_http"
    }
    fn build(self: Box<Self>, ctx: InputContext) -> BoxFuture<Result<Running, InputError>> {
        Box::pin(async move {
            let (address, shutdown) = (self.http.address, ctx.shutdown());
            let bound = super::otlp::http::build(*self, ctx, shutdown).await;
            listening("otlp-http", address, bound.map(|(a, f)| (a, async move { f.await.map_err(InputError::Http) })))
        })
    }
}

impl Input for super::otlp::grpc::OtlpGrpcConfig {
    fn name(&self) -> &'static str {
        "otlp_grpc"
    }
    fn build(self: Box<Self>, ctx: InputContext) -> BoxFuture<Result<Running, InputError>> {
        Box::pin(async move {
            let (address, shutdown) = (self.grpc.address, ctx.shutdown());
            let bound = super::otlp::grpc::build(*self, ctx, shutdown).await;
            listening("otlp-grpc", address, bound.map(|(a, f)| (a, async move { Ok(f.await?) })))
        })
    }
}

/// Runs a blocking consumer on a thread of its own.
fn blocking(name: &'static str, work: impl FnOnce() -> Result<(), InputError> + Send + 'static) -> Running {
    let handle = tokio::task::spawn_blocking(work);
    let task: BoxFuture<Result<(), InputError>> =
        Box::pin(async move { handle.await.map_err(|_| InputError::Panicked(name))? });
    Running { address: None, task, graceful: false }
}

impl Input for RedisConfig {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn build(self: Box<Self>, ctx: InputContext) -> BoxFuture<Result<Running, InputError>> {
        Box::pin(async move { Ok(blocking("redis", move || Ok(super::redis_input::run(*self, &ctx)?))) })
    }
}

impl Input for FollowConfig {
    fn name(&self) -> &'static str {
        "files"
    }
    fn build(self: Box<Self>, ctx: InputContext) -> BoxFuture<Result<Running, InputError>> {
        Box::pin(async move { Ok(blocking("files", move || Ok(super::follow::run(*self, &ctx)?))) })
    }
}
