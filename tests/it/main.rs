//! pss's integration tests, one binary: the commands end to end, against
//! pypss itself, and with real servers on 127.0.0.1. Shared helpers are in
//! `common`.

mod common;

mod alarms;
mod alert;
mod board;
mod cli_analyze;
mod detect;
mod diagnose;
mod differential;
mod history;
mod notebook;
mod otlp;
mod render;
mod serve;
mod split_read;
mod tune;
