//! Tuning the score against labeled incidents. So far: re-scoring stored
//! windows under candidate parameters from their features, the alarm rule,
//! and the alarm-quality metrics. The optimizer and `pss-tune` build on these.

pub mod metrics;
pub mod rescore;

pub use metrics::{evaluate, Judged, Metrics};
pub use rescore::{alarms, rescore, Rescored};
