//! Diagnosis for incident reviews: pypss's rule-based advisor, the evidence
//! from the history store and the detectors, an optional LLM narrative, and
//! the rendered report.

pub mod advisor;
pub mod incident;
pub mod llm;
pub mod prompt;
pub mod render;
