//! Anomaly detectors. So far: the isolation forest (standard and extended)
//! and a causal streaming detector for metric series.

pub(crate) mod evaluate;
pub mod iforest;
pub mod model;
pub mod nab;
pub(crate) mod nab_corpus;
pub(crate) mod nab_loco;
pub mod patterns;
pub mod registry;
pub mod series;
pub(crate) mod series_csv;
pub mod supervised;
pub mod train;

pub use iforest::{IsolationForest, IsolationForestParams};

pub use crate::learn::Fit;
