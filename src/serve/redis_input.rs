//! Redis input: consumes pypss's `RedisCollector` list (one JSON trace per
//! element) at least once. The first element of a batch is awaited with a
//! blocking BLMOVE (no polling), the rest moved atomically to
//! `<key>:processing` (a Lua script: LRANGE + LTRIM + RPUSH), stored, and
//! removed from there only after the commit; on start, whatever a killed
//! server left in the processing list is stored first (duplicates are
//! ignored by trace_id or content, so redelivery is harmless). An element
//! that is not a trace goes to `<key>:rejected`, counted, never lost.

use std::time::Duration;

use tokio::sync::oneshot;

use super::metrics::{Metrics, Reason};
use super::writer::{InputKind, Job, JobError, Queue};

/// The Redis input's configuration.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RedisConfig {
    pub url: String,
    pub key: String,
    pub batch: usize,
    pub service: String,
}

/// How long one BLMOVE waits for an element: the most a stop waits.
const BLOCK_SECONDS: f64 = 1.0;

const MOVE: &str = "local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1) \
if #items > 0 then redis.call('LTRIM', KEYS[1], #items, -1) redis.call('RPUSH', KEYS[2], unpack(items)) end \
return items";

/// Why the Redis input stopped.
#[derive(Debug, thiserror::Error)]
pub enum RedisInputError {
    #[error("redis {url}: {source}")]
    Redis {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("the store stopped")]
    Closed,
    #[error("{0} (the batch stays in the processing list)")]
    Store(String),
}

/// Stores a batch of elements; bad elements go to the dead-letter list.
fn store(
    items: &[Vec<u8>],
    cfg: &RedisConfig,
    queue: &Queue,
    metrics: &Metrics,
    con: &mut redis::Connection,
) -> Result<(), RedisInputError> {
    let rerr = |e| RedisInputError::Redis { url: cfg.url.clone(), source: e };
    // Ok(true) stored, Ok(false) not traces; a store failure stops the input
    // with the batch still in the processing list (stored on the next start).
    let submit = |body: Vec<u8>| -> Result<bool, RedisInputError> {
        let (tx, rx) = oneshot::channel();
        let job = Job {
            input: InputKind::Redis,
            service: cfg.service.clone(),
            name: format!("redis {}", cfg.key),
            body,
            ack: tx,
        };
        queue.put(job).map_err(|_| RedisInputError::Closed)?;
        match rx.blocking_recv() {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(JobError::Invalid(_) | JobError::TooLarge(_))) => Ok(false),
            Ok(Err(JobError::Store(e))) => Err(RedisInputError::Store(e)),
            Err(_) => Err(RedisInputError::Closed),
        }
    };
    let joined: Vec<u8> = items.iter().flat_map(|i| i.iter().copied().chain(std::iter::once(b'\n'))).collect();
    if !submit(joined)? {
        // One bad element: store the rest one by one, set the bad ones aside.
        for it in items {
            if !submit(it.clone())? {
                metrics.rejected(InputKind::Redis, Reason::Malformed, 1);
                redis::cmd("RPUSH").arg(format!("{}:rejected", cfg.key)).arg(it).query::<()>(con).map_err(rerr)?;
            }
        }
    }
    Ok(())
}

/// Runs until the server stops; then finishes the batch in hand.
pub fn run(cfg: RedisConfig, ctx: &super::input::InputContext) -> Result<(), RedisInputError> {
    let (queue, metrics) = (&ctx.queue, &*ctx.metrics);
    let rerr = |e| RedisInputError::Redis { url: cfg.url.clone(), source: e };
    let client = redis::Client::open(cfg.url.as_str()).map_err(rerr)?;
    let mut con = client.get_connection_with_timeout(Duration::from_secs(5)).map_err(rerr)?;
    let processing = format!("{}:processing", cfg.key);
    // Left over from a server that died mid-batch.
    let left: Vec<Vec<u8>> = redis::cmd("LRANGE").arg(&processing).arg(0).arg(-1).query(&mut con).map_err(rerr)?;
    if !left.is_empty() {
        store(&left, &cfg, queue, metrics, &mut con)?;
        redis::cmd("DEL").arg(&processing).query::<()>(&mut con).map_err(rerr)?;
    }
    let script = redis::Script::new(MOVE);
    while !ctx.stopping() {
        // Wait for the first element without polling: BLMOVE blocks until
        // one arrives (or a second passes, to see `stop`) and moves it to the
        // processing list; the rest of a batch follows atomically.
        let first: Option<Vec<u8>> = redis::cmd("BLMOVE")
            .arg(&cfg.key)
            .arg(&processing)
            .arg("LEFT")
            .arg("RIGHT")
            .arg(BLOCK_SECONDS)
            .query(&mut con)
            .map_err(rerr)?;
        let Some(first) = first else { continue };
        let mut items = vec![first];
        if cfg.batch > 1 {
            let rest: Vec<Vec<u8>> =
                script.key(&cfg.key).key(&processing).arg(cfg.batch - 1).invoke(&mut con).map_err(rerr)?;
            items.extend(rest);
        }
        store(&items, &cfg, queue, metrics, &mut con)?;
        // Committed: now they may leave the processing list.
        redis::cmd("DEL").arg(&processing).query::<()>(&mut con).map_err(rerr)?;
    }
    Ok(())
}
