//! `pss board`: a live web dashboard over a history (or trace files,
//! ingested into a temporary one). The pages are static assets embedded in
//! the binary ([`assets`]); they draw from a JSON API ([`server`]) whose
//! numbers come from the same library calls as the CLI ([`data`]).

pub mod assets;
pub mod data;
pub mod files;
pub mod server;

pub use server::{router, BoardState};
