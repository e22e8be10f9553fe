//! File input: follows JSON Lines files written by pypss's
//! `FileFIFOCollector` (a path or a glob), from a read position persisted in
//! the history database, so a restart resumes where it stopped. A file that
//! shrinks was truncated (read again from 0); a file whose identity (device
//! and inode) changed was rotated (the new one is read from 0). Only complete
//! lines are read; the position advances after the commit (at least once;
//! duplicates are ignored by content).

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use tokio::sync::oneshot;

use super::metrics::Metrics;
use super::writer::{InputKind, Job, JobError, Queue};
use crate::store::{FollowOffset, Store};

/// The file input's configuration.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct FollowConfig {
    pub pattern: String,
    pub service: String,
    /// Most bytes read from a file per pass.
    pub chunk_bytes: usize,
}

/// Why the file input stopped.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("--follow '{0}': not a valid glob pattern: {1}")]
    Pattern(String, String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the store stopped")]
    Closed,
}

fn one_pass(
    path: &Path,
    cfg: &FollowConfig,
    queue: &Queue,
    metrics: &Metrics,
    offsets: &mut dyn Store,
) -> Result<bool, FollowError> {
    let Ok(mut f) = std::fs::File::open(path) else { return Ok(false) };
    let Ok(meta) = f.metadata() else { return Ok(false) };
    let identity = format!("{}:{}", meta.dev(), meta.ino());
    let key = path.display().to_string();
    let mut offset = match offsets.follow_offset(&key)? {
        Some(at) if at.identity == identity && at.offset <= meta.len() => at.offset,
        _ => 0, // new, rotated, or truncated
    };
    if offset >= meta.len() {
        if offsets.follow_offset(&key)?.is_none() {
            offsets.set_follow_offset(&key, &FollowOffset { identity: identity.clone(), offset: 0 })?;
        }
        return Ok(false);
    }
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return Ok(false);
    }
    let mut buf = Vec::new();
    let _ = f.by_ref().take(cfg.chunk_bytes as u64).read_to_end(&mut buf);
    let Some(end) = memchr::memrchr(b'\n', &buf) else { return Ok(false) }; // no complete line yet
    buf.truncate(end + 1);
    let (tx, rx) = oneshot::channel();
    let job =
        Job { input: InputKind::Files, service: cfg.service.clone(), name: key.clone(), body: buf.clone(), ack: tx };
    queue.put(job).map_err(|_| FollowError::Closed)?;
    match rx.blocking_recv() {
        Ok(Ok(_)) => {}
        // The store failed: keep the position, try again next pass.
        Ok(Err(JobError::Store(_))) => return Ok(false),
        Ok(Err(JobError::Invalid(_) | JobError::TooLarge(_))) => {
            // A bad line somewhere: store line by line; bad lines are counted and passed.
            for line in buf.split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
                let (tx, rx) = oneshot::channel();
                let job = Job {
                    input: InputKind::Files,
                    service: cfg.service.clone(),
                    name: key.clone(),
                    body: line.to_vec(),
                    ack: tx,
                };
                queue.put(job).map_err(|_| FollowError::Closed)?;
                match rx.blocking_recv() {
                    Ok(Ok(_)) => {}
                    Ok(Err(e @ (JobError::Invalid(_) | JobError::TooLarge(_)))) => {
                        metrics.rejected(InputKind::Files, e.reason(), 1)
                    }
                    Ok(Err(JobError::Store(_))) => return Ok(false), // position kept: retried whole
                    Err(_) => return Err(FollowError::Closed),
                }
            }
        }
        Err(_) => return Err(FollowError::Closed),
    }
    offset += buf.len() as u64;
    offsets.set_follow_offset(&key, &FollowOffset { identity, offset })?;
    Ok(true)
}

/// The directory a glob pattern's files are in: the part before the first
/// wildcard, up to its last `/`.
fn watch_dir(pattern: &str) -> std::path::PathBuf {
    let fixed = &pattern[..pattern.find(['*', '?', '[']).unwrap_or(pattern.len())];
    match fixed.rfind('/') {
        Some(0) => "/".into(),
        Some(i) => fixed[..i].into(),
        None => ".".into(),
    }
}

/// Runs until the server stops. Between passes it waits for a file-system event
/// in the pattern's directory (inotify on Linux, through `notify`) instead of
/// polling; without events (the directory is missing, or the file system
/// sends none) a pass still runs every quarter second.
pub fn run(cfg: FollowConfig, ctx: &super::input::InputContext) -> Result<(), FollowError> {
    use notify::Watcher;
    let (queue, metrics) = (&ctx.queue, &*ctx.metrics);
    let mut offsets = crate::store::open(&ctx.history)?;
    glob::Pattern::new(&cfg.pattern).map_err(|e| FollowError::Pattern(cfg.pattern.clone(), e.to_string()))?;
    let (tx, events) = std::sync::mpsc::channel();
    let watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
        if e.is_ok() {
            let _ = tx.send(());
        }
    })
    .and_then(|mut w| w.watch(&watch_dir(&cfg.pattern), notify::RecursiveMode::NonRecursive).map(|_| w));
    // With a watcher, wake at least every second to see `stop`.
    let wait = if watcher.is_ok() { Duration::from_secs(1) } else { Duration::from_millis(250) };
    while !ctx.stopping() {
        let mut busy = false;
        let paths = glob::glob(&cfg.pattern).map_err(|e| FollowError::Pattern(cfg.pattern.clone(), e.to_string()))?;
        for p in paths.flatten() {
            if p.is_file() {
                busy |= one_pass(&p, &cfg, queue, metrics, &mut *offsets)?;
            }
        }
        if !busy {
            let _ = events.recv_timeout(wait);
            while events.try_recv().is_ok() {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::watch_dir;

    #[test]
    fn the_watched_directory_is_the_fixed_part_of_the_pattern() {
        assert_eq!(watch_dir("/var/log/app/*.jsonl"), std::path::Path::new("/var/log/app"));
        assert_eq!(watch_dir("/var/log/app/a.jsonl"), std::path::Path::new("/var/log/app"));
        assert_eq!(watch_dir("/var/log/*/x.jsonl"), std::path::Path::new("/var/log"));
        assert_eq!(watch_dir("*.jsonl"), std::path::Path::new("."));
        assert_eq!(watch_dir("/x.jsonl"), std::path::Path::new("/"));
    }
}
