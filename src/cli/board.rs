//! `pss board`: the dashboard, served until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use clap::Args;

use super::{CmdResult, Failure};
use crate::board::{router, BoardState};
use crate::config::Config;

#[derive(Args, Debug)]
#[command(after_help = "Shows trace files (any shape pss analyze reads; each file is one service, named after \
the file, re-read when it changes) or a history database (live while pss serve writes it: the page redraws \
when new windows arrive). Tabs: Overview (PSS gauge, sub-scores, advisor, trend, modules worst first with a \
drill-down), Metrics (PSS and sub-scores over time), Diagnostics (error and branching-entropy heatmaps, time x \
module), Performance (latency percentiles, wait time), Alarms (the episodes the policy in force would have \
paged, the detector's score, the policy and its model card, notifications sent). Incidents are shaded on every \
time chart; drag across a chart to zoom every chart; the address holds service, range, window and tab.\n\n\
Everything is served by this binary (no CDN, no network). Binds 127.0.0.1 by default; with --token-file the API \
wants the token (the page asks for it once).\n\nExamples:\n  pss board traces.json\n  pss board --history \
/var/lib/pss/history.db --http 127.0.0.1:8080")]
pub struct BoardArgs {
    /// Trace files to show (one service each).
    #[arg(value_name = "TRACE_FILE", conflicts_with = "history")]
    pub files: Vec<PathBuf>,
    /// A history database instead (what pss ingest and pss serve write).
    #[arg(long, value_name = "DB")]
    pub history: Option<PathBuf>,
    /// Address to serve on (port 0: any free port, printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// A file holding a bearer token the API will want.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Alarm policy file (default: models/<service>/pss-tuned.toml, else models/all/, else the configuration).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Where tuned policies and window detectors are.
    #[arg(long, value_name = "DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// Configuration file (pss.toml / pypss.toml / pyproject.toml by default).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `pss board`.
pub fn run(a: BoardArgs) -> CmdResult {
    let cfg = Config::discover(a.config.as_deref())?;
    let token = super::token_from_file(&a.token_file)?;
    let (mode, label, path) = match (&a.history, a.files.is_empty()) {
        (Some(h), _) => {
            if !h.is_file() {
                return Err(Failure::input(format!("{}: no such history database", h.display())));
            }
            ("history", h.display().to_string(), h.clone())
        }
        (None, false) => {
            for f in &a.files {
                if !f.is_file() {
                    return Err(Failure::input(format!("{}: no such trace file", f.display())));
                }
            }
            let label = a.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ");
            ("files", label, PathBuf::new())
        }
        (None, true) => return Err(Failure::input("give trace files to show, or --history DB")),
    };
    let state = BoardState {
        history: Arc::new(RwLock::new(path)),
        mode,
        label,
        cfg: Arc::new(cfg.clone()),
        models: a.models_dir.clone(),
        policy_file: a.policy.clone(),
        token: token.map(Arc::new),
        generation: Arc::new(AtomicU64::new(0)),
    };
    // Trace files: a temporary history, kept current by a thread.
    let tmp = tempfile::Builder::new().prefix("pss-board-").tempdir().map_err(|e| Failure::output(e.to_string()))?;
    if mode == "files" {
        let started = std::time::Instant::now();
        let notice: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(|m: &str| eprintln!("pss board: {m}"));
        crate::board::files::start(
            a.files.clone(),
            tmp.path().to_path_buf(),
            cfg,
            &state,
            Duration::from_secs(1),
            notice,
        )
        .map_err(|e| Failure::input(e.to_string()))?;
        eprintln!("pss board: read {} file(s) in {:.2} s", a.files.len(), started.elapsed().as_secs_f64());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::output(e.to_string()))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.http)
            .await
            .map_err(|e| Failure::input(format!("cannot listen on {}: {e}", a.http)))?;
        let addr = listener.local_addr().map_err(|e| Failure::output(e.to_string()))?;
        super::print(&format!("pss board: http://{addr}/ ({})\n", state.label))?;
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| Failure::output(e.to_string()))
    })?;
    drop(tmp);
    Ok(())
}
