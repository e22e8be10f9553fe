//! Diagnosis for incident reviews: the evidence from the history store and
//! the detectors, pypss's rule-based advisor (in [`crate::report::advisor`]),
//! an optional LLM narrative, and the rendered report.

pub mod incident;
pub mod llm;
pub(crate) mod prompt;
pub mod render;
pub mod source;
pub mod trace_file;
