//! The one writer: jobs from every input go through a bounded queue into the
//! history store, many jobs per transaction (group commit); each job is
//! acknowledged only after its commit. A full queue is back-pressure for the
//! caller, never a drop. Windows touched by new traces are recomputed on a
//! timer, not per batch, so a busy window is not rescored a thousand times.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::mpsc;

use tokio::sync::oneshot;

use super::metrics::Metrics;
use crate::ingest::{insert_bodies, recompute_windows, IngestOptions, TraceBody};
use crate::store::{merge_touched, IngestReport, Store, Touched};

/// Which input a job came from (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputKind {
    Http,
    Grpc,
    Redis,
    Files,
    /// OTLP/HTTP (`--otlp-http`).
    OtlpHttp,
    /// OTLP/gRPC (`--otlp-grpc`).
    OtlpGrpc,
}

impl InputKind {
    /// Every input, in the order metrics list them.
    pub const ALL: [InputKind; 6] = [
        InputKind::Http,
        InputKind::Grpc,
        InputKind::Redis,
        InputKind::Files,
        InputKind::OtlpHttp,
        InputKind::OtlpGrpc,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Http => "http",
            InputKind::Grpc => "grpc",
            InputKind::Redis => "redis",
            InputKind::Files => "files",
            InputKind::OtlpHttp => "otlp_http",
            InputKind::OtlpGrpc => "otlp_grpc",
        }
    }
}

/// A batch of traces (JSON array, `{"traces": …}` or JSON Lines) to store.
pub struct Job {
    pub input: InputKind,
    pub service: String,
    /// For error messages: where it came from.
    pub name: String,
    pub body: Vec<u8>,
    pub ack: oneshot::Sender<Result<IngestReport, JobError>>,
}

/// Why a job was not stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    /// The batch is not readable traces: refuse it (HTTP 400), set it aside.
    #[error("{0}")]
    Invalid(String),
    /// The batch decompresses past the limit (HTTP 413).
    #[error("{0}")]
    TooLarge(String),
    /// The store failed (disk full, I/O): the batch is fine, retry later (HTTP 503).
    #[error("the history store failed: {0}")]
    Store(String),
}

impl JobError {
    /// The refusal's reason, for the metrics.
    pub fn reason(&self) -> super::metrics::Reason {
        match self {
            JobError::Invalid(_) => super::metrics::Reason::Malformed,
            JobError::TooLarge(_) => super::metrics::Reason::TooLarge,
            JobError::Store(_) => super::metrics::Reason::StoreFailed,
        }
    }
}

/// Sends jobs; cloned by every input.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::SyncSender<Job>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

/// Why a job was not taken.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the store is behind: queue full ({0} batches waiting); retry with backoff")]
    Full(usize),
    #[error("the server is shutting down")]
    Closed,
}

impl Queue {
    /// One attempt; a refused job comes back so it can be offered again.
    fn try_offer(&self, job: Job) -> Result<(), (Refused, Option<Job>)> {
        match self.tx.try_send(job) {
            Ok(()) => {
                self.metrics.queue_depth.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::TrySendError::Full(j)) => Err((Refused::Full(self.capacity), Some(j))),
            Err(mpsc::TrySendError::Disconnected(_)) => Err((Refused::Closed, None)),
        }
    }

    /// Queues a job, waiting up to `patience` for room: a burst of
    /// fire-and-forget clients (pypss's GRPCCollector ignores errors) should
    /// be slowed, not refused; a store that stays behind is back-pressure.
    pub async fn offer_within(&self, mut job: Job, patience: Duration) -> Result<(), Refused> {
        let deadline = Instant::now() + patience;
        let mut nap = Duration::from_millis(1);
        loop {
            match self.try_offer(job) {
                Err((Refused::Full(_), Some(j))) if Instant::now() < deadline => {
                    job = j;
                    tokio::time::sleep(nap).await;
                    nap = (nap * 2).min(Duration::from_millis(50));
                }
                other => return other.map_err(|(refused, _)| refused),
            }
        }
    }

    /// Queues a job, waiting for room (inputs that pull, like Redis and files).
    pub fn put(&self, job: Job) -> Result<(), Refused> {
        self.metrics.queue_depth.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.tx.send(job).map_err(|_| {
            self.metrics.queue_depth.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            Refused::Closed
        })
    }
}

/// Writer settings.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub capacity: usize,
    /// At most this many jobs per transaction.
    pub max_jobs_per_commit: usize,
    /// How often touched windows are recomputed.
    pub recompute_every: Duration,
    /// A gzip body may inflate to at most this many bytes.
    pub max_inflated_bytes: u64,
    pub ingest: IngestOptions,
}

/// Starts the writer thread; it ends when every `Queue` is dropped and the
/// queue is drained (then recomputes the last windows).
pub fn start(
    mut store: Box<dyn Store + Send>,
    cfg: WriterConfig,
    metrics: Arc<Metrics>,
    mut alerting: Option<super::alerting::Evaluator>,
) -> (Queue, std::thread::JoinHandle<Result<(), String>>) {
    let (tx, rx) = mpsc::sync_channel::<Job>(cfg.capacity.max(1));
    let queue = Queue { tx, capacity: cfg.capacity.max(1), metrics: metrics.clone() };
    let handle = std::thread::Builder::new()
        .name("pss-writer".into())
        .spawn(move || {
            let mut dirty: Vec<Touched> = Vec::new();
            let mut last_recompute = Instant::now();
            let flush_windows = |dirty: &mut Vec<Touched>, store: &mut dyn Store| {
                for t in dirty.drain(..) {
                    let opts = IngestOptions { service: t.service, ..cfg.ingest.clone() };
                    match recompute_windows(store, t.range, &opts) {
                        Ok(n) => metrics.windows_recomputed.fetch_add(n, std::sync::atomic::Ordering::Relaxed),
                        Err(e) => return Err(e.to_string()),
                    };
                }
                metrics.refresh_scores(&*store, cfg.ingest.window_seconds).map_err(|e| e.to_string())?;
                Ok(())
            };
            // Windows close as time passes too: evaluated on every tick.
            let mut evaluate = |store: &mut dyn Store| -> Result<(), String> {
                match alerting.as_mut() {
                    Some(a) => a.evaluate(store, &metrics).map_err(|e| e.to_string()),
                    None => Ok(()),
                }
            };
            loop {
                let first = match rx.recv_timeout(cfg.recompute_every) {
                    Ok(j) => j,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if !dirty.is_empty() {
                            flush_windows(&mut dirty, &mut *store)?;
                            last_recompute = Instant::now();
                        }
                        evaluate(&mut *store)?;
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                };
                let mut jobs = vec![first];
                while jobs.len() < cfg.max_jobs_per_commit {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                metrics.queue_depth.fetch_sub(jobs.len() as u64, std::sync::atomic::Ordering::Relaxed);
                commit(&mut *store, jobs, &cfg, &metrics, &mut dirty);
                if last_recompute.elapsed() >= cfg.recompute_every && !dirty.is_empty() {
                    flush_windows(&mut dirty, &mut *store)?;
                    evaluate(&mut *store)?;
                    last_recompute = Instant::now();
                }
            }
            flush_windows(&mut dirty, &mut *store)?;
            evaluate(&mut *store)
        })
        .expect("spawn writer thread");
    (queue, handle)
}

/// Commits jobs together; when that fails (one bad batch), each alone, so a
/// bad batch is refused without taking the others with it.
fn commit(store: &mut dyn Store, jobs: Vec<Job>, cfg: &WriterConfig, metrics: &Metrics, dirty: &mut Vec<Touched>) {
    let t0 = Instant::now();
    let bodies: Vec<TraceBody<'_>> = jobs
        .iter()
        .map(|j| TraceBody { service: j.service.as_str(), name: j.name.as_str(), bytes: j.body.as_slice() })
        .collect();
    match insert_bodies(store, &bodies, &cfg.ingest.unknown_module, cfg.max_inflated_bytes) {
        Ok(done) => {
            metrics.observe_commit(t0.elapsed());
            for t in done.touched {
                merge_touched(dirty, &t.service, t.range);
            }
            let reports = done.reports;
            for (job, report) in jobs.into_iter().zip(reports) {
                metrics.accepted(job.input, &report);
                let _ = job.ack.send(Ok(report));
            }
        }
        Err(_) if jobs.len() > 1 => {
            for job in jobs {
                commit(store, vec![job], cfg, metrics, dirty);
            }
        }
        Err(e) => {
            // Each input counts its own refusals (one that retries line by
            // line counts only the lines it finally refuses).
            use crate::store::StoreError;
            let err = match &e {
                StoreError::Read(crate::trace::ReadError::TooLarge { .. }) => JobError::TooLarge(e.to_string()),
                StoreError::Read(_) | StoreError::Invalid(_) => JobError::Invalid(e.to_string()),
                _ => JobError::Store(e.to_string()),
            };
            for job in jobs {
                let _ = job.ack.send(Err(err.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_is_refused_not_dropped() {
        let (tx, rx) = mpsc::sync_channel::<Job>(1);
        let q = Queue { tx, capacity: 1, metrics: Arc::new(Metrics::default()) };
        let job = || Job {
            input: InputKind::Http,
            service: "s".into(),
            name: "t".into(),
            body: b"[]".to_vec(),
            ack: oneshot::channel().0,
        };
        let offer = |j| q.try_offer(j).map_err(|(refused, _)| refused);
        assert!(offer(job()).is_ok());
        assert!(matches!(offer(job()), Err(Refused::Full(1))));
        assert_eq!(q.metrics.queue_depth.load(std::sync::atomic::Ordering::Relaxed), 1);
        drop(rx);
        assert!(matches!(offer(job()), Err(Refused::Closed)));
    }
}
