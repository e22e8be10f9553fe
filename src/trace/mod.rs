//! Traces in: pypss's trace records from every file shape it writes, read
//! into columns ([`TraceColumns`]) that scoring consumes.

pub mod columns;
pub(crate) mod json;
#[cfg(test)]
mod props;
pub(crate) mod reader;
pub(crate) mod tabular;

pub use columns::{ColumnOptions, Interner, Skipped, Stage, TraceColumns, Unmeasured, NONE};
pub use json::RawTrace;
pub use reader::{read_bytes, read_source, read_untrusted_bytes, FileSummary, Format, Source};

/// Why a trace source could not be read. Every variant names the source.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The content is not valid JSON at a known place.
    #[error("{path}:{line}: {msg} (byte {byte})")]
    Syntax { path: String, line: u64, byte: u64, msg: String },
    /// The content is not a trace file of any shape pss reads.
    #[error("{path}: {msg}")]
    Format { path: String, msg: String },
    /// Compressed input that inflates past the limit (a gzip bomb, or a
    /// batch to split): refused, nothing of it kept.
    #[error("{path}: decompresses to more than {limit} bytes; refused (send smaller batches)")]
    TooLarge { path: String, limit: u64 },
}

/// Receives traces as a reader finds them.
pub trait TraceSink {
    /// One trace object.
    fn trace(&mut self, t: &RawTrace<'_>);
    /// An element that is not an object (pypss skips it).
    fn not_object(&mut self);
    /// Drop everything received so far.
    fn reset(&mut self);
    /// The sink as columns, when it is one: large files are then read by
    /// two threads whose columns are merged.
    fn columns(&mut self) -> Option<&mut TraceColumns> {
        None
    }
    /// A hint that about `additional` more traces will follow.
    fn reserve(&mut self, _additional: usize) {}
    /// The fields this sink reads ([`json::field`] bits); others are skipped.
    fn wanted(&self) -> u32 {
        json::field::ALL
    }
}

impl TraceSink for TraceColumns {
    fn trace(&mut self, t: &RawTrace<'_>) {
        self.push(t)
    }
    fn not_object(&mut self) {
        self.push_not_object()
    }
    fn reset(&mut self) {
        TraceColumns::reset(self)
    }
    fn columns(&mut self) -> Option<&mut TraceColumns> {
        Some(self)
    }
    fn reserve(&mut self, additional: usize) {
        TraceColumns::reserve(self, additional)
    }
    fn wanted(&self) -> u32 {
        let mut w = json::field::SCORING;
        if !self.keep.timestamps {
            w &= !json::field::TIMESTAMP;
        }
        if !self.keep.names {
            w &= !json::field::NAME;
        }
        if self.keep.memory_diff {
            w |= json::field::MEMORY_DIFF;
        }
        w
    }
}

/// Reads several sources, in order, into one set of columns.
pub fn read_all(
    sources: &[Source],
    unknown_module: &str,
    keep: ColumnOptions,
) -> Result<(TraceColumns, Vec<FileSummary>), ReadError> {
    let mut cols = TraceColumns::with_options(unknown_module, keep);
    let mut summaries = Vec::with_capacity(sources.len());
    for s in sources {
        cols.begin_source();
        summaries.push(read_source(s, &mut cols)?);
    }
    Ok((cols, summaries))
}
