//! `pss detect`: anomaly detectors. So far: `pss detect series`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use polars::prelude::*;

use super::{print, CmdResult, Failure};
use crate::detect::series::{score_series, SeriesParams};

#[derive(Args, Debug)]
pub struct DetectArgs {
    #[command(subcommand)]
    pub action: DetectAction,
}

#[derive(Subcommand, Debug)]
pub enum DetectAction {
    /// Score a metric series (CSV of timestamp,value) point by point, causally.
    #[command(after_help = "Each point's score uses only the points before it: run on the first k rows, \
a file gets exactly the scores those rows get in the whole file. Points before enough history score 0.")]
    Series(SeriesArgs),
}

#[derive(Args, Debug)]
pub struct SeriesArgs {
    /// CSV file with a header row.
    pub file: PathBuf,
    #[arg(long, default_value = "timestamp")]
    pub timestamp_col: String,
    #[arg(long, default_value = "value")]
    pub value_col: String,
    /// Output CSV: timestamp,value,anomaly_score, one row per input row, in input order.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// Values per shingle.
    #[arg(long, default_value_t = 8)]
    pub shingle: usize,
    /// Past shingles the model learns from.
    #[arg(long, default_value_t = 1024)]
    pub window: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Runs `pss detect ...`.
pub fn run(a: DetectArgs) -> CmdResult {
    match a.action {
        DetectAction::Series(s) => series(s),
    }
}

fn series(a: SeriesArgs) -> CmdResult {
    let name = a.file.display().to_string();
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0)) // text: timestamps are written back as they were
        .try_into_reader_with_file_path(Some(a.file.clone()))
        .and_then(|r| r.finish())
        .map_err(|e| Failure::input(format!("{name}: {e}")))?;
    let col = |c: &str| -> Result<Vec<Option<String>>, Failure> {
        let s = df.column(c).map_err(|_| {
            Failure::input(format!(
                "{name}: no column '{c}' (columns: {})",
                df.get_column_names().iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let ca = s.as_materialized_series().str().map_err(|e| Failure::input(format!("{name}: {e}")))?;
        Ok((0..ca.len()).map(|i| ca.get(i).map(str::to_string)).collect())
    };
    let ts = col(&a.timestamp_col)?;
    let raw = col(&a.value_col)?;
    let mut values = Vec::with_capacity(raw.len());
    for (i, v) in raw.iter().enumerate() {
        let parsed = v.as_deref().and_then(|s| s.trim().parse::<f64>().ok()).filter(|x| x.is_finite());
        match parsed {
            Some(x) => values.push(x),
            None => {
                return Err(Failure::input(format!(
                    "{name}: line {}: {} '{}' is not a finite number",
                    i + 2,
                    a.value_col,
                    v.as_deref().unwrap_or("")
                )))
            }
        }
    }
    let p = SeriesParams { shingle: a.shingle, window: a.window, seed: a.seed, ..SeriesParams::default() };
    p.check().map_err(Failure::input)?;
    let scores = score_series(&values, &p);
    let out = std::fs::File::create(&a.output).map_err(|e| Failure::input(format!("{}: {e}", a.output.display())))?;
    let mut w = std::io::BufWriter::new(out);
    let err = |e: std::io::Error| Failure::input(format!("{}: {e}", a.output.display()));
    writeln!(w, "timestamp,value,anomaly_score").map_err(err)?;
    for ((t, v), s) in ts.iter().zip(&raw).zip(&scores) {
        let t = t.as_deref().unwrap_or("");
        let t =
            if t.contains(',') || t.contains('"') { format!("\"{}\"", t.replace('"', "\"\"")) } else { t.to_string() };
        writeln!(w, "{t},{},{s}", v.as_deref().unwrap_or("").trim()).map_err(err)?;
    }
    w.flush().map_err(err)?;
    let top = scores.iter().copied().fold(0.0, f64::max);
    print(&format!("scored {} points of {name} (max score {top:.3}) → {}\n", scores.len(), a.output.display()))
}
