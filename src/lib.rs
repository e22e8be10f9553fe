//! pss: the Program Stability Score of a program's run-time traces,
//! compatible with pypss 1.3.1, with history, tuning and anomaly detection.
//!
//! Dependencies run one way (a test below checks there is no cycle between
//! top-level modules), leaves first:
//!
//! - [`pystats`] (CPython-exact statistics), [`timefmt`], [`config`],
//!   [`domain`] (incidents, windows, features, history rows), [`learn`]
//!   (the `check` → `fit` shape of detectors and the tuner): leaves.
//! - [`trace`] reads files into columns; [`score`] turns columns — or a
//!   window's stored features — into the PSS and its sub-scores;
//!   [`window`] computes a window's features and scores.
//! - [`export`] writes the labeled window table (CSV, Parquet).
//! - [`store`] keeps traces, windows, incidents, runs and models behind the
//!   `Store` trait; [`ingest`] puts traces in a store and scores the windows
//!   they touch; [`eval`] splits, judges and measures alarms against
//!   incidents.
//! - [`alarm`] decides what pages: the policy's rules on service and module
//!   windows, persistence and hysteresis into episodes, quiet hours pooled.
//! - [`detect`] and [`tune`] learn from windows; [`simulate`] writes
//!   labeled histories; [`report`] and [`diagnose`] render results;
//!   [`serve`] collects traces over the network.
//! - [`cli`] parses arguments, calls one of the above, renders its result
//!   and is the only module that prints or decides exit codes.

pub mod alarm;
pub mod alert;
pub mod board;
pub mod cli;
pub mod config;
pub mod detect;
pub mod diagnose;
pub mod domain;
pub mod eval;
pub mod export;
pub mod ingest;
pub mod learn;
pub mod pystats;
pub mod report;
pub mod score;
pub mod serve;
pub mod simulate;
pub mod store;
pub mod timefmt;
pub mod trace;
pub mod tune;
pub mod window;

#[cfg(test)]
mod module_graph;
