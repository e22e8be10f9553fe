//! Reading trace files of every shape pypss users have, sniffed from content:
//! a JSON array, an object with a `traces` array (`pypss run --output`),
//! JSON Lines (`FileFIFOCollector`), gzip of any of these, CSV and Parquet.
//!
//! JSON is streamed through a bounded buffer: the file is never held whole,
//! and each trace goes straight into a [`TraceSink`].

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::json::{describe_byte, RawTrace, ScanError, Scanner};
use super::{ColumnOptions, ReadError, TraceColumns, TraceSink};

/// Where traces come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file on disk.
    Path(PathBuf),
    /// Standard input (`-`).
    Stdin,
}

impl Source {
    /// `-` means standard input.
    pub fn from_arg(s: &str) -> Self {
        if s == "-" {
            Source::Stdin
        } else {
            Source::Path(PathBuf::from(s))
        }
    }

    /// The name used in messages.
    pub fn display(&self) -> String {
        match self {
            Source::Path(p) => p.display().to_string(),
            Source::Stdin => "<stdin>".to_string(),
        }
    }
}

/// The shape a file turned out to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    JsonArray,
    JsonObject,
    JsonLines,
    Csv,
    Parquet,
}

/// What reading one source found.
#[derive(Debug, Clone)]
pub struct FileSummary {
    pub source: String,
    pub format: Format,
    pub gzip: bool,
    pub elements: u64,
    pub bytes: u64,
    /// Threads that read it (2 when a large file was split and the split held).
    pub threads: u8,
}

/// Largest single JSON element (one trace) accepted, to bound memory.
pub const MAX_ELEMENT_BYTES: usize = 64 << 20;
const CHUNK: usize = 256 << 10;

/// Reads one source into `sink`.
pub fn read_source(source: &Source, sink: &mut dyn TraceSink) -> Result<FileSummary, ReadError> {
    let name = source.display();
    let io_err = |e: io::Error| ReadError::Io { path: name.clone(), source: e };
    let reader: Box<dyn Read> = match source {
        Source::Path(p) => {
            let meta = std::fs::metadata(p).map_err(io_err)?;
            if meta.is_dir() {
                return Err(ReadError::Format { path: name, msg: "is a directory, not a trace file".into() });
            }
            Box::new(File::open(p).map_err(io_err)?)
        }
        Source::Stdin => Box::new(io::stdin().lock()),
    };
    let path = match source {
        Source::Path(p) => Some(p.as_path()),
        Source::Stdin => None,
    };
    if let (Some(p), true) = (path, sink.columns().is_some()) {
        if let Some(split) = plan_split(p) {
            return read_split(&name, p, reader, split, sink);
        }
    }
    read_stream(&name, path, reader, false, sink, None)
}

/// Files smaller than this are read by one thread.
const PARALLEL_MIN_BYTES: u64 = 16 << 20;

/// How the second half of a file continues: inside a JSON array (elements
/// separated by commas) or as JSON Lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TailMode {
    Array,
    Lines,
}

/// A guessed element boundary near the middle of a file.
#[derive(Debug, Clone, Copy)]
struct Split {
    at: u64,
    mode: TailMode,
}

/// Finds a likely start of a top-level trace near the middle of a large JSON
/// file: a `{` whose previous non-blank byte is `,` (array) or `}` on an
/// earlier line (JSON Lines). It is only a guess: the first thread confirms
/// it by reaching exactly that offset as an element start; otherwise the
/// second thread's work is thrown away and reading goes on sequentially.
fn plan_split(path: &Path) -> Option<Split> {
    let size = std::fs::metadata(path).ok()?.len();
    if size < PARALLEL_MIN_BYTES || std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) < 2 {
        return None;
    }
    let mut f = File::open(path).ok()?;
    let mut head = [0u8; 4];
    f.read_exact(&mut head).ok()?;
    if head[..2] == [0x1f, 0x8b] || &head == b"PAR1" {
        return None;
    }
    find_boundary(&mut f, size / 2)
}

/// The first likely element start at or after `from` (see [`plan_split`]).
fn find_boundary(f: &mut File, from: u64) -> Option<Split> {
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut win = vec![0u8; 1 << 20];
    let n = f.read(&mut win).ok()?;
    let win = &win[..n];
    for q in memchr::memchr_iter(b'{', win) {
        let mut k = q;
        let mut newline = false;
        while k > 0 && matches!(win[k - 1], b' ' | b'\t' | b'\r' | b'\n') {
            newline |= win[k - 1] == b'\n';
            k -= 1;
        }
        if k == 0 {
            continue;
        }
        match win[k - 1] {
            b',' => return Some(Split { at: from + q as u64, mode: TailMode::Array }),
            b'}' if newline => return Some(Split { at: from + q as u64, mode: TailMode::Lines }),
            _ => {}
        }
    }
    None
}

/// What a piece read (the second thread's, or the part the first thread
/// took back from it).
struct TailDone {
    cols: TraceColumns,
    /// Absolute offset just after what it consumed.
    end: u64,
    /// Newlines from the split to `end`.
    lines: u64,
    elements: u64,
    /// It stopped where it was asked to ([`Shared::stop_at`]), not at the end.
    stopped: bool,
}

/// What the two threads share while the second reads its piece.
#[derive(Default)]
struct Shared {
    cancel: std::sync::atomic::AtomicBool,
    /// Where the second thread should stop (an element start), or 0 for the end.
    stop_at: std::sync::atomic::AtomicU64,
    /// How far the second thread has read.
    progress: std::sync::atomic::AtomicU64,
}

/// The second thread's work, handed to the first thread's [`Feed`].
struct Tail<'scope> {
    split: Split,
    handle: Option<std::thread::ScopedJoinHandle<'scope, Result<TailDone, ReadError>>>,
    shared: std::sync::Arc<Shared>,
    path: PathBuf,
    /// Trace columns options for another piece.
    unknown: String,
    keep: ColumnOptions,
}

/// Pieces smaller than this are not split again.
const STEAL_MIN_BYTES: u64 = 4 << 20;

/// Reads the elements of one piece of a file, from an element start to the
/// end of the array (or file), or to `shared.stop_at` when that is set.
fn read_piece(
    name: &str,
    path: &Path,
    split: Split,
    unknown: &str,
    keep: ColumnOptions,
    shared: &Shared,
) -> Result<TailDone, ReadError> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path).map_err(|e| ReadError::Io { path: name.to_string(), source: e })?;
    f.seek(SeekFrom::Start(split.at)).map_err(|e| ReadError::Io { path: name.to_string(), source: e })?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut feed = Feed::new(name, Box::new(f), false);
    feed.base = split.at;
    feed.tail_start = split.at;
    feed.size_hint = Some(size.saturating_sub(split.at));
    let mut cols = TraceColumns::with_options(unknown, keep);
    feed.wanted = cols.wanted();
    let (elements, stopped) = feed.tail_elements(split.mode, &mut cols, shared)?;
    let end = feed.consumed();
    let lines = feed.lines + bytecount::count(&feed.buf[..feed.start], b'\n') as u64;
    Ok(TailDone { cols, end, lines, elements, stopped })
}

fn read_split(
    name: &str,
    path: &Path,
    reader: Box<dyn Read>,
    split: Split,
    sink: &mut dyn TraceSink,
) -> Result<FileSummary, ReadError> {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    let shared = Arc::new(Shared::default());
    let (unknown, keep) = sink.columns().map(|c| (c.unknown_module.clone(), c.keep)).unwrap_or_default();
    std::thread::scope(|scope| {
        let shared2 = shared.clone();
        let (name2, path2, unknown2) = (name.to_string(), path.to_path_buf(), unknown.clone());
        let handle = scope.spawn(move || read_piece(&name2, &path2, split, &unknown2, keep, &shared2));
        let tail =
            Tail { split, handle: Some(handle), shared: shared.clone(), path: path.to_path_buf(), unknown, keep };
        let res = read_stream(name, Some(path), reader, false, sink, Some(tail));
        shared.cancel.store(true, Ordering::Relaxed);
        res
    })
}

/// Reads traces from `text` (for tests and for data already in memory).
pub fn read_bytes(name: &str, bytes: &[u8], sink: &mut dyn TraceSink) -> Result<FileSummary, ReadError> {
    read_stream(name, None, Box::new(Cursor::new(bytes.to_vec())), false, sink, None)
}

/// [`read_bytes`] for untrusted bytes (a request body): gzip content may
/// inflate to at most `max_inflated` bytes, else [`ReadError::TooLarge`].
pub fn read_untrusted_bytes(
    name: &str,
    bytes: &[u8],
    max_inflated: u64,
    sink: &mut dyn TraceSink,
) -> Result<FileSummary, ReadError> {
    if bytes.len() >= 2 && bytes[..2] == [0x1f, 0x8b] {
        let dec = Capped { inner: MultiGzDecoder::new(bytes), left: max_inflated, limit: max_inflated };
        return read_stream(name, None, Box::new(dec), true, sink, None).map_err(|e| match e {
            ReadError::Format { .. } if capped(&e) => ReadError::TooLarge { path: name.into(), limit: max_inflated },
            other => other,
        });
    }
    read_bytes(name, bytes, sink)
}

/// The marker a [`Capped`] reader's error carries.
#[derive(Debug)]
struct OverCap(u64);

impl std::fmt::Display for OverCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "inflated past {} bytes", self.0)
    }
}

impl std::error::Error for OverCap {}

fn capped(e: &ReadError) -> bool {
    matches!(e, ReadError::Format { msg, .. } if msg.contains(CAP_MARK))
}

const CAP_MARK: &str = "inflated past ";

/// A reader that fails once more than `limit` bytes came out of it.
struct Capped<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::other(OverCap(self.limit)));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn read_stream(
    name: &str,
    path: Option<&Path>,
    reader: Box<dyn Read + '_>,
    gzip: bool,
    sink: &mut dyn TraceSink,
    tail: Option<Tail<'_>>,
) -> Result<FileSummary, ReadError> {
    let mut feed = Feed::new(name, reader, gzip);
    if !gzip {
        let size = path.and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len());
        // With a second thread, still reserve for the whole file: its rows
        // are appended here at the end.
        feed.size_hint = size;
    }
    feed.tail = tail;
    feed.wanted = sink.wanted();
    feed.fill_at_least(8)?;
    let head = feed.window();
    if head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        if gzip {
            return Err(feed.format_err("gzip inside gzip is not supported"));
        }
        let prefix = head.to_vec();
        let rest = feed.into_reader();
        let dec = MultiGzDecoder::new(Cursor::new(prefix).chain(rest));
        return read_stream(name, None, Box::new(dec), true, sink, None);
    }
    if head.starts_with(b"PAR1") {
        let bytes = match (path, gzip) {
            (Some(p), false) => std::fs::read(p).map_err(|e| ReadError::Io { path: name.into(), source: e })?,
            _ => feed.read_all()?,
        };
        let n = super::tabular::read_parquet(name, bytes, sink)?;
        return Ok(FileSummary {
            source: name.into(),
            format: Format::Parquet,
            gzip,
            elements: n,
            bytes: 0,
            threads: 1,
        });
    }
    feed.skip_bom();
    let first = feed.first_non_ws()?;
    let format = match first {
        None => return Err(feed.format_err("the file is empty (no JSON, JSON Lines, CSV or Parquet content)")),
        Some(b'[') => {
            feed.json_array(sink)?;
            Format::JsonArray
        }
        Some(b'{') => feed.json_object_or_lines(sink)?,
        Some(b) => {
            let head = feed.window().to_vec();
            if super::tabular::looks_like_csv(&head) {
                let bytes = feed.read_all()?;
                let n = super::tabular::read_csv(name, bytes, sink)?;
                return Ok(FileSummary {
                    source: name.into(),
                    format: Format::Csv,
                    gzip,
                    elements: n,
                    bytes: 0,
                    threads: 1,
                });
            }
            return Err(feed.not_traces(b));
        }
    };
    let threads = if feed.split_used { 2 } else { 1 };
    Ok(FileSummary { source: name.into(), format, gzip, elements: feed.elements, bytes: feed.consumed(), threads })
}

/// A bounded window over a byte stream, refilled as the scanner asks.
struct Feed<'r> {
    /// The second thread reading the rest of this file, if any.
    tail: Option<Tail<'r>>,
    /// Fields the sink reads.
    wanted: u32,
    /// Bytes this feed is expected to read in all, when known.
    size_hint: Option<u64>,
    /// Offset where this feed started (the split, for the second thread).
    tail_start: u64,
    /// True once the second thread's work was taken.
    split_used: bool,
    name: String,
    reader: Box<dyn Read + 'r>,
    buf: Vec<u8>,
    start: usize,
    len: usize,
    /// Absolute offset of `buf[0]` in the (decompressed) stream.
    base: u64,
    /// Newlines in the stream before `buf[0]`.
    lines: u64,
    eof: bool,
    gzip: bool,
    elements: u64,
}

impl<'r> Feed<'r> {
    fn new(name: &str, reader: Box<dyn Read + 'r>, gzip: bool) -> Self {
        Feed {
            split_used: false,
            size_hint: None,
            tail_start: 0,
            tail: None,
            wanted: super::json::field::ALL,
            name: name.to_string(),
            reader,
            buf: vec![0; CHUNK],
            start: 0,
            len: 0,
            base: 0,
            lines: 0,
            eof: false,
            gzip,
            elements: 0,
        }
    }

    fn window(&self) -> &[u8] {
        &self.buf[self.start..self.len]
    }

    fn consumed(&self) -> u64 {
        self.base + self.start as u64
    }

    fn into_reader(self) -> Box<dyn Read + 'r> {
        self.reader
    }

    fn io_err(&self, e: io::Error) -> ReadError {
        let msg = if self.gzip {
            format!("gzip data is corrupt or truncated after {} decompressed bytes: {e}", self.base + self.len as u64)
        } else {
            e.to_string()
        };
        ReadError::Format { path: self.name.clone(), msg }
    }

    fn format_err(&self, msg: &str) -> ReadError {
        ReadError::Format { path: self.name.clone(), msg: msg.to_string() }
    }

    /// Reads more input: keeps the unconsumed part, grows the buffer when one
    /// element fills it, up to [`MAX_ELEMENT_BYTES`].
    fn fill(&mut self) -> Result<(), ReadError> {
        if self.eof {
            return Ok(());
        }
        if self.start > 0 {
            self.lines += bytecount::count(&self.buf[..self.start], b'\n') as u64;
            self.buf.copy_within(self.start..self.len, 0);
            self.base += self.start as u64;
            self.len -= self.start;
            self.start = 0;
        }
        if self.len == self.buf.len() {
            if self.buf.len() >= MAX_ELEMENT_BYTES {
                return Err(self.syntax_at(0, format!("one JSON value is larger than {} MiB", MAX_ELEMENT_BYTES >> 20)));
            }
            let new_len = (self.buf.len() * 2).min(MAX_ELEMENT_BYTES);
            self.buf.resize(new_len, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.len..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.len += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_err(e)),
            }
        }
    }

    fn fill_at_least(&mut self, n: usize) -> Result<(), ReadError> {
        while self.len - self.start < n && !self.eof {
            self.fill()?;
        }
        Ok(())
    }

    fn read_all(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut out = self.window().to_vec();
        self.reader.read_to_end(&mut out).map_err(|e| self.io_err(e))?;
        Ok(out)
    }

    fn skip_bom(&mut self) {
        if self.window().starts_with(b"\xEF\xBB\xBF") {
            self.start += 3;
        }
    }

    fn first_non_ws(&mut self) -> Result<Option<u8>, ReadError> {
        loop {
            let w = self.window();
            if let Some(i) = w.iter().position(|&b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t')) {
                let b = w[i];
                // Keep whitespace before it so line numbers stay right.
                self.fill_at_least(i + 4096)?;
                return Ok(Some(b));
            }
            if self.eof {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    fn syntax_at(&self, rel: usize, msg: String) -> ReadError {
        let mut abs = self.start + rel;
        if msg.starts_with("unexpected end") {
            // Point at the last byte of content, not at trailing newlines.
            while abs > self.start && abs <= self.len && matches!(self.buf[abs - 1], b' ' | b'\n' | b'\r' | b'\t') {
                abs -= 1;
            }
        }
        let upto = abs.min(self.len);
        let line = self.lines + bytecount::count(&self.buf[..upto], b'\n') as u64 + 1;
        ReadError::Syntax { path: self.name.clone(), line, byte: self.base + abs as u64, msg }
    }

    /// Runs `f` on the unconsumed input, refilling and retrying while it
    /// reports [`ScanError::Incomplete`]; consumes what `f` scanned.
    fn run<T>(&mut self, mut f: impl FnMut(&mut Scanner<'_>) -> Result<T, ScanError>) -> Result<T, ReadError> {
        loop {
            let mut sc = Scanner::new(&self.buf[self.start..self.len], self.eof).with_wanted(self.wanted);
            match f(&mut sc) {
                Ok(v) => {
                    self.start += sc.pos;
                    return Ok(v);
                }
                Err(ScanError::Incomplete) => {
                    let before = (self.len - self.start, self.eof);
                    self.fill()?;
                    if (self.len - self.start, self.eof) == before {
                        return Err(self.syntax_at(self.len - self.start, "unexpected end of input".into()));
                    }
                }
                Err(ScanError::Syntax { pos, msg }) => return Err(self.syntax_at(pos, msg)),
            }
        }
    }

    /// Streams the elements of an array whose `[` is next.
    fn array_elements(&mut self, sink: &mut dyn TraceSink) -> Result<(), ReadError> {
        let empty = self.run(|sc| {
            sc.expect(b'[', "expected '['")?;
            match sc.peek_non_ws() {
                Some(b']') => {
                    sc.pos += 1;
                    Ok(true)
                }
                Some(_) => Ok(false),
                None => Err(if sc_eof(sc) {
                    syntax(sc.pos, "unexpected end of input in array")
                } else {
                    ScanError::Incomplete
                }),
            }
        })?;
        if empty {
            return Ok(());
        }
        loop {
            if self.check_tail(TailMode::Array, sink)? {
                return Ok(()); // the second thread read to the end of the array
            }
            let done = self.run(|sc| array_step(sc, sink))?;
            self.elements += 1;
            self.maybe_reserve(sink);
            if done {
                return Ok(());
            }
        }
    }

    /// Once, after 1,024 elements: reserve room for the rest, estimated from
    /// the bytes per element so far.
    fn maybe_reserve(&mut self, sink: &mut dyn TraceSink) {
        if self.elements != 1024 {
            return;
        }
        if let Some(total) = self.size_hint {
            let start = self.tail_start;
            let done = self.consumed().saturating_sub(start).max(1);
            let left = total.saturating_sub(done);
            let per = done as f64 / 1024.0;
            sink.reserve((left as f64 / per * 1.05) as usize);
        }
    }

    /// Skips whitespace; the absolute offset of the next token (or the end).
    fn next_token_offset(&mut self) -> Result<u64, ReadError> {
        self.run(|sc| match sc.peek_non_ws() {
            Some(_) => Ok(()),
            None if sc_eof(sc) => Ok(()),
            None => Err(ScanError::Incomplete),
        })?;
        Ok(self.consumed())
    }

    /// Before an element: when the second thread started exactly here, take
    /// its columns and continue after what it read (returns true); when
    /// reading has passed its start without meeting it, the guess was wrong:
    /// stop it and go on alone.
    fn check_tail(&mut self, mode: TailMode, sink: &mut dyn TraceSink) -> Result<bool, ReadError> {
        use std::io::{Seek, SeekFrom};
        let Some(at) = self.tail.as_ref().map(|t| t.split.at) else { return Ok(false) };
        if self.consumed() + ((self.len - self.start) as u64) < at && !self.eof {
            return Ok(false); // far from the split: nothing to check yet
        }
        let here = self.next_token_offset()?;
        if here < at {
            return Ok(false);
        }
        let mut tail = self.tail.take().expect("checked");
        if here > at || tail.split.mode != mode {
            tail.shared.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            return Ok(false);
        }
        let handle = tail.handle.take().expect("joined once");
        // Still reading: take back the second half of what it has left, so
        // neither thread waits for the other (the two cores need not be
        // equally fast). Used only if it stops exactly there.
        let third = if handle.is_finished() { None } else { self.take_back(&tail) };
        let done = handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        let lines_before = self.lines + bytecount::count(&self.buf[..self.start], b'\n') as u64;
        // A piece's syntax errors count lines from its start.
        let shift = |r: Result<TailDone, ReadError>, by: u64| {
            r.map_err(|e| match e {
                ReadError::Syntax { path, line, byte, msg } => ReadError::Syntax { path, line: by + line, byte, msg },
                e => e,
            })
        };
        let mut d = shift(done, lines_before)?;
        let cols = sink.columns().expect("split reading only into columns");
        cols.absorb(std::mem::take(&mut d.cols));
        if let Some(c) = third.filter(|_| d.stopped) {
            let c = shift(c, lines_before + d.lines)?;
            cols.absorb(c.cols);
            d.end = c.end;
            d.lines += c.lines;
            d.elements += c.elements;
        }
        self.split_used = true;
        self.elements += d.elements;
        let mut f = File::open(&tail.path).map_err(|e| self.io_err(e))?;
        f.seek(SeekFrom::Start(d.end)).map_err(|e| self.io_err(e))?;
        self.reader = Box::new(f);
        self.start = 0;
        self.len = 0;
        self.base = d.end;
        self.lines = lines_before + d.lines;
        self.eof = false;
        Ok(true)
    }

    /// Asks the second thread to stop at an element start halfway through
    /// what it has left, and reads from there to the end here. `None` when
    /// too little is left or no boundary is found.
    fn take_back(&self, tail: &Tail<'_>) -> Option<Result<TailDone, ReadError>> {
        use std::sync::atomic::Ordering;
        let mut f = File::open(&tail.path).ok()?;
        let size = f.metadata().ok()?.len();
        let from = tail.shared.progress.load(Ordering::Relaxed).max(tail.split.at);
        if size.saturating_sub(from) < 2 * STEAL_MIN_BYTES {
            return None;
        }
        let split = find_boundary(&mut f, from + (size - from) / 2).filter(|s| s.mode == tail.split.mode)?;
        tail.shared.stop_at.store(split.at, Ordering::Release);
        let own = Shared::default();
        Some(read_piece(&self.name, &tail.path, split, &tail.unknown, tail.keep, &own))
    }

    /// A piece's elements from its split to the end of the array (or of
    /// the file, for JSON Lines), or up to `shared.stop_at` when the other
    /// thread asks it to stop there: then it stops only if it reaches that
    /// offset exactly as an element start (returns true), and otherwise
    /// reads on to the end. Returns the elements read and whether it stopped.
    fn tail_elements(
        &mut self,
        mode: TailMode,
        cols: &mut TraceColumns,
        shared: &Shared,
    ) -> Result<(u64, bool), ReadError> {
        use std::sync::atomic::Ordering;
        let mut n = 0u64;
        let mut stop = 0u64; // 0: none asked for (yet)
        loop {
            if n.is_multiple_of(64) {
                if n.is_multiple_of(4096) && shared.cancel.load(Ordering::Relaxed) {
                    return Err(self.format_err("cancelled"));
                }
                shared.progress.store(self.consumed(), Ordering::Relaxed);
                if stop == 0 {
                    stop = shared.stop_at.load(Ordering::Acquire);
                }
            }
            if stop != 0 && stop != u64::MAX && self.consumed() + (self.len - self.start) as u64 >= stop {
                let here = self.next_token_offset()?;
                if here == stop {
                    return Ok((n, true));
                }
                if here > stop {
                    stop = u64::MAX; // passed it: not a boundary after all; read on
                }
            }
            match mode {
                TailMode::Array => {
                    let done = self.run(|sc| array_step(sc, cols))?;
                    n += 1;
                    self.elements = n;
                    self.maybe_reserve(cols);
                    if done {
                        return Ok((n, false));
                    }
                }
                TailMode::Lines => {
                    let more = self.run(|sc| lines_step(sc, cols))?;
                    if !more {
                        return Ok((n, false));
                    }
                    n += 1;
                }
            }
        }
    }

    fn expect_eof(&mut self, after: &str) -> Result<(), ReadError> {
        let end = self.run(|sc| sc.at_eof())?;
        if !end {
            let pos = self.window().iter().position(|&b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t')).unwrap_or(0);
            return Err(self.syntax_at(pos, format!("unexpected data after {after}")));
        }
        Ok(())
    }

    fn json_array(&mut self, sink: &mut dyn TraceSink) -> Result<(), ReadError> {
        self.array_elements(sink)?;
        self.expect_eof("the end of the JSON array")
    }

    /// `{` first: either a wrapper object with a `traces` array, or the first
    /// trace of a JSON Lines stream.
    fn json_object_or_lines(&mut self, sink: &mut dyn TraceSink) -> Result<Format, ReadError> {
        enum Step {
            Traces,
            Member(Vec<u8>),
            End,
        }
        let mut members: Vec<Vec<u8>> = Vec::new();
        let mut captured = 0usize;
        let mut saw_traces = false;
        self.run(|sc| sc.expect(b'{', "expected '{'"))?;
        let mut first = true;
        loop {
            let step = self.run(|sc| {
                if first {
                    if sc.peek_non_ws() == Some(b'}') {
                        sc.pos += 1;
                        return Ok(Step::End);
                    }
                } else {
                    match sc.peek_non_ws() {
                        Some(b',') => sc.pos += 1,
                        Some(b'}') => {
                            sc.pos += 1;
                            return Ok(Step::End);
                        }
                        Some(other) => {
                            return Err(syntax(sc.pos, format!("expected ',' or '}}', found {}", describe_byte(other))))
                        }
                        None if sc_eof(sc) => return Err(syntax(sc.pos, "unexpected end of input in object")),
                        None => return Err(ScanError::Incomplete),
                    }
                }
                match sc.peek_non_ws() {
                    Some(b'"') => {}
                    Some(other) => {
                        return Err(syntax(sc.pos, format!("expected a string key, found {}", describe_byte(other))))
                    }
                    None if sc_eof(sc) => return Err(syntax(sc.pos, "unexpected end of input in object")),
                    None => return Err(ScanError::Incomplete),
                }
                let key_start = sc.pos;
                let key = sc.string()?;
                sc.expect(b':', "expected ':' after an object key")?;
                if key == "traces" {
                    match sc.peek_non_ws() {
                        Some(b'[') => return Ok(Step::Traces),
                        Some(_) => {
                            let at = sc.pos;
                            let v = sc.scalar(1)?;
                            return Err(syntax(
                                at,
                                format!("\"traces\" must be an array of traces, found a {}", v.kind()),
                            ));
                        }
                        None if sc_eof(sc) => return Err(syntax(sc.pos, "unexpected end of input")),
                        None => return Err(ScanError::Incomplete),
                    }
                }
                sc.skip_value(1)?;
                Ok(Step::Member(sc.slice(key_start).to_vec()))
            })?;
            first = false;
            match step {
                Step::End => break,
                Step::Traces => {
                    if saw_traces {
                        sink.reset(); // a later duplicate key wins, as in Python
                    }
                    saw_traces = true;
                    self.array_elements(sink)?;
                }
                Step::Member(raw) => {
                    if !saw_traces {
                        captured += raw.len();
                        if captured > MAX_ELEMENT_BYTES {
                            return Err(self.format_err("top-level object is too large to be a trace and has no \"traces\" array before this point"));
                        }
                        members.push(raw);
                    }
                }
            }
        }
        if saw_traces {
            self.expect_eof("the top-level object")?;
            return Ok(Format::JsonObject);
        }
        // No `traces` key: the object is the first trace of JSON Lines.
        let mut text = Vec::with_capacity(captured + members.len() + 2);
        text.push(b'{');
        for (i, m) in members.iter().enumerate() {
            if i > 0 {
                text.push(b',');
            }
            text.extend_from_slice(m);
        }
        text.push(b'}');
        let mut sc = Scanner::new(&text, true);
        let mut t = RawTrace::default();
        sc.object_members(&mut t).map_err(|_| self.format_err("internal error re-reading the first object"))?;
        if !t.has_trace_field() {
            return Err(self.format_err(
                "the top-level object has no \"traces\" array and no trace fields (duration, name, timestamp, …); expected a JSON array of traces, an object with a \"traces\" array, or JSON Lines",
            ));
        }
        sink.trace(&t);
        self.elements += 1;
        loop {
            if self.check_tail(TailMode::Lines, sink)? {
                continue; // the second thread read to the end of the file
            }
            let more = self.run(|sc| lines_step(sc, sink))?;
            if !more {
                break;
            }
            self.elements += 1;
        }
        Ok(Format::JsonLines)
    }

    fn not_traces(&self, b: u8) -> ReadError {
        let w = self.window();
        // Invalid UTF-8 in the first KiB (not merely a character cut at its
        // end), or a NUL byte: binary.
        let invalid = std::str::from_utf8(&w[..w.len().min(1024)]).is_err_and(|e| e.error_len().is_some());
        if invalid || w.contains(&0) {
            return self.format_err("binary data: not JSON, JSON Lines, CSV, Parquet or gzip");
        }
        let mut sc = Scanner::new(w, self.eof);
        let pos = w.iter().position(|&c| c == b).unwrap_or(0);
        sc.pos = pos;
        if let Ok(v) = sc.scalar(0) {
            return self.format_err(&format!(
                "the top-level JSON value is a {}; expected an array of traces, an object with a \"traces\" array, or JSON Lines",
                v.kind()
            ));
        }
        self.syntax_at(
            pos,
            format!(
                "not a trace file: starts with {}; expected JSON, JSON Lines, CSV with a header row, Parquet or gzip",
                describe_byte(b)
            ),
        )
    }
}

/// One array element and the `,` or `]` after it; true at the end of the array.
fn array_step(sc: &mut Scanner<'_>, sink: &mut dyn TraceSink) -> Result<bool, ScanError> {
    let mut t = RawTrace::default();
    let el = sc.element_into(&mut t)?;
    let done = match sc.peek_non_ws() {
        Some(b',') => {
            sc.pos += 1;
            match sc.peek_non_ws() {
                Some(b']') => return Err(syntax(sc.pos, "trailing comma before ']'")),
                Some(_) => false,
                None if sc_eof(sc) => return Err(syntax(sc.pos, "unexpected end of input in array")),
                None => return Err(ScanError::Incomplete),
            }
        }
        Some(b']') => {
            sc.pos += 1;
            true
        }
        Some(other) => {
            return Err(syntax(sc.pos, format!("expected ',' or ']' after a trace, found {}", describe_byte(other))))
        }
        None if sc_eof(sc) => return Err(syntax(sc.pos, "unexpected end of input: the array is not closed")),
        None => return Err(ScanError::Incomplete),
    };
    match el {
        None => sink.trace(&t),
        Some(_) => sink.not_object(),
    }
    Ok(done)
}

/// One JSON Lines value; false at the end of input.
fn lines_step(sc: &mut Scanner<'_>, sink: &mut dyn TraceSink) -> Result<bool, ScanError> {
    if sc.at_eof()? {
        return Ok(false);
    }
    let mut t = RawTrace::default();
    match sc.element_into(&mut t)? {
        None => sink.trace(&t),
        Some(_) => sink.not_object(),
    }
    Ok(true)
}

fn sc_eof(sc: &mut Scanner<'_>) -> bool {
    matches!(sc.at_eof(), Ok(true) | Err(ScanError::Syntax { .. }))
}

fn syntax(pos: usize, msg: impl Into<String>) -> ScanError {
    ScanError::Syntax { pos, msg: msg.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceColumns;

    fn read(text: &str) -> Result<(TraceColumns, FileSummary), ReadError> {
        let mut c = TraceColumns::new("unknown");
        let s = read_bytes("t.json", text.as_bytes(), &mut c)?;
        Ok((c, s))
    }

    #[test]
    fn shapes() {
        let (c, s) = read(r#"[{"duration": 1}, {"duration": 2}]"#).unwrap();
        assert_eq!((c.len(), s.format), (2, Format::JsonArray));
        let (c, s) = read(r#"{"overall": {"pss": 1}, "traces": [{"duration": 1}]}"#).unwrap();
        assert_eq!((c.len(), s.format), (1, Format::JsonObject));
        let (c, s) = read("{\"duration\": 1}\n\n{\"duration\": 2}\n").unwrap();
        assert_eq!((c.len(), s.format), (2, Format::JsonLines));
        let (c, _) = read("[]").unwrap();
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn bad_inputs_are_errors() {
        for bad in [
            "",
            "   \n",
            "[{\"duration\": 1}",
            "[1,2] x",
            "5",
            "{\"traces\": 5}",
            "{}",
            "[1,]",
            "\"abc\"",
            "{\"a\": 1}",
        ] {
            assert!(read(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn errors_name_the_line() {
        let err = read("{\"duration\": 1}\n{\"duration\": 2}\n{\"duration\": }\n").unwrap_err();
        match err {
            ReadError::Syntax { line, .. } => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
    }

    /// A JSON array of `n` traces written to a temporary file.
    fn array_file(n: usize) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
        let items: Vec<String> = (0..n)
            .map(|i| {
                format!("{{\n  \"name\": \"f{}\",\n  \"duration\": {}.5,\n  \"error\": {}\n}}", i % 5, i, i % 7 == 0)
            })
            .collect();
        let bytes = format!("[\n{}\n]\n", items.join(",\n")).into_bytes();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        std::fs::write(&path, &bytes).unwrap();
        (dir, path, bytes)
    }

    #[test]
    fn a_piece_stops_exactly_where_asked_and_the_rest_continues() {
        let (_dir, path, bytes) = array_file(20_000);
        let mut whole = TraceColumns::new("unknown");
        read_bytes("t", &bytes, &mut whole).unwrap();
        let mut f = File::open(&path).unwrap();
        let first = find_boundary(&mut f, bytes.len() as u64 / 4).unwrap();
        let second = find_boundary(&mut f, bytes.len() as u64 * 3 / 5).unwrap();
        assert_eq!(first.mode, TailMode::Array);
        // Asked to stop at an element start: stops there; the next piece reads on.
        let shared = Shared::default();
        shared.stop_at.store(second.at, std::sync::atomic::Ordering::Relaxed);
        let b = read_piece("t", &path, first, "unknown", ColumnOptions::default(), &shared).unwrap();
        assert!(b.stopped);
        assert_eq!(b.end, second.at);
        let c = read_piece("t", &path, second, "unknown", ColumnOptions::default(), &Shared::default()).unwrap();
        assert!(!c.stopped);
        let head = bytes[..first.at as usize].iter().filter(|&&x| x == b'\n').count() as u64;
        assert_eq!(head + b.lines + c.lines + 1, bytes.iter().filter(|&&x| x == b'\n').count() as u64);
        let skipped = whole.len() - (b.cols.len() + c.cols.len());
        let mut joined = b.cols;
        joined.absorb(c.cols);
        assert_eq!(joined.duration[..], whole.duration[skipped..]);
        // Asked to stop inside an element: it passes the offset and reads to the end.
        let shared = Shared::default();
        shared.stop_at.store(second.at + 3, std::sync::atomic::Ordering::Relaxed);
        let all = read_piece("t", &path, first, "unknown", ColumnOptions::default(), &shared).unwrap();
        assert!(!all.stopped);
        assert_eq!(all.cols.duration[..], whole.duration[skipped..]);
    }

    #[test]
    fn a_split_file_reads_the_same_whoever_finishes_first() {
        // 24 MiB: the second thread starts at 5 %, so the first reaches the
        // split early and usually takes back half of what is left.
        let (_dir, path, bytes) = array_file(600_000);
        assert!(bytes.len() as u64 > PARALLEL_MIN_BYTES);
        let mut whole = TraceColumns::new("unknown");
        read_bytes("t", &bytes, &mut whole).unwrap();
        let split = find_boundary(&mut File::open(&path).unwrap(), bytes.len() as u64 / 20).unwrap();
        let mut cols = TraceColumns::new("unknown");
        let reader = Box::new(File::open(&path).unwrap());
        let s = read_split("t", &path, reader, split, &mut cols).unwrap();
        assert_eq!((s.threads, s.elements), (2, 600_000));
        assert_eq!(cols.duration, whole.duration);
        assert_eq!(cols.error, whole.error);
    }

    #[test]
    fn tiny_chunks_give_the_same_result() {
        // Elements crossing chunk borders are re-scanned, never pushed twice.
        let mut text = String::from("[");
        for i in 0..500 {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!(
                "{{\"duration\": {}.25, \"name\": \"f\\u00e9{}\", \"x\": [1, 2, {{\"y\": null}}]}}",
                i,
                i % 7
            ));
        }
        text.push(']');
        struct Trickle(Cursor<Vec<u8>>);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(7);
                self.0.read(&mut buf[..n])
            }
        }
        let mut c = TraceColumns::new("unknown");
        read_stream("t", None, Box::new(Trickle(Cursor::new(text.into_bytes()))), false, &mut c, None).unwrap();
        assert_eq!(c.len(), 500);
        assert_eq!(c.duration[499], 499.25);
        assert_eq!(c.names.len(), 7);
    }
}
