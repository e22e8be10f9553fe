//! A streaming, allocation-light JSON scanner for trace files.
//!
//! Written by hand rather than on `serde_json` for three reasons that no JSON
//! crate covers together: pypss reads traces with Python's `json`, which
//! accepts `NaN`, `Infinity` and `-Infinity` and turns `1e400` into `inf`
//! (serde_json rejects all four); scoring must know whether a number was an
//! integer or a float literal, as Python does; and a 1,000,000-trace file has
//! to be read field by field into columns, never as a tree of values, with
//! errors that carry a byte offset. The scanner works on a buffer that may end
//! mid-value: it then answers [`ScanError::Incomplete`] and the caller refills
//! the buffer and scans the element again from its start.

use std::borrow::Cow;

/// Deepest nesting accepted; Python's `json` fails near 1,000 with a
/// `RecursionError`, pss stops earlier with a clear error.
pub const MAX_DEPTH: usize = 512;

/// Why a scan stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum ScanError {
    /// The buffer ended inside a value and more input may follow.
    Incomplete,
    /// The input is not valid JSON at byte `pos` of the buffer.
    Syntax { pos: usize, msg: String },
}

type Res<T> = Result<T, ScanError>;

/// A JSON value as far as scoring needs to know it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    /// An integer literal, kept as text: Python ints are unbounded.
    Int(&'a str),
    /// A float literal (or `NaN`/`Infinity`), parsed as Python's `float()` would.
    Float(f64),
    Str(Cow<'a, str>),
    /// An array; `true` when it has elements.
    Array(bool),
    /// An object; `true` when it has members.
    Object(bool),
}

impl Scalar<'_> {
    /// Python truthiness of the value.
    pub fn truthy(&self) -> bool {
        match self {
            Scalar::Null => false,
            Scalar::Bool(b) => *b,
            Scalar::Int(t) => t.bytes().any(|b| (b'1'..=b'9').contains(&b)),
            Scalar::Float(f) => *f != 0.0,
            Scalar::Str(s) => !s.is_empty(),
            Scalar::Array(n) | Scalar::Object(n) => *n,
        }
    }

    /// A short name of the JSON type, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "boolean",
            Scalar::Int(_) | Scalar::Float(_) => "number",
            Scalar::Str(_) => "string",
            Scalar::Array(_) => "array",
            Scalar::Object(_) => "object",
        }
    }
}

/// The `metadata` member of a system trace, as pypss's `in` tests see it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metadata<'a> {
    /// What the value was: an object (the normal case), or something else.
    pub shape: MetaShape<'a>,
    pub lag: Option<Scalar<'a>>,
    pub active_tasks: Option<Scalar<'a>>,
    pub churn_rate: Option<Scalar<'a>>,
    /// Every other key whose value is a number (`gc_pause_duration`,
    /// `kafka_lag`, …), for custom metrics.
    pub numbers: Vec<(Cow<'a, str>, Scalar<'a>)>,
}

/// The JSON type of `metadata`, with what `"lag" in metadata` needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum MetaShape<'a> {
    #[default]
    Object,
    /// A string: Python's `in` is a substring test.
    Str(Cow<'a, str>),
    /// An array: `in` is membership; `true` when it holds one of the three key names.
    Array(bool),
    /// null, a number or a boolean: `in` raises `TypeError`.
    Other(&'static str),
}

/// Bit flags naming the trace fields, for [`Scanner::wanted`] and
/// [`RawTrace::present`].
// The complete bit layout: some bits are only ever used through `ALL`.
#[allow(dead_code)]
pub mod field {
    pub const TRACE_ID: u32 = 1 << 0;
    pub const NAME: u32 = 1 << 1;
    pub const FILENAME: u32 = 1 << 2;
    pub const LINENO: u32 = 1 << 3;
    pub const MODULE: u32 = 1 << 4;
    pub const DURATION: u32 = 1 << 5;
    pub const CPU_TIME: u32 = 1 << 6;
    pub const WAIT_TIME: u32 = 1 << 7;
    pub const MEMORY: u32 = 1 << 8;
    pub const MEMORY_DIFF: u32 = 1 << 9;
    pub const ERROR: u32 = 1 << 10;
    pub const EXCEPTION_TYPE: u32 = 1 << 11;
    pub const EXCEPTION_MESSAGE: u32 = 1 << 12;
    pub const BRANCH_TAG: u32 = 1 << 13;
    pub const TIMESTAMP: u32 = 1 << 14;
    pub const ASYNC_OP: u32 = 1 << 15;
    pub const YIELD_COUNT: u32 = 1 << 16;
    pub const SYSTEM_METRIC: u32 = 1 << 17;
    pub const METADATA: u32 = 1 << 18;
    /// Every field.
    pub const ALL: u32 = (1 << 19) - 1;
    /// The fields pypss's score, the breakdowns and the reports read.
    pub const SCORING: u32 = NAME
        | MODULE
        | DURATION
        | WAIT_TIME
        | MEMORY
        | ERROR
        | EXCEPTION_TYPE
        | EXCEPTION_MESSAGE
        | BRANCH_TAG
        | TIMESTAMP
        | SYSTEM_METRIC
        | METADATA;
}

/// The members of one trace object that pss reads. Later duplicates win, as
/// with Python's `dict`.
#[derive(Debug, Default, Clone)]
pub struct RawTrace<'a> {
    pub trace_id: Option<Scalar<'a>>,
    pub name: Option<Scalar<'a>>,
    pub filename: Option<Scalar<'a>>,
    pub lineno: Option<Scalar<'a>>,
    pub module: Option<Scalar<'a>>,
    pub duration: Option<Scalar<'a>>,
    pub cpu_time: Option<Scalar<'a>>,
    pub wait_time: Option<Scalar<'a>>,
    pub memory: Option<Scalar<'a>>,
    pub memory_diff: Option<Scalar<'a>>,
    pub error: Option<Scalar<'a>>,
    pub exception_type: Option<Scalar<'a>>,
    pub exception_message: Option<Scalar<'a>>,
    pub branch_tag: Option<Scalar<'a>>,
    pub timestamp: Option<Scalar<'a>>,
    pub async_op: Option<Scalar<'a>>,
    pub yield_count: Option<Scalar<'a>>,
    pub system_metric: Option<Scalar<'a>>,
    pub metadata: Option<Metadata<'a>>,
    /// Number of members seen (pypss's fields and others).
    pub members: usize,
    /// Whether a `traces` member was seen (wrapper detection).
    pub has_traces_key: bool,
    /// Known fields seen, parsed or not ([`field`] bits).
    pub present: u32,
}

impl RawTrace<'_> {
    /// True when at least one pypss trace field is present.
    pub fn has_trace_field(&self) -> bool {
        self.present != 0
    }
}

/// Cursor over a buffer of JSON text.
pub struct Scanner<'a> {
    buf: &'a [u8],
    /// Current position in `buf`.
    pub pos: usize,
    /// True when `buf` holds the end of the input.
    eof: bool,
    /// Fields to parse ([`field`] bits); the others are only validated.
    wanted: u32,
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

impl<'a> Scanner<'a> {
    /// A scanner over `buf`; `eof` says whether input ends with it.
    pub fn new(buf: &'a [u8], eof: bool) -> Self {
        Scanner { buf, pos: 0, eof, wanted: field::ALL }
    }

    /// Parse only these fields ([`field`] bits); skip the values of others.
    pub fn with_wanted(mut self, wanted: u32) -> Self {
        self.wanted = wanted;
        self
    }

    /// The bytes from `from` to the cursor.
    pub fn slice(&self, from: usize) -> &'a [u8] {
        &self.buf[from..self.pos]
    }

    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> Res<T> {
        Err(ScanError::Syntax { pos, msg: msg.into() })
    }

    fn end<T>(&self, what: &str) -> Res<T> {
        if self.eof {
            self.err(self.pos, format!("unexpected end of input {what}"))
        } else {
            Err(ScanError::Incomplete)
        }
    }

    /// Skips JSON whitespace; returns the next byte without consuming it, or
    /// `None` at the end of the buffer (the caller decides what that means).
    #[inline]
    pub fn peek_non_ws(&mut self) -> Option<u8> {
        let buf = self.buf;
        // Most calls land on the next token directly.
        if let Some(&b) = buf.get(self.pos) {
            if b > b' ' {
                return Some(b);
            }
            // ": value" — a single space before the token.
            if b == b' ' {
                if let Some(&c) = buf.get(self.pos + 1) {
                    if c > b' ' {
                        self.pos += 1;
                        return Some(c);
                    }
                }
            }
        }
        loop {
            // Eight bytes at a time: indentation is runs of spaces.
            while self.pos + 8 <= buf.len() {
                let w = u64::from_le_bytes(buf[self.pos..self.pos + 8].try_into().expect("8 bytes"));
                let x = w ^ 0x2020_2020_2020_2020;
                if x == 0 {
                    self.pos += 8;
                    continue;
                }
                self.pos += (x.trailing_zeros() / 8) as usize;
                let b = buf[self.pos];
                if b > b' ' || !is_ws(b) {
                    return Some(b);
                }
                self.pos += 1;
            }
            let b = *buf.get(self.pos)?;
            if b > b' ' || !is_ws(b) {
                return Some(b);
            }
            self.pos += 1;
        }
    }

    /// True when only whitespace is left and the input has ended.
    pub fn at_eof(&mut self) -> Res<bool> {
        match self.peek_non_ws() {
            Some(_) => Ok(false),
            None if self.eof => Ok(true),
            None => Err(ScanError::Incomplete),
        }
    }

    /// Next non-whitespace byte, which must exist.
    #[inline]
    fn next_byte(&mut self, what: &str) -> Res<u8> {
        match self.peek_non_ws() {
            Some(b) => Ok(b),
            None => self.end(what),
        }
    }

    /// Consumes `b` (after whitespace) or fails with `msg`.
    pub fn expect(&mut self, b: u8, msg: &str) -> Res<()> {
        if self.buf.get(self.pos) == Some(&b) {
            self.pos += 1;
            return Ok(());
        }
        let got = self.next_byte(msg)?;
        if got == b {
            self.pos += 1;
            Ok(())
        } else {
            self.err(self.pos, format!("{msg}, found {}", describe_byte(got)))
        }
    }

    /// Parses a string starting at the opening quote.
    pub fn string(&mut self) -> Res<Cow<'a, str>> {
        debug_assert_eq!(self.buf[self.pos], b'"');
        let start = self.pos + 1;
        let buf = self.buf;
        // One pass: find the closing quote, and learn whether the text is
        // plain ASCII without escapes or control characters (the common case).
        let mut i = start;
        let mut ascii = true;
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        loop {
            // Eight bytes at a time: stop at the first quote, backslash,
            // control character or non-ASCII byte (SWAR: the lowest flagged
            // byte is always exact).
            while i + 8 <= buf.len() {
                let w = u64::from_le_bytes(buf[i..i + 8].try_into().expect("8 bytes"));
                let q = w ^ (ONES * b'"' as u64);
                let bs = w ^ (ONES * b'\\' as u64);
                let m = (q.wrapping_sub(ONES) & !q)
                    | (bs.wrapping_sub(ONES) & !bs)
                    | (w.wrapping_sub(ONES * 0x20) & !w)
                    | w;
                let m = m & HIGH;
                if m == 0 {
                    i += 8;
                } else {
                    i += (m.trailing_zeros() / 8) as usize;
                    break;
                }
            }
            if i >= buf.len() {
                break;
            }
            let b = buf[i];
            if b == b'"' {
                break;
            }
            if b == b'\\' {
                return self.string_slow(start);
            }
            if b < 0x20 {
                return self.err(i, "invalid control character in string");
            }
            ascii &= b < 0x80;
            i += 1;
        }
        if i >= buf.len() {
            return self.end("inside a string");
        }
        let raw = &buf[start..i];
        self.pos = i + 1;
        let s = if ascii {
            // SAFETY: every byte was checked to be ASCII just above.
            unsafe { std::str::from_utf8_unchecked(raw) }
        } else {
            std::str::from_utf8(raw).map_err(|e| ScanError::Syntax {
                pos: start + e.valid_up_to(),
                msg: "invalid UTF-8 in string".into(),
            })?
        };
        Ok(Cow::Borrowed(s))
    }

    fn check_raw(&self, start: usize, raw: &[u8]) -> Res<()> {
        if let Some(k) = raw.iter().position(|&b| b < 0x20) {
            return self.err(start + k, "invalid control character in string");
        }
        if let Err(e) = std::str::from_utf8(raw) {
            return self.err(start + e.valid_up_to(), "invalid UTF-8 in string");
        }
        Ok(())
    }

    fn string_slow(&mut self, start: usize) -> Res<Cow<'a, str>> {
        let mut out: Vec<u8> = Vec::new();
        let mut i = start;
        loop {
            let off = match memchr::memchr2(b'"', b'\\', &self.buf[i..]) {
                None => return self.end("inside a string"),
                Some(off) => off,
            };
            let j = i + off;
            self.check_raw(i, &self.buf[i..j])?;
            out.extend_from_slice(&self.buf[i..j]);
            if self.buf[j] == b'"' {
                self.pos = j + 1;
                return Ok(Cow::Owned(String::from_utf8(out).expect("validated")));
            }
            // Escape at j.
            if j + 1 >= self.buf.len() {
                return self.end("inside a string escape");
            }
            let e = self.buf[j + 1];
            let simple = match e {
                b'"' => Some(b'"'),
                b'\\' => Some(b'\\'),
                b'/' => Some(b'/'),
                b'b' => Some(8),
                b'f' => Some(12),
                b'n' => Some(b'\n'),
                b'r' => Some(b'\r'),
                b't' => Some(b'\t'),
                b'u' => None,
                _ => return self.err(j, "invalid escape in string"),
            };
            if let Some(c) = simple {
                out.push(c);
                i = j + 2;
                continue;
            }
            let cp = self.hex4(j + 2)?;
            let mut next = j + 6;
            let ch = if (0xD800..0xDC00).contains(&cp) {
                // A high surrogate: a low one should follow.
                if next + 6 <= self.buf.len() && self.buf[next] == b'\\' && self.buf[next + 1] == b'u' {
                    let lo = self.hex4(next + 2)?;
                    if (0xDC00..0xE000).contains(&lo) {
                        next += 6;
                        char::from_u32(0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00))
                    } else {
                        None
                    }
                } else if next + 6 > self.buf.len() && !self.eof {
                    return Err(ScanError::Incomplete);
                } else {
                    None
                }
            } else {
                char::from_u32(cp)
            };
            // Lone surrogates (valid in Python strings) become U+FFFD.
            let ch = ch.unwrap_or('\u{FFFD}');
            let mut tmp = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
            i = next;
        }
    }

    fn hex4(&self, at: usize) -> Res<u32> {
        if at + 4 > self.buf.len() {
            return self.end("inside a \\u escape");
        }
        let mut v = 0u32;
        for k in 0..4 {
            let d = match self.buf[at + k] {
                c @ b'0'..=b'9' => c - b'0',
                c @ b'a'..=b'f' => c - b'a' + 10,
                c @ b'A'..=b'F' => c - b'A' + 10,
                _ => return self.err(at + k, "invalid \\u escape"),
            };
            v = v * 16 + d as u32;
        }
        Ok(v)
    }

    /// Skips a string (still validated).
    fn skip_string(&mut self) -> Res<()> {
        self.string().map(|_| ())
    }

    fn literal(&mut self, word: &[u8]) -> Res<()> {
        let end = self.pos + word.len();
        let avail = &self.buf[self.pos..self.buf.len().min(end)];
        if !word.starts_with(avail) {
            return self.err(self.pos, "invalid literal");
        }
        if avail.len() < word.len() {
            return self.end("inside a literal");
        }
        self.pos = end;
        Ok(())
    }

    /// Parses a number (or `NaN`/`Infinity`/`-Infinity`) at the cursor.
    fn number(&mut self) -> Res<Scalar<'a>> {
        self.number_token(true)
    }

    /// Scans a number; converts a float literal only when `parse` is set.
    fn number_token(&mut self, parse: bool) -> Res<Scalar<'a>> {
        let start = self.pos;
        let b = self.buf;
        let mut i = start;
        if i < b.len() && b[i] == b'-' {
            i += 1;
            if i < b.len() && b[i] == b'I' {
                self.pos = i;
                self.literal(b"Infinity")?;
                return Ok(Scalar::Float(f64::NEG_INFINITY));
            }
        }
        let digits = |i: &mut usize| {
            let s = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            *i - s
        };
        if i >= b.len() {
            return self.end("inside a number");
        }
        if b[i] == b'0' {
            i += 1;
        } else if b[i].is_ascii_digit() {
            digits(&mut i);
        } else {
            return self.err(i, "invalid number");
        }
        let mut is_float = false;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            if digits(&mut i) == 0 {
                if i >= b.len() {
                    return self.end("inside a number");
                }
                return self.err(i, "invalid number: digits expected after '.'");
            }
            is_float = true;
        }
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            i += 1;
            if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                i += 1;
            }
            if digits(&mut i) == 0 {
                if i >= b.len() {
                    return self.end("inside a number");
                }
                return self.err(i, "invalid number: digits expected in exponent");
            }
            is_float = true;
        }
        if i >= b.len() && !self.eof {
            // The number may go on in the next chunk.
            return Err(ScanError::Incomplete);
        }
        self.pos = i;
        // SAFETY: the grammar checked above admits only ASCII bytes.
        let text = unsafe { std::str::from_utf8_unchecked(&b[start..i]) };
        if is_float && !parse {
            Ok(Scalar::Float(0.0))
        } else if is_float {
            // Rust's parser is correctly rounded, like Python's; overflow gives inf.
            Ok(Scalar::Float(text.parse::<f64>().expect("validated number")))
        } else {
            Ok(Scalar::Int(text))
        }
    }

    /// Parses any value into a [`Scalar`], skipping the inside of arrays and objects.
    pub fn scalar(&mut self, depth: usize) -> Res<Scalar<'a>> {
        let b = self.next_byte("where a value was expected")?;
        match b {
            b'"' => Ok(Scalar::Str(self.string()?)),
            b'{' => Ok(Scalar::Object(self.skip_container(depth)?)),
            b'[' => Ok(Scalar::Array(self.skip_container(depth)?)),
            b't' => self.literal(b"true").map(|_| Scalar::Bool(true)),
            b'f' => self.literal(b"false").map(|_| Scalar::Bool(false)),
            b'n' => self.literal(b"null").map(|_| Scalar::Null),
            b'N' => self.literal(b"NaN").map(|_| Scalar::Float(f64::NAN)),
            b'I' => self.literal(b"Infinity").map(|_| Scalar::Float(f64::INFINITY)),
            b'-' | b'0'..=b'9' => self.number(),
            other => self.err(self.pos, format!("expected a value, found {}", describe_byte(other))),
        }
    }

    /// Skips any value.
    pub fn skip_value(&mut self, depth: usize) -> Res<()> {
        let b = self.next_byte("where a value was expected")?;
        match b {
            b'"' => self.skip_string(),
            b'{' | b'[' => self.skip_container(depth).map(|_| ()),
            b'-' | b'0'..=b'9' => self.number_token(false).map(|_| ()),
            _ => self.scalar(depth).map(|_| ()),
        }
    }

    /// Skips an array or object at the cursor; returns whether it had members.
    fn skip_container(&mut self, depth: usize) -> Res<bool> {
        if depth >= MAX_DEPTH {
            return self.err(self.pos, format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        let open = self.buf[self.pos];
        let close = if open == b'{' { b'}' } else { b']' };
        self.pos += 1;
        if self.next_byte("inside an array or object")? == close {
            self.pos += 1;
            return Ok(false);
        }
        loop {
            if open == b'{' {
                if self.next_byte("where a key was expected")? != b'"' {
                    return self.err(self.pos, "expected a string key");
                }
                self.skip_string()?;
                self.expect(b':', "expected ':' after an object key")?;
            }
            self.skip_value(depth + 1)?;
            match self.next_byte("inside an array or object")? {
                b',' => {
                    self.pos += 1;
                    // Python rejects trailing commas.
                    if self.next_byte("after ','")? == close {
                        return self.err(self.pos, "trailing comma");
                    }
                }
                c if c == close => {
                    self.pos += 1;
                    return Ok(true);
                }
                other => {
                    let what = if open == b'{' { "',' or '}'" } else { "',' or ']'" };
                    return self.err(self.pos, format!("expected {what}, found {}", describe_byte(other)));
                }
            }
        }
    }

    /// Parses one stream element (a trace object, or a value pypss would
    /// skip) into `t`, which must be empty; returns
    /// `Ok(None)` for a trace object, or the JSON type of a non-object.
    pub fn element_into(&mut self, t: &mut RawTrace<'a>) -> Res<Option<&'static str>> {
        let b = self.next_byte("where a trace was expected")?;
        if b == b'{' {
            self.object_members(t)?;
            Ok(None)
        } else {
            Ok(Some(self.scalar(1)?.kind()))
        }
    }

    /// Parses the members of the object at the cursor into `t`.
    pub fn object_members(&mut self, t: &mut RawTrace<'a>) -> Res<()> {
        self.pos += 1; // '{'
        if self.next_byte("inside an object")? == b'}' {
            self.pos += 1;
            return Ok(());
        }
        // pypss writes the fields in one order: try the next one first and
        // compare its quoted name directly, before scanning a string.
        let mut next = 0usize;
        loop {
            if self.next_byte("where a key was expected")? != b'"' {
                return self.err(self.pos, "expected a string key");
            }
            let predicted = QUOTED_FIELD_NAMES.get(next).filter(|q| starts_with(&self.buf[self.pos..], q));
            let (idx, key) = match predicted {
                Some(q) => {
                    self.pos += q.len();
                    (Some(next), Cow::Borrowed(FIELD_NAMES[next]))
                }
                None => {
                    let key = self.string()?;
                    (field_index(key.as_bytes()), key)
                }
            };
            if let Some(i) = idx {
                next = i + 1;
            }
            self.expect(b':', "expected ':' after an object key")?;
            self.member_at(t, idx, key)?;
            match self.next_byte("inside an object")? {
                b',' => {
                    self.pos += 1;
                    if self.next_byte("after ','")? == b'}' {
                        return self.err(self.pos, "trailing comma");
                    }
                }
                b'}' => {
                    self.pos += 1;
                    return Ok(());
                }
                other => return self.err(self.pos, format!("expected ',' or '}}', found {}", describe_byte(other))),
            }
        }
    }

    /// Parses one member value whose key is field `idx` of [`FIELD_NAMES`]
    /// (`None`: not a trace field).
    fn member_at(&mut self, t: &mut RawTrace<'a>, idx: Option<usize>, key: Cow<'a, str>) -> Res<()> {
        t.members += 1;
        let Some(i) = idx else {
            if key == "traces" {
                t.has_traces_key = true;
            }
            self.next_byte("where a value was expected")?;
            return self.skip_value(1);
        };
        let bit = 1u32 << i;
        t.present |= bit;
        if self.wanted & bit == 0 {
            return self.skip_value(1);
        }
        let slot = match i {
            0 => &mut t.trace_id,
            1 => &mut t.name,
            2 => &mut t.filename,
            3 => &mut t.lineno,
            4 => &mut t.module,
            5 => &mut t.duration,
            6 => &mut t.cpu_time,
            7 => &mut t.wait_time,
            8 => &mut t.memory,
            9 => &mut t.memory_diff,
            10 => &mut t.error,
            11 => &mut t.exception_type,
            12 => &mut t.exception_message,
            13 => &mut t.branch_tag,
            14 => &mut t.timestamp,
            15 => &mut t.async_op,
            16 => &mut t.yield_count,
            17 => &mut t.system_metric,
            _ => {
                t.metadata = Some(self.metadata()?);
                return Ok(());
            }
        };
        *slot = Some(self.scalar(1)?);
        Ok(())
    }

    fn metadata(&mut self) -> Res<Metadata<'a>> {
        let b = self.next_byte("where a value was expected")?;
        let mut m = Metadata::default();
        match b {
            b'{' => {
                self.pos += 1;
                if self.next_byte("inside an object")? == b'}' {
                    self.pos += 1;
                    return Ok(m);
                }
                loop {
                    if self.next_byte("where a key was expected")? != b'"' {
                        return self.err(self.pos, "expected a string key");
                    }
                    let key = self.string()?;
                    self.expect(b':', "expected ':' after an object key")?;
                    match key.as_ref() {
                        "lag" => m.lag = Some(self.scalar(2)?),
                        "active_tasks" => m.active_tasks = Some(self.scalar(2)?),
                        "churn_rate" => m.churn_rate = Some(self.scalar(2)?),
                        _ => {
                            if let v @ (Scalar::Int(_) | Scalar::Float(_)) = self.scalar(2)? {
                                m.numbers.push((key, v));
                            }
                        }
                    }
                    match self.next_byte("inside an object")? {
                        b',' => {
                            self.pos += 1;
                            if self.next_byte("after ','")? == b'}' {
                                return self.err(self.pos, "trailing comma");
                            }
                        }
                        b'}' => {
                            self.pos += 1;
                            return Ok(m);
                        }
                        other => {
                            return self.err(self.pos, format!("expected ',' or '}}', found {}", describe_byte(other)))
                        }
                    }
                }
            }
            b'"' => {
                m.shape = MetaShape::Str(self.string()?);
                Ok(m)
            }
            b'[' => {
                // Membership test: does the array hold "lag" etc. as strings?
                self.pos += 1;
                let mut has = false;
                if self.next_byte("inside an array")? == b']' {
                    self.pos += 1;
                    m.shape = MetaShape::Array(false);
                    return Ok(m);
                }
                loop {
                    if let Scalar::Str(s) = self.scalar(2)? {
                        if matches!(s.as_ref(), "lag" | "active_tasks" | "churn_rate") {
                            has = true;
                        }
                    }
                    match self.next_byte("inside an array")? {
                        b',' => {
                            self.pos += 1;
                            if self.next_byte("after ','")? == b']' {
                                return self.err(self.pos, "trailing comma");
                            }
                        }
                        b']' => {
                            self.pos += 1;
                            m.shape = MetaShape::Array(has);
                            return Ok(m);
                        }
                        other => {
                            return self.err(self.pos, format!("expected ',' or ']', found {}", describe_byte(other)))
                        }
                    }
                }
            }
            _ => {
                let s = self.scalar(1)?;
                m.shape = MetaShape::Other(s.kind());
                Ok(m)
            }
        }
    }
}

/// The trace fields, in the order pypss writes them (and of [`field`] bits).
pub const FIELD_NAMES: [&str; 19] = [
    "trace_id",
    "name",
    "filename",
    "lineno",
    "module",
    "duration",
    "cpu_time",
    "wait_time",
    "memory",
    "memory_diff",
    "error",
    "exception_type",
    "exception_message",
    "branch_tag",
    "timestamp",
    "async_op",
    "yield_count",
    "system_metric",
    "metadata",
];

const QUOTED_FIELD_NAMES: [&[u8]; 19] = [
    b"\"trace_id\"",
    b"\"name\"",
    b"\"filename\"",
    b"\"lineno\"",
    b"\"module\"",
    b"\"duration\"",
    b"\"cpu_time\"",
    b"\"wait_time\"",
    b"\"memory\"",
    b"\"memory_diff\"",
    b"\"error\"",
    b"\"exception_type\"",
    b"\"exception_message\"",
    b"\"branch_tag\"",
    b"\"timestamp\"",
    b"\"async_op\"",
    b"\"yield_count\"",
    b"\"system_metric\"",
    b"\"metadata\"",
];

/// `hay.starts_with(needle)` for short needles, with word compares instead
/// of a `memcmp` call.
#[inline]
fn starts_with(hay: &[u8], needle: &[u8]) -> bool {
    if hay.len() < needle.len() {
        return false;
    }
    let n = needle.len();
    let load = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let mut i = 0;
    while i + 8 <= n {
        if load(hay, i) != load(needle, i) {
            return false;
        }
        i += 8;
    }
    while i < n {
        if hay[i] != needle[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The index in [`FIELD_NAMES`] of a key: length and first byte pick the
/// candidate, one comparison confirms it.
pub fn field_index(k: &[u8]) -> Option<usize> {
    let i = match (k.len(), *k.first()?) {
        (8, b't') => 0,
        (4, b'n') => 1,
        (8, b'f') => 2,
        (6, b'l') => 3,
        (6, b'm') if k[1] == b'o' => 4,
        (8, b'd') => 5,
        (8, b'c') => 6,
        (9, b'w') => 7,
        (6, b'm') => 8,
        (11, b'm') => 9,
        (5, b'e') => 10,
        (14, b'e') => 11,
        (17, b'e') => 12,
        (10, b'b') => 13,
        (9, b't') => 14,
        (8, b'a') => 15,
        (11, b'y') => 16,
        (13, b's') => 17,
        (8, b'm') => 18,
        _ => return None,
    };
    (FIELD_NAMES[i].as_bytes() == k).then_some(i)
}

/// Names a byte for an error message.
pub fn describe_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(text: &str) -> RawTrace<'_> {
        let mut sc = Scanner::new(text.as_bytes(), true);
        let mut t = RawTrace::default();
        assert_eq!(sc.element_into(&mut t).unwrap(), None, "not a trace");
        t
    }

    #[test]
    fn reads_known_fields_and_python_literals() {
        let t = trace(
            r#"{"name":"f\u00e9","duration":NaN,"memory":-Infinity,"wait_time":1e400,"lineno":12,"x":[1,{"a":2}]}"#,
        );
        assert_eq!(t.name, Some(Scalar::Str(Cow::Owned("fé".into()))));
        assert!(matches!(t.duration, Some(Scalar::Float(f)) if f.is_nan()));
        assert_eq!(t.memory, Some(Scalar::Float(f64::NEG_INFINITY)));
        assert_eq!(t.wait_time, Some(Scalar::Float(f64::INFINITY)));
        assert_eq!(t.lineno, Some(Scalar::Int("12")));
        assert_eq!(t.members, 6);
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let t = trace(r#"{"duration": 1, "duration": 2.5}"#);
        assert_eq!(t.duration, Some(Scalar::Float(2.5)));
    }

    #[test]
    fn incomplete_is_not_an_error() {
        for cut in 1..30 {
            let text = br#"{"duration": 12.5, "name": "abc"}"#;
            let mut sc = Scanner::new(&text[..cut], false);
            let mut t = RawTrace::default();
            assert_eq!(sc.element_into(&mut t).unwrap_err(), ScanError::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn syntax_errors_carry_positions() {
        for bad in [r#"{"a":1,}"#, r#"{"a" 1}"#, r#"{"a":01}"#, "{\"a\":\"x\u{1}\"}", r#"{"a":tru}"#] {
            let mut sc = Scanner::new(bad.as_bytes(), true);
            let mut t = RawTrace::default();
            assert!(matches!(sc.element_into(&mut t), Err(ScanError::Syntax { .. })), "{bad}");
        }
        let deep = "[".repeat(MAX_DEPTH + 5);
        let mut sc = Scanner::new(deep.as_bytes(), true);
        assert!(matches!(sc.skip_value(0), Err(ScanError::Syntax { .. })));
    }

    #[test]
    fn truthiness_matches_python() {
        assert!(!Scalar::Int("0").truthy());
        assert!(!Scalar::Int("-0").truthy());
        assert!(Scalar::Int("10").truthy());
        assert!(Scalar::Float(f64::NAN).truthy());
        assert!(!Scalar::Float(-0.0).truthy());
        assert!(Scalar::Str(Cow::Borrowed("false")).truthy());
        assert!(!Scalar::Array(false).truthy());
    }

    #[test]
    fn metadata_shapes() {
        let t = trace(r#"{"system_metric":true,"metadata":{"lag":0.02,"other":[1]}}"#);
        let m = t.metadata.unwrap();
        assert_eq!(m.shape, MetaShape::Object);
        assert_eq!(m.lag, Some(Scalar::Float(0.02)));
        let t = trace(r#"{"metadata":"flag"}"#);
        assert_eq!(t.metadata.unwrap().shape, MetaShape::Str(Cow::Borrowed("flag")));
        let t = trace(r#"{"metadata":null}"#);
        assert_eq!(t.metadata.unwrap().shape, MetaShape::Other("null"));
    }
}
