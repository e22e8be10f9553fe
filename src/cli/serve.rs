//! `pss serve`: the collection service.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{CmdResult, Failure};
use crate::config::Config;
use crate::ingest::IngestOptions;
use crate::serve::otlp::{grpc::OtlpGrpcConfig, http::OtlpHttpConfig, SpanMapping};
use crate::serve::{
    follow::FollowConfig, grpc::GrpcConfig, http::HttpConfig, redis_input::RedisConfig, run, ServeConfig,
};

#[derive(Args, Debug)]
#[command(after_help = "Each input is off unless its flag is given (at least one). Every accepted trace is \
committed to the history database before it is acknowledged (gRPC/HTTP response, Redis removal, file position). \
When the store falls behind, HTTP answers 429 and gRPC RESOURCE_EXHAUSTED; nothing is dropped silently.\n\n\
Service name: HTTP header X-PSS-Service or ?service=, gRPC metadata x-pss-service (or the batch's field), \
else --service.\n\nEndpoints: gRPC pypss.TraceService/SubmitTrace (pypss's GRPCCollector) and \
pss.TraceBatchService/SubmitBatch; HTTP POST /v1/traces (JSON array or JSON Lines), GET /healthz, GET /metrics; \
OTLP/HTTP POST /v1/traces (protobuf or JSON) and OTLP/gRPC TraceService/Export, spans mapped to traces as the README's \
OpenTelemetry section says (service from the resource's service.name).\n\n\
SIGTERM or Ctrl-C: stop accepting, commit what is queued, recompute the last windows, exit 0.\n\n\
Example:\n  pss serve --history /var/lib/pss/history.db --grpc 127.0.0.1:50051 --http 127.0.0.1:8080 \\\n    \
--redis redis://127.0.0.1:6379/0 --follow 'logs/*.jsonl' --service checkout")]
pub struct ServeArgs {
    /// History database (created if missing).
    #[arg(long, value_name = "DB")]
    pub history: PathBuf,
    /// gRPC address (pypss's protocol plus a batch RPC).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:50051")]
    pub grpc: Option<SocketAddr>,
    /// HTTP address.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8080")]
    pub http: Option<SocketAddr>,
    /// OTLP/HTTP address (POST /v1/traces, protobuf or JSON): any
    /// OpenTelemetry SDK or Collector exports here.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:4318")]
    pub otlp_http: Option<SocketAddr>,
    /// OTLP/gRPC address (TraceService/Export).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:4317")]
    pub otlp_grpc: Option<SocketAddr>,
    /// Span attribute that carries pypss's branch_tag.
    #[arg(long, default_value = "pss.branch_tag", value_name = "ATTR")]
    pub otlp_branch_attribute: String,
    /// Span attribute with the span's CPU time, seconds (absent: the field is absent).
    #[arg(long, default_value = "pss.cpu_time", value_name = "ATTR")]
    pub otlp_cpu_attribute: String,
    /// Span attribute with the span's wait time, seconds (Concurrency Chaos).
    #[arg(long, default_value = "pss.wait_time", value_name = "ATTR")]
    pub otlp_wait_attribute: String,
    /// Span attribute with the memory reading (Memory Stability), in the unit pypss records.
    #[arg(long, default_value = "pss.memory", value_name = "ATTR")]
    pub otlp_memory_attribute: String,
    /// Consume pypss's RedisCollector list at this URL.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    #[arg(long, default_value = "pypss:traces", value_name = "KEY")]
    pub redis_key: String,
    /// Follow JSON Lines files (a path or a glob) written by FileFIFOCollector.
    #[arg(long, value_name = "GLOB")]
    pub follow: Option<String>,
    /// Service name for traces whose request names none.
    #[arg(long, default_value = "default")]
    pub service: String,
    /// A file holding a bearer token HTTP and gRPC clients must send.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Window length for the windows kept up to date (default: config `window`,
    /// else the one length the history holds, else 60s).
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,
    /// How often touched windows and the live scores on /metrics are recomputed.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub refresh: String,
    /// How long a gRPC or HTTP request may wait for room in the queue before
    /// it gets back-pressure (429 / RESOURCE_EXHAUSTED).
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub patience: String,
    /// Batches that may wait for the store before clients get back-pressure.
    #[arg(long, default_value_t = 256)]
    pub queue: usize,
    /// Largest HTTP body or gRPC message, MiB.
    #[arg(long, default_value_t = 64)]
    pub max_body_mib: usize,
    /// A gzip body or line may inflate to at most this, MiB (a gzip bomb is refused with 413).
    #[arg(long, default_value_t = 256)]
    pub max_inflated_mib: usize,
    /// Request bodies held in memory at once over all HTTP connections, MiB
    /// (at least one largest body); past it, 429.
    #[arg(long, default_value_t = 256)]
    pub body_budget_mib: usize,
    /// Open HTTP connections and, separately, gRPC connections at most; more are refused and counted.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// HTTP request headers must arrive within this; also closes idle keep-alive connections.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub header_timeout: String,
    /// An HTTP request body must arrive within this (408 otherwise).
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub request_timeout: String,
    /// A gRPC connection on which nothing arrives for this long is closed
    /// (clients reconnect), so idle connections cannot hold the limit.
    #[arg(long, default_value = "300s", value_name = "DURATION")]
    pub grpc_idle_timeout: String,
    /// Traces in one gRPC batch at most (RESOURCE_EXHAUSTED past it).
    #[arg(long, default_value_t = 100_000)]
    pub max_batch_traces: usize,
    /// Configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve the dashboard (pss board's pages and API) on the HTTP address too;
    /// it shows the history live (with --token-file, the API wants the token).
    #[arg(long, requires = "http")]
    pub board: bool,
    /// Alarm policy for live alerting (with alerts_enabled; default: the
    /// promoted models/<service|all>/pss-tuned.toml, else the configuration).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// A window is evaluated for alarms once its end is this far behind the
    /// clock (or a later window of its service exists).
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub alarm_grace: String,
}

/// Runs `pss serve` until SIGTERM.
pub fn run_serve(a: ServeArgs) -> CmdResult {
    if a.grpc.is_none()
        && a.http.is_none()
        && a.redis.is_none()
        && a.follow.is_none()
        && a.otlp_http.is_none()
        && a.otlp_grpc.is_none()
    {
        return Err(Failure::input(
            "give at least one input: --grpc, --http, --redis, --follow, --otlp-http or --otlp-grpc",
        ));
    }
    let cfg = Config::discover(a.config.as_deref())?;
    let sc = serve_config(&a, &cfg)?;
    let alerting_line = sc.alerting.as_ref().map(alerting_banner);
    let metrics = run(sc, std::future::pending(), |b| {
        let mut out = std::io::stdout().lock();
        if let Some(l) = &alerting_line {
            let _ = writeln!(out, "{l}");
        }
        if let Some(g) = b.grpc {
            let _ = writeln!(out, "pss serve: gRPC on {g}");
        }
        if let Some(h) = b.http {
            let _ = writeln!(out, "pss serve: HTTP on http://{h} (POST /v1/traces, GET /metrics, GET /healthz)");
            if a.board {
                let _ = writeln!(out, "pss serve: board on http://{h}/");
            }
        }
        if let Some(h) = b.otlp_http {
            let _ = writeln!(out, "pss serve: OTLP/HTTP on http://{h}/v1/traces");
        }
        if let Some(g) = b.otlp_grpc {
            let _ = writeln!(out, "pss serve: OTLP/gRPC on {g}");
        }
        if let Some(r) = &a.redis {
            let _ = writeln!(out, "pss serve: Redis list {} at {r}", a.redis_key);
        }
        if let Some(f) = &a.follow {
            let _ = writeln!(out, "pss serve: following {f}");
        }
        let _ = writeln!(out, "pss serve: ready, writing to {}", a.history.display());
        let _ = out.flush();
    })
    .map_err(|e| Failure::input(e.to_string()))?;
    use crate::serve::writer::InputKind;
    let total: u64 = InputKind::ALL.iter().map(|i| metrics.accepted_total(*i)).sum();
    super::print(&format!("pss serve: stopped; {total} traces stored this run\n"))
}

/// Live alerting, when the configuration enables it.
fn alerting(a: &ServeArgs, cfg: &Config) -> Result<Option<crate::serve::alerting::Alerting>, Failure> {
    let alerts = crate::alert::AlertConfig::from_config(cfg).map_err(|e| Failure::input(e.to_string()))?;
    if !alerts.enabled {
        return Ok(None);
    }
    if !alerts.has_channels() {
        super::warn("alerting is enabled but no channel is configured");
    }
    let (policy, policy_file) = super::alarms::policy_for(&a.policy, &a.service, cfg)?;
    let grace = Duration::from_secs_f64(super::duration_arg("alarm-grace", &a.alarm_grace, false)?);
    let notice: crate::serve::alerting::Notice = std::sync::Arc::new(|m: &str| println!("pss serve: {m}"));
    Ok(Some(crate::serve::alerting::Alerting { policy, policy_file, alerts, grace, notice: Some(notice) }))
}

/// The line saying where alerts go and under which policy.
fn alerting_banner(al: &crate::serve::alerting::Alerting) -> String {
    let channels: Vec<&str> = al.alerts.channels().iter().map(|c| c.name()).collect();
    format!("pss serve: alerting to {} with the alarm policy {}", channels.join(", "), al.policy.source)
}

/// The server's configuration from the flags and the configuration file.
fn serve_config(a: &ServeArgs, cfg: &Config) -> Result<ServeConfig, Failure> {
    // The length the history holds (every service), unless asked or configured.
    let window = if a.history.is_file() {
        super::read_window(&a.window, cfg, &*crate::store::open(&a.history)?, &[])?
    } else {
        super::window_arg(&a.window, cfg)?
    };
    let max = a.max_body_mib.max(1) * 1024 * 1024;
    let secs = |flag: &str, v: &str, positive: bool| -> Result<Duration, Failure> {
        Ok(Duration::from_secs_f64(super::duration_arg(flag, v, positive)?))
    };
    let patience = secs("patience", &a.patience, false)?;
    let grpc_idle = secs("grpc-idle-timeout", &a.grpc_idle_timeout, true)?;
    let header_timeout = secs("header-timeout", &a.header_timeout, true)?;
    let request_timeout = secs("request-timeout", &a.request_timeout, true)?;
    let token = super::token_from_file(&a.token_file)?;
    let board = a.board.then(|| crate::board::BoardState {
        history: std::sync::Arc::new(std::sync::RwLock::new(a.history.clone())),
        mode: "history",
        label: a.history.display().to_string(),
        cfg: std::sync::Arc::new(cfg.clone()),
        models: PathBuf::from("models"),
        policy_file: a.policy.clone(),
        token: token.clone().map(std::sync::Arc::new),
        generation: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
    });
    let grpc = |address| GrpcConfig {
        address,
        max_message_bytes: max,
        patience,
        max_connections: a.max_connections,
        max_batch_traces: a.max_batch_traces,
        idle_timeout: grpc_idle,
    };
    let http = |address, board| HttpConfig {
        address,
        max_body_bytes: max,
        patience,
        max_connections: a.max_connections,
        header_timeout,
        request_timeout,
        body_budget_bytes: a.body_budget_mib.max(1) << 20,
        board,
    };
    let mapping = SpanMapping {
        branch_tag: a.otlp_branch_attribute.clone(),
        cpu_time: a.otlp_cpu_attribute.clone(),
        wait_time: a.otlp_wait_attribute.clone(),
        memory: a.otlp_memory_attribute.clone(),
    };
    let max_inflated_bytes = (a.max_inflated_mib.max(1) as u64) << 20;
    Ok(ServeConfig {
        alerting: alerting(a, cfg)?,
        history: a.history.clone(),
        grpc: a.grpc.map(grpc),
        http: a.http.map(|address| http(address, board.clone())),
        otlp_http: a.otlp_http.map(|address| OtlpHttpConfig {
            http: http(address, None),
            max_inflated_bytes,
            mapping: mapping.clone(),
        }),
        otlp_grpc: a.otlp_grpc.map(|address| OtlpGrpcConfig { grpc: grpc(address), mapping: mapping.clone() }),
        redis: a.redis.clone().map(|url| RedisConfig {
            url,
            key: a.redis_key.clone(),
            batch: 1000,
            service: a.service.clone(),
        }),
        follow: a.follow.clone().map(|pattern| FollowConfig {
            pattern,
            service: a.service.clone(),
            chunk_bytes: 8 << 20,
        }),
        service: a.service.clone(),
        token,
        writer: crate::serve::writer::WriterConfig {
            capacity: a.queue,
            max_jobs_per_commit: 64,
            recompute_every: secs("refresh", &a.refresh, true)?,
            max_inflated_bytes,
            ingest: IngestOptions {
                service: a.service.clone(),
                window_seconds: window,
                min_window_traces: cfg.min_window_traces,
                params: cfg.score.clone(),
                unknown_module: cfg.unknown_module.clone(),
                custom: super::custom_metrics(cfg),
            },
        },
    })
}
