//! The columnar batch that scoring consumes, filled trace by trace with
//! exactly the semantics of pypss 1.3.1's `compute_pss_from_traces` loop.

use rustc_hash::FxHashMap;
use serde::Serialize;

use super::json::{MetaShape, RawTrace, Scalar};
use crate::pystats::{py_float_from_str, Num};

/// Marks "no value" in an interned column.
pub const NONE: u32 = u32::MAX;

/// Strings stored once, referred to by index (module, name, tag columns).
#[derive(Debug, Default, Clone)]
pub struct Interner {
    ids: FxHashMap<Box<str>, u32>,
    values: Vec<Box<str>>,
}

impl Interner {
    /// The id of `s`, adding it on first sight (ids follow first appearance,
    /// like the insertion order of a Python dict or `Counter`).
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    /// The string of an id.
    pub fn get(&self, id: u32) -> &str {
        &self.values[id as usize]
    }

    /// How many distinct strings there are.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// How far pypss got through a trace before a value failed to convert.
/// pypss appends to its lists one at a time, so a trace whose `memory` cannot
/// be converted still contributes its `duration`. pss reproduces that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Stage {
    /// Counted, nothing appended (`duration` failed).
    Counted = 0,
    /// `duration` appended (`memory` failed).
    Duration = 1,
    /// `duration` and `memory` appended (`wait_time` failed).
    Memory = 2,
    /// Complete.
    Complete = 3,
}

/// Traces pss read but left out of the score, by reason. Never silent: the
/// total is printed and is the JSON report's `skipped` key.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Skipped {
    /// Array or line elements that are not JSON objects (pypss skips them).
    pub not_object: u64,
    /// A value pypss's `float()` cannot convert (null, text, list…); pypss
    /// skips the rest of the trace after appending the values before it.
    pub unconvertible: u64,
    /// `inf`, `-inf` or `NaN` (including `1e400`): pypss crashes or silently
    /// mis-scores; pss leaves the whole trace out.
    pub non_finite: u64,
    /// A system trace whose `metadata` pypss cannot read (`null`, a number,
    /// a string or list mentioning `lag`…).
    pub bad_metadata: u64,
    /// A system trace whose `lag` is not a number (pypss crashes).
    pub bad_lag: u64,
}

impl Skipped {
    /// All skipped traces.
    pub fn total(&self) -> u64 {
        self.not_object + self.unconvertible + self.non_finite + self.bad_metadata + self.bad_lag
    }

    /// Adds another file's counts.
    pub fn add(&mut self, o: &Skipped) {
        self.not_object += o.not_object;
        self.unconvertible += o.unconvertible;
        self.non_finite += o.non_finite;
        self.bad_metadata += o.bad_metadata;
        self.bad_lag += o.bad_lag;
    }

    /// "3 not objects, 1 unconvertible value" — the non-zero reasons.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            (self.not_object, "not a JSON object"),
            (self.unconvertible, "value not convertible to a number"),
            (self.non_finite, "inf/NaN value"),
            (self.bad_metadata, "unreadable system metadata"),
            (self.bad_lag, "non-numeric lag"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        parts.join(", ")
    }
}

/// Why a value did not convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvError {
    /// Python raises (TypeError, ValueError, OverflowError).
    Unconvertible,
}

/// Python's `float(value)` for a JSON value. Non-finite results are returned
/// as such; the caller decides.
pub fn py_float(s: &Scalar<'_>) -> Result<f64, ConvError> {
    match s {
        Scalar::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Scalar::Int(t) => {
            // Up to 15 digits: exact in a u64 and in an f64, no float parser needed.
            let (neg, digits) = match t.as_bytes() {
                [b'-', rest @ ..] => (true, rest),
                all => (false, all),
            };
            if !digits.is_empty() && digits.len() <= 15 {
                let mut v = 0u64;
                for &d in digits {
                    v = v * 10 + (d - b'0') as u64;
                }
                let v = v as f64;
                return Ok(if neg && v != 0.0 { -v } else { v });
            }
            let v: f64 = t.parse().map_err(|_| ConvError::Unconvertible)?;
            if v.is_infinite() {
                Err(ConvError::Unconvertible) // OverflowError: int too large
            } else if v == 0.0 {
                Ok(0.0) // Python ints have no negative zero
            } else {
                Ok(v)
            }
        }
        Scalar::Float(f) => Ok(*f),
        Scalar::Str(t) => py_float_from_str(t).ok_or(ConvError::Unconvertible),
        Scalar::Null | Scalar::Array(_) | Scalar::Object(_) => Err(ConvError::Unconvertible),
    }
}

/// A numeric JSON value as Python's `sum()` sees it; `None` if not numeric.
fn py_number(s: &Scalar<'_>) -> Option<Num> {
    match s {
        Scalar::Bool(b) => Some(Num::Int(*b as i64)),
        Scalar::Int(t) => t.parse::<i64>().ok().map(Num::Int),
        Scalar::Float(f) => Some(Num::Float(*f)),
        _ => None,
    }
}

/// A grouping key as Python would print it (`module`, `name`).
fn key_text(s: &Scalar<'_>) -> String {
    match s {
        Scalar::Str(t) => t.to_string(),
        Scalar::Null => "None".into(),
        Scalar::Bool(true) => "True".into(),
        Scalar::Bool(false) => "False".into(),
        Scalar::Int(t) => t.to_string(),
        Scalar::Float(f) => format!("{f:?}"),
        Scalar::Array(_) => "[...]".into(),
        Scalar::Object(_) => "{...}".into(),
    }
}

/// Trace data in columns. Rows are the non-system traces pypss counts, in
/// input order; system traces (event-loop metrics) have their own columns.
#[derive(Debug, Default, Clone)]
pub struct TraceColumns {
    pub duration: Vec<f64>,
    pub memory: Vec<f64>,
    pub wait_time: Vec<f64>,
    pub error: Vec<bool>,
    /// Interned non-empty string `branch_tag`, or [`NONE`].
    pub branch_tag: Vec<u32>,
    pub stage: Vec<Stage>,
    pub module: Vec<u32>,
    pub name: Vec<u32>,
    /// Epoch seconds, NaN when missing.
    pub timestamp: Vec<f64>,
    /// `memory_diff` (0 when missing or unconvertible), when kept.
    pub memory_diff: Vec<f64>,
    /// Error traces per interned `exception_type`.
    pub exception_counts: Vec<u64>,

    pub sys_module: Vec<u32>,
    /// `metadata.lag`, when the key is present.
    pub sys_lag: Vec<Option<Num>>,
    /// The other numeric `metadata` members of each system trace (custom
    /// metrics read them: `gc_pause_duration`, `kafka_lag`, …).
    pub sys_meta: Vec<Vec<(Box<str>, f64)>>,
    pub sys_timestamp: Vec<f64>,

    pub tags: Interner,
    pub modules: Interner,
    pub names: Interner,
    pub exception_types: Interner,
    /// First message seen for each exception type (at most 300 characters).
    pub exception_examples: Vec<String>,

    pub skipped: Skipped,
    /// Rows without a memory or wait_time reading.
    pub unmeasured: Unmeasured,
    /// Unknown module name from config (`discovery_unknown_module_name`).
    pub unknown_module: String,
    /// True when every row is [`Stage::Complete`].
    pub all_complete: bool,
    /// Which optional columns are kept.
    pub keep: ColumnOptions,
    checkpoint: (usize, usize, Vec<u64>, Unmeasured),
}

/// Optional columns: leaving out what a command does not need keeps a
/// million-trace read small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnOptions {
    /// Keep `timestamp` (charts, windows).
    pub timestamps: bool,
    /// Keep `name` (breakdown by function).
    pub names: bool,
    /// Keep `memory_diff` (trace-level anomaly features).
    pub memory_diff: bool,
}

impl Default for ColumnOptions {
    fn default() -> Self {
        ColumnOptions { timestamps: true, names: true, memory_diff: false }
    }
}

impl TraceColumns {
    /// Empty columns; `unknown_module` names traces without a `module`.
    pub fn new(unknown_module: &str) -> Self {
        Self::with_options(unknown_module, ColumnOptions::default())
    }

    /// Empty columns keeping only the optional columns asked for.
    pub fn with_options(unknown_module: &str, keep: ColumnOptions) -> Self {
        TraceColumns { unknown_module: unknown_module.to_string(), all_complete: true, keep, ..Default::default() }
    }

    /// Non-system traces counted (pypss's `count`).
    pub fn len(&self) -> usize {
        self.stage.len()
    }

    /// True when there are no rows and no system traces.
    pub fn is_empty(&self) -> bool {
        self.stage.is_empty() && self.sys_module.is_empty()
    }

    /// Number of traces kept, system traces included.
    pub fn traces(&self) -> usize {
        self.stage.len() + self.sys_module.len()
    }

    /// Makes room for `additional` more rows (avoids regrowth copies on
    /// large files).
    pub fn reserve(&mut self, additional: usize) {
        self.duration.reserve(additional);
        self.memory.reserve(additional);
        self.wait_time.reserve(additional);
        self.error.reserve(additional);
        self.branch_tag.reserve(additional);
        self.stage.reserve(additional);
        self.module.reserve(additional);
        if self.keep.names {
            self.name.reserve(additional);
        }
        if self.keep.timestamps {
            self.timestamp.reserve(additional);
        }
    }

    /// Marks the start of a new source: [`reset`](Self::reset) goes back here.
    pub fn begin_source(&mut self) {
        self.checkpoint = (self.stage.len(), self.sys_module.len(), self.exception_counts.clone(), self.unmeasured);
    }

    /// Forgets the rows of the current source (a later `traces` key replaces
    /// an earlier one, as in a Python dict). Skip counts are kept.
    pub fn reset(&mut self) {
        let (r, s, ref counts, unmeasured) = self.checkpoint;
        self.exception_counts.clone_from(counts);
        self.unmeasured = unmeasured;
        self.exception_counts.resize(self.exception_types.len(), 0);
        self.duration.truncate(r);
        self.memory.truncate(r);
        self.wait_time.truncate(r);
        self.error.truncate(r);
        self.branch_tag.truncate(r);
        self.stage.truncate(r);
        self.module.truncate(r);
        self.name.truncate(r);
        self.timestamp.truncate(r);
        self.memory_diff.truncate(r);
        self.sys_module.truncate(s);
        self.sys_lag.truncate(s);
        self.sys_meta.truncate(s);
        self.sys_timestamp.truncate(s);
        self.all_complete = self.stage.iter().all(|&st| st == Stage::Complete);
    }

    fn group(&mut self, which: &Option<Scalar<'_>>, names: bool) -> u32 {
        let text = match which {
            None => self.unknown_module.clone(),
            Some(Scalar::Str(s)) => {
                let i = if names { &mut self.names } else { &mut self.modules };
                return i.intern(s);
            }
            Some(s) => key_text(s),
        };
        if names {
            self.names.intern(&text)
        } else {
            self.modules.intern(&text)
        }
    }

    /// Appends `other` (read from later input) after these rows, as if the
    /// traces had been pushed here: interned ids are remapped in `other`'s
    /// first-appearance order.
    pub fn absorb(&mut self, other: TraceColumns) {
        fn remap(into: &mut Interner, from: &Interner) -> Vec<u32> {
            (0..from.len() as u32).map(|i| into.intern(from.get(i))).collect()
        }
        let m = remap(&mut self.modules, &other.modules);
        let n = remap(&mut self.names, &other.names);
        let t = remap(&mut self.tags, &other.tags);
        let before = self.exception_types.len();
        let e = remap(&mut self.exception_types, &other.exception_types);
        self.exception_counts.resize(self.exception_types.len(), 0);
        for (i, &id) in e.iter().enumerate() {
            if id as usize >= before && id as usize == self.exception_examples.len() {
                self.exception_examples.push(other.exception_examples.get(i).cloned().unwrap_or_default());
            }
            self.exception_counts[id as usize] += other.exception_counts.get(i).copied().unwrap_or(0);
        }
        let map = |ids: &[u32], v: &[u32]| -> Vec<u32> {
            v.iter().map(|&x| if x == NONE { NONE } else { ids[x as usize] }).collect()
        };
        self.duration.extend_from_slice(&other.duration);
        self.memory.extend_from_slice(&other.memory);
        self.wait_time.extend_from_slice(&other.wait_time);
        self.error.extend_from_slice(&other.error);
        self.branch_tag.extend(map(&t, &other.branch_tag));
        self.stage.extend_from_slice(&other.stage);
        self.module.extend(map(&m, &other.module));
        self.name.extend(map(&n, &other.name));
        self.timestamp.extend_from_slice(&other.timestamp);
        self.memory_diff.extend_from_slice(&other.memory_diff);
        self.sys_module.extend(map(&m, &other.sys_module));
        self.sys_lag.extend_from_slice(&other.sys_lag);
        self.sys_meta.extend(other.sys_meta);
        self.sys_timestamp.extend_from_slice(&other.sys_timestamp);
        self.skipped.add(&other.skipped);
        self.unmeasured.memory += other.unmeasured.memory;
        self.unmeasured.wait_time += other.unmeasured.wait_time;
        self.all_complete &= other.all_complete;
    }

    /// A stream element that is not an object.
    pub fn push_not_object(&mut self) {
        self.skipped.not_object += 1;
    }

    /// Adds one trace, as pypss's loop body does.
    pub fn push(&mut self, t: &RawTrace<'_>) {
        match classify(t) {
            Classified::Skip(reason) => self.skipped.count(reason),
            Classified::System { lag, timestamp } => {
                let module = self.group(&t.module, false);
                self.push_system_values(module, lag, timestamp);
                if let (Some(m), Some(last)) = (&t.metadata, self.sys_meta.last_mut()) {
                    *last = metadata_numbers(m);
                }
            }
            Classified::Row(r) => {
                let module = self.group(&t.module, false);
                let name = if self.keep.names { self.group(&t.name, true) } else { NONE };
                if self.keep.memory_diff {
                    let md = t.memory_diff.as_ref().and_then(|v| py_float(v).ok()).filter(|v| v.is_finite());
                    self.memory_diff.push(md.unwrap_or(0.0));
                }
                self.unmeasured.note(t.memory.is_none(), t.wait_time.is_none());
                self.push_row_values(&r, module, name);
            }
        }
    }

    /// Adds a classified row with its interned module and name.
    pub fn push_row_values(&mut self, r: &Row<'_>, module: u32, name: u32) {
        if r.stage != Stage::Complete {
            self.skipped.unconvertible += 1;
            self.all_complete = false;
        }
        let tag = match r.branch_tag {
            Some(s) => self.tags.intern(s),
            None => NONE,
        };
        if let Some(s) = r.exception_type {
            let id = self.exception_types.intern(s) as usize;
            if id == self.exception_examples.len() {
                self.exception_examples.push(r.exception_message.unwrap_or("").chars().take(300).collect());
                self.exception_counts.push(0);
            }
            self.exception_counts[id] += 1;
        }
        self.duration.push(r.values[0]);
        self.memory.push(r.values[1]);
        self.wait_time.push(r.values[2]);
        self.error.push(r.error);
        self.branch_tag.push(tag);
        self.stage.push(r.stage);
        self.module.push(module);
        if self.keep.names {
            self.name.push(name);
        }
        if self.keep.timestamps {
            self.timestamp.push(r.timestamp);
        }
    }

    /// Adds a system trace with its interned module.
    pub fn push_system_values(&mut self, module: u32, lag: Option<Num>, timestamp: f64) {
        self.sys_module.push(module);
        self.sys_lag.push(lag);
        self.sys_meta.push(Vec::new());
        if self.keep.timestamps {
            self.sys_timestamp.push(timestamp);
        }
    }

    /// Interns a module name (for rows built outside [`push`](Self::push)).
    pub fn intern_module(&mut self, m: &str) -> u32 {
        self.modules.intern(m)
    }

    /// Interns a function name (for rows built outside [`push`](Self::push)).
    pub fn intern_name(&mut self, n: &str) -> u32 {
        self.names.intern(n)
    }
}

/// Why a trace was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    NotObject,
    NonFinite,
    BadMetadata,
    BadLag,
}

impl Skipped {
    /// Counts one skipped trace.
    pub fn count(&mut self, r: SkipReason) {
        match r {
            SkipReason::NotObject => self.not_object += 1,
            SkipReason::NonFinite => self.non_finite += 1,
            SkipReason::BadMetadata => self.bad_metadata += 1,
            SkipReason::BadLag => self.bad_lag += 1,
        }
    }
}

/// A system trace's other numeric `metadata` members (finite, as `float()`
/// reads them): what custom metrics read, from a file or the store.
pub fn metadata_numbers(m: &super::json::Metadata<'_>) -> Vec<(Box<str>, f64)> {
    m.numbers
        .iter()
        .filter_map(|(k, v)| py_float(v).ok().filter(|f| f.is_finite()).map(|f| (Box::from(k.as_ref()), f)))
        .collect()
}

/// Rows that carry no `memory` or no `wait_time` key (traces from
/// OpenTelemetry spans without the attributes, or a client that does not
/// measure them). pypss counts a missing reading as 0, and so does pss; a
/// report says how many there were, so a perfect Memory Stability or
/// Concurrency Chaos is not mistaken for a measured one.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Unmeasured {
    pub memory: u64,
    pub wait_time: u64,
}

impl Unmeasured {
    /// Counts one row's missing readings.
    pub fn note(&mut self, memory: bool, wait_time: bool) {
        self.memory += u64::from(memory);
        self.wait_time += u64::from(wait_time);
    }

    /// A sentence for reports, when some of `rows` lacked a reading.
    pub fn describe(&self, rows: usize) -> Option<String> {
        let part = |n: u64, field: &str, score: &str| -> Option<String> {
            (n > 0).then(|| {
                if n as usize >= rows {
                    format!("{field} on none of the {rows} traces ({score} is 1.0 by construction, not measured)")
                } else {
                    format!("{field} missing on {n} of {rows} traces (counted as 0 in {score}, as pypss does)")
                }
            })
        };
        let parts: Vec<String> =
            [part(self.memory, "memory", "Memory Stability"), part(self.wait_time, "wait_time", "Concurrency Chaos")]
                .into_iter()
                .flatten()
                .collect();
        (!parts.is_empty()).then(|| format!("Not measured: {}.", parts.join("; ")))
    }
}

/// A regular trace as pypss's loop sees it, after `float()` conversions.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'a> {
    /// duration, memory, wait_time (0.0 past `stage`).
    pub values: [f64; 3],
    pub stage: Stage,
    /// Truthy `error` (only for complete rows, as pypss appends it last).
    pub error: bool,
    /// Non-empty string tag of a complete row.
    pub branch_tag: Option<&'a str>,
    /// Non-empty exception type of an error row, with its message.
    pub exception_type: Option<&'a str>,
    pub exception_message: Option<&'a str>,
    /// Epoch seconds, NaN when missing or unconvertible.
    pub timestamp: f64,
}

/// What pypss's loop does with one trace.
#[derive(Debug, Clone, PartialEq)]
pub enum Classified<'a> {
    Skip(SkipReason),
    System { lag: Option<Num>, timestamp: f64 },
    Row(Row<'a>),
}

/// Applies pypss 1.3.1's per-trace rules: system trace or not, `float()` of
/// duration, memory and wait_time in that order (a failure keeps the values
/// before it, as pypss's one-list-at-a-time appends do), truthiness of
/// `error`, non-empty string tags; non-finite values and unreadable system
/// metadata are skipped (where pypss crashes or mis-scores).
pub fn classify<'a>(t: &'a RawTrace<'_>) -> Classified<'a> {
    let timestamp = t.timestamp.as_ref().and_then(|s| py_float(s).ok()).unwrap_or(f64::NAN);
    if t.system_metric.as_ref().is_some_and(|s| s.truthy()) {
        let mut lag = None;
        if let Some(m) = &t.metadata {
            match &m.shape {
                MetaShape::Object => {
                    if let Some(l) = &m.lag {
                        match py_number(l) {
                            Some(Num::Float(f)) if !f.is_finite() => return Classified::Skip(SkipReason::NonFinite),
                            Some(n) => lag = Some(n),
                            None => return Classified::Skip(SkipReason::BadLag),
                        }
                    }
                }
                MetaShape::Str(s) => {
                    if s.contains("lag") || s.contains("active_tasks") || s.contains("churn_rate") {
                        return Classified::Skip(SkipReason::BadMetadata);
                    }
                }
                MetaShape::Array(has_key) => {
                    if *has_key {
                        return Classified::Skip(SkipReason::BadMetadata);
                    }
                }
                MetaShape::Other(_) => return Classified::Skip(SkipReason::BadMetadata),
            }
        }
        return Classified::System { lag, timestamp };
    }
    // duration, memory, wait_time: float(t.get(key, 0.0)), in this order.
    let mut values = [0.0f64; 3];
    let mut stage = Stage::Complete;
    for (k, slot) in [&t.duration, &t.memory, &t.wait_time].into_iter().enumerate() {
        match slot.as_ref().map(py_float).unwrap_or(Ok(0.0)) {
            Ok(v) => values[k] = v,
            Err(ConvError::Unconvertible) => {
                stage = match k {
                    0 => Stage::Counted,
                    1 => Stage::Duration,
                    _ => Stage::Memory,
                };
                break;
            }
        }
    }
    if values[..stage as usize].iter().any(|v| !v.is_finite()) {
        return Classified::Skip(SkipReason::NonFinite);
    }
    let complete = stage == Stage::Complete;
    let error = complete && t.error.as_ref().is_some_and(|e| e.truthy());
    let non_empty = |s: &'a Option<Scalar<'_>>| match s {
        Some(Scalar::Str(v)) if !v.is_empty() => Some(v.as_ref()),
        _ => None,
    };
    let branch_tag = if complete { non_empty(&t.branch_tag) } else { None };
    let exception_type = if error { non_empty(&t.exception_type) } else { None };
    let exception_message = match &t.exception_message {
        Some(Scalar::Str(m)) if exception_type.is_some() => Some(m.as_ref()),
        _ => None,
    };
    Classified::Row(Row { values, stage, error, branch_tag, exception_type, exception_message, timestamp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::json::Scanner;

    fn cols(lines: &[&str]) -> TraceColumns {
        let mut c = TraceColumns::new("unknown");
        for l in lines {
            let mut sc = Scanner::new(l.as_bytes(), true);
            let mut t = RawTrace::default();
            match sc.element_into(&mut t).unwrap() {
                None => c.push(&t),
                Some(_) => c.push_not_object(),
            }
        }
        c
    }

    #[test]
    fn partial_rows_follow_pypss_append_order() {
        let c = cols(&[r#"{"duration": 1.5, "memory": "x"}"#, r#"{"duration": null}"#, r#"{"duration": "2"}"#]);
        assert_eq!(c.stage, vec![Stage::Duration, Stage::Counted, Stage::Complete]);
        assert_eq!(c.duration[2], 2.0);
        assert_eq!(c.skipped.unconvertible, 2);
    }

    #[test]
    fn non_finite_and_non_objects_are_counted() {
        let c = cols(&[r#"{"duration": 1e400}"#, "5", r#"{"wait_time": NaN}"#, r#"{"duration": 1}"#]);
        assert_eq!(c.len(), 1);
        assert_eq!(c.skipped.non_finite, 2);
        assert_eq!(c.skipped.not_object, 1);
    }

    #[test]
    fn system_traces() {
        let c = cols(&[
            r#"{"system_metric": true, "metadata": {"lag": 0.5}}"#,
            r#"{"system_metric": true, "metadata": null}"#,
            r#"{"system_metric": true, "metadata": {"lag": "x"}}"#,
            r#"{"system_metric": true}"#,
            r#"{"system_metric": 1, "metadata": "nothing here"}"#,
        ]);
        assert_eq!(c.sys_lag, vec![Some(Num::Float(0.5)), None, None]);
        assert_eq!(c.skipped.bad_metadata, 1);
        assert_eq!(c.skipped.bad_lag, 1);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn absorb_equals_pushing_in_order() {
        let lines = [
            r#"{"module": "a", "branch_tag": "x", "duration": 1}"#,
            r#"{"module": "b", "branch_tag": "y", "duration": 2, "error": true, "exception_type": "E"}"#,
            r#"{"module": "c", "branch_tag": "x", "duration": 3, "memory": "bad"}"#,
            r#"{"module": "a", "branch_tag": "z", "duration": 4, "error": true, "exception_type": "F"}"#,
            r#"{"system_metric": true, "module": "d", "metadata": {"lag": 0.1}}"#,
        ];
        let whole = cols(&lines);
        let mut first = cols(&lines[..2]);
        first.absorb(cols(&lines[2..]));
        assert_eq!(first.module, whole.module);
        assert_eq!(first.branch_tag, whole.branch_tag);
        assert_eq!(first.exception_counts, whole.exception_counts);
        assert_eq!(first.sys_module, whole.sys_module);
        assert_eq!(first.stage, whole.stage);
        assert_eq!(first.skipped, whole.skipped);
        assert_eq!(first.all_complete, whole.all_complete);
        assert_eq!(first.exception_examples, whole.exception_examples);
    }

    #[test]
    fn tags_only_non_empty_strings() {
        let c = cols(&[
            r#"{"branch_tag": ""}"#,
            r#"{"branch_tag": null}"#,
            r#"{"branch_tag": 5}"#,
            r#"{"branch_tag": "a"}"#,
        ]);
        assert_eq!(c.branch_tag, vec![NONE, NONE, NONE, 0]);
    }
}
