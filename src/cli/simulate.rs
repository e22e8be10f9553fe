//! `pss simulate`: write a labeled history (traces + incidents) to learn from.

use std::path::PathBuf;

use clap::Args;

use super::{print, CmdResult, Failure};
use crate::simulate::{simulate, SimulateParams};
use crate::timefmt::parse_time;

#[derive(Args, Debug)]
#[command(after_help = "Then: pss ingest DIR/<service>.jsonl --history h.db --service <service>; \
pss incidents import DIR/incidents.csv --history h.db")]
pub struct SimulateArgs {
    /// Days of traces.
    #[arg(long, default_value_t = 14.0)]
    pub days: f64,
    /// Number of services (1 to 6).
    #[arg(long, default_value_t = 3)]
    pub services: usize,
    /// Random seed: the same seed gives the same files.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Traces per minute per service at the daily peak.
    #[arg(long, default_value_t = 30.0)]
    pub rate: f64,
    /// Injected incidents per service per day, on average.
    #[arg(long, default_value_t = 0.5)]
    pub incidents_per_day: f64,
    /// First timestamp (RFC 3339 or epoch seconds).
    #[arg(long, default_value = "2026-11-01T00:00:00Z")]
    pub start: String,
    /// Output folder (created): <service>.jsonl and incidents.csv.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: PathBuf,
}

/// Runs `pss simulate`.
pub fn run(a: SimulateArgs) -> CmdResult {
    let start = parse_time(&a.start)
        .ok_or_else(|| Failure::input(format!("--start '{}': expected RFC 3339 or epoch seconds", a.start)))?;
    let p = SimulateParams {
        days: a.days,
        services: a.services,
        seed: a.seed,
        rate: a.rate,
        start,
        incidents_per_day: a.incidents_per_day,
    };
    p.check().map_err(Failure::input)?;
    let r = simulate(&p, &a.output).map_err(|e| Failure::input(format!("{}: {e}", a.output.display())))?;
    let mut out = String::new();
    for f in &r.files {
        out += &format!("wrote {}\n", f.display());
    }
    out += &format!("wrote {} ({} incidents); {} traces in all\n", r.incidents_file.display(), r.incidents, r.traces);
    print(&out)
}
