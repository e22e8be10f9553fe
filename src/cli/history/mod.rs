//! History commands: `pss ingest`, `pss incidents`, `pss history`,
//! `pss windows`, `pss prune` — each in a file of its own.

mod incidents;
mod ingest;
mod runs;
mod windows;

use std::path::Path;

pub use incidents::{incidents, IncidentsArgs};
pub use ingest::{ingest, IngestArgs};
pub use runs::{history, history_path, HistoryArgs};
pub use windows::{prune, windows, PruneArgs, WindowsArgs};

use super::Failure;
use crate::store::{Store, StoreError};

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::input(e.to_string())
    }
}

fn open(path: &Path) -> Result<Box<dyn Store + Send>, Failure> {
    Ok(crate::store::open(path)?)
}
