//! Diagnosis: the rule-based advisor (and, later, evidence and LLM narrative).

pub mod advisor;
