//! Anomaly detectors. So far: the isolation forest (standard and extended)
//! and a causal streaming detector for metric series.

pub mod iforest;
pub mod model;
pub mod nab;
pub mod series;

pub use iforest::{IsolationForest, IsolationForestParams};
