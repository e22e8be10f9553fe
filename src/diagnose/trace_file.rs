//! pypss's `diagnose` on trace files: the scores, the advisor, the modules
//! and the slowest function's source, as a [`Diagnosis`] the same renderers
//! show.

use super::incident::{module_rows, snippet, Diagnosis, Side, Subject};
use super::source::SourcePolicy;
use crate::config::Config;
use crate::domain::SlowestTrace;
use crate::trace::json::Scalar;
use crate::trace::{ColumnOptions, RawTrace, ReadError, Source, TraceColumns, TraceSink};

/// Columns, and where the slowest trace of the current source ran.
struct Slowest<'a> {
    cols: &'a mut TraceColumns,
    best: Option<SlowestTrace>,
}

impl TraceSink for Slowest<'_> {
    fn trace(&mut self, t: &RawTrace<'_>) {
        self.cols.trace(t);
        let py = crate::trace::columns::py_float;
        let d = t.duration.as_ref().and_then(|v| py(v).ok()).filter(|d| d.is_finite());
        if let Some(duration) = d {
            if self.best.as_ref().is_none_or(|b| duration > b.duration) {
                let s = |v: &Option<Scalar<'_>>| match v {
                    Some(Scalar::Str(x)) => x.to_string(),
                    _ => String::new(),
                };
                self.best = Some(SlowestTrace {
                    filename: s(&t.filename),
                    lineno: t.lineno.as_ref().and_then(|v| py(v).ok()).unwrap_or(0.0) as i64,
                    duration,
                    module: s(&t.module),
                    name: s(&t.name),
                });
            }
        }
    }
    fn not_object(&mut self) {
        self.cols.not_object();
    }
    fn reset(&mut self) {
        self.cols.reset();
        self.best = None;
    }
}

/// Diagnoses trace files (as `pypss diagnose --trace-file` does).
pub fn diagnose_files(files: &[String], cfg: &Config, source: &SourcePolicy) -> Result<Diagnosis, ReadError> {
    let keep = ColumnOptions { timestamps: true, names: true, memory_diff: true };
    let mut cols = TraceColumns::with_options(&cfg.unknown_module, keep);
    let mut best: Option<SlowestTrace> = None;
    for f in files {
        cols.begin_source();
        let mut sink = Slowest { cols: &mut cols, best: None };
        crate::trace::read_source(&Source::from_arg(f), &mut sink)?;
        if let Some(b) = sink.best {
            if best.as_ref().is_none_or(|x| b.duration > x.duration) {
                best = Some(b);
            }
        }
    }
    let detail = crate::report::model::Detail { summaries: true, charts: false };
    let r = crate::report::model::build(&cols, &[], cfg, crate::score::GroupBy::Module, detail);
    let (lo, hi) = r.time_range.unwrap_or((0.0, 0.0));
    Ok(Diagnosis {
        subject: Subject {
            kind: "trace file",
            id: None,
            service: files.join(", "),
            title: String::new(),
            severity: String::new(),
            start: lo,
            end: hi,
        },
        baseline: None,
        during: Side::from_report(&r),
        before: None,
        modules: module_rows(&r, None),
        window_seconds: 60.0,
        timeline: Vec::new(),
        onset: None,
        onset_from: lo,
        detector: None,
        patterns: Vec::new(),
        anomalous_traces: Vec::new(),
        regression: None,
        advice: r.advice.clone(),
        findings: Vec::new(),
        source: best.map(|b| snippet(source, &b.filename, b.lineno, b.duration, &format!("{}:{}", b.module, b.name))),
        narrative: None,
        skipped_traces: r.skipped.total(),
        unavailable: Vec::new(),
    })
}
