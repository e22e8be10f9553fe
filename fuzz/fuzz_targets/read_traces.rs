//! Any bytes through the trace reader (every shape it sniffs: JSON, JSON
//! Lines, gzip, CSV, Parquet) into the columns scoring uses, then scored:
//! a result or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pss::config::ScoreParams;
use pss::trace::{read_bytes, TraceColumns};

fuzz_target!(|data: &[u8]| {
    let mut cols = TraceColumns::new("unknown");
    if read_bytes("fuzz", data, &mut cols).is_ok() {
        let _ = pss::score::score(&cols, pss::score::Selection::All, &ScoreParams::default());
    }
});
