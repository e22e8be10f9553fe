//! Tuning the score against labeled incidents: the search space, Bayesian
//! optimization, the tuner, pypss's own objective, the nightly job and its
//! outputs. Re-scoring lives in [`crate::score::rescore`], the metrics in
//! [`crate::eval`].

pub mod baseline;
pub(crate) mod bayes;
pub mod nightly;
pub(crate) mod output;
pub(crate) mod pypss_loss;
pub mod space;
pub(crate) mod tuner;

pub use tuner::{Objective, TuneData, TuneError, TuneParams, Tuned};
