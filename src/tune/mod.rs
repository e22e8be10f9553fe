//! Tuning the score against labeled incidents: re-scoring stored windows
//! under candidate parameters from their features, the alarm rule, the
//! alarm-quality metrics, the search space, Bayesian optimization, the tuner
//! and its outputs.

pub mod bayes;
pub mod metrics;
pub mod output;
pub mod pypss_loss;
pub mod rescore;
pub mod space;
pub mod tuner;

pub use metrics::{evaluate, evaluate_parts, Judged, Metrics};
pub use rescore::{alarms, rescore, Rescored};
pub use tuner::{Objective, TuneData, TuneError, TuneParams, Tuned};
