//! pss: the Program Stability Score of a program's run-time traces,
//! compatible with pypss 1.3.1, with history, tuning and anomaly detection.
//!
//! Data flows one way: [`trace`] reads files into columns, [`score`] turns
//! columns into the PSS and its sub-scores, [`report`] renders results.
//! [`cli`] is the only module that prints or decides exit codes.

pub mod cli;
pub mod config;
pub mod detect;
pub mod diagnose;
pub mod report;
pub mod score;
pub mod serve;
pub mod simulate;
pub mod store;
pub mod timefmt;
pub mod trace;
pub mod tune;
pub mod window;
