//! Tables for data scientists and other tools: the labeled window table as a
//! polars `DataFrame`, written as CSV or Parquet.

use std::path::Path;

use polars::prelude::*;

use crate::domain::{Features, LabeledWindow};

/// File formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFormat {
    Csv,
    Parquet,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot build the table: {0}")]
    Frame(#[source] PolarsError),
    #[error("{path}: {message}")]
    Write { path: String, message: String },
}

/// The labeled window table: key, counts, scores, every feature (in
/// [`Features::NAMES`] order), each custom metric's score (by code), the
/// label and the incident id.
pub fn windows_frame(rows: &[LabeledWindow]) -> Result<DataFrame, ExportError> {
    let f64s = |name: &str, f: &dyn Fn(&LabeledWindow) -> f64| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<f64>>())
    };
    let mut cols = vec![
        Column::new("service".into(), rows.iter().map(|r| r.window.service.clone()).collect::<Vec<_>>()),
        Column::new("module".into(), rows.iter().map(|r| r.window.module.clone()).collect::<Vec<_>>()),
        f64s("start", &|r| r.window.start),
        f64s("seconds", &|r| r.window.seconds),
        Column::new("traces".into(), rows.iter().map(|r| r.window.traces).collect::<Vec<u64>>()),
        Column::new("errors".into(), rows.iter().map(|r| r.window.errors).collect::<Vec<u64>>()),
        Column::new("too_small".into(), rows.iter().map(|r| r.window.too_small).collect::<Vec<bool>>()),
        f64s("pss", &|r| r.window.pss),
        f64s("ts", &|r| r.window.sub.timing_stability),
        f64s("ms", &|r| r.window.sub.memory_stability),
        f64s("ev", &|r| r.window.sub.error_volatility),
        f64s("be", &|r| r.window.sub.branching_entropy),
        f64s("cc", &|r| r.window.sub.concurrency_chaos),
    ];
    let values: Vec<[f64; Features::COUNT]> = rows.iter().map(|r| r.window.features.values()).collect();
    for (k, name) in Features::NAMES.iter().enumerate() {
        cols.push(Column::new((*name).into(), values.iter().map(|v| v[k]).collect::<Vec<f64>>()));
    }
    // Custom metrics' scores, one column per code (as pypss's breakdown keys them).
    let mut codes: Vec<&str> = Vec::new();
    for r in rows {
        for c in &r.window.custom {
            if !codes.contains(&c.code.as_str()) {
                codes.push(&c.code);
            }
        }
    }
    for code in codes {
        let name =
            if cols.iter().any(|c| c.name().as_str() == code) { format!("custom_{code}") } else { code.to_string() };
        let v: Vec<Option<f64>> =
            rows.iter().map(|r| r.window.custom.iter().find(|c| c.code == code).map(|c| c.score)).collect();
        cols.push(Column::new(name.into(), v));
    }
    cols.push(Column::new("label".into(), rows.iter().map(|r| r.incident.is_some()).collect::<Vec<bool>>()));
    cols.push(Column::new("incident".into(), rows.iter().map(|r| r.incident.clone()).collect::<Vec<Option<String>>>()));
    DataFrame::new(rows.len(), cols).map_err(ExportError::Frame)
}

/// Writes a table to `path`.
pub fn write_frame(df: &mut DataFrame, path: &Path, format: FrameFormat) -> Result<(), ExportError> {
    let write = |message: String| ExportError::Write { path: path.display().to_string(), message };
    let f = std::fs::File::create(path).map_err(|e| write(e.to_string()))?;
    match format {
        FrameFormat::Csv => CsvWriter::new(f).finish(df),
        FrameFormat::Parquet => ParquetWriter::new(f).finish(df).map(|_| ()),
    }
    .map_err(|e| write(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Window;

    #[test]
    fn one_column_per_feature_and_the_label() {
        let features = Features { lat_p95: 0.25, ..Default::default() };
        let w = Window {
            traces: 3,
            errors: 1,
            pss: 80.0,
            sub: crate::domain::SubScores::from_array([0.5, 1.0, 0.9, 1.0, 1.0]),
            ..Window::unscored("s", 60.0, 60.0, features)
        };
        let rows = [
            LabeledWindow { window: w.clone(), incident: Some("i-1".into()) },
            LabeledWindow { window: w, incident: None },
        ];
        let mut df = windows_frame(&rows).unwrap();
        assert_eq!(df.width(), 13 + Features::COUNT + 2);
        assert_eq!(df.column("lat_p95").unwrap().f64().unwrap().get(0), Some(0.25));
        assert_eq!(df.column("label").unwrap().bool().unwrap().get(1), Some(false));
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("w.csv");
        write_frame(&mut df, &out, FrameFormat::Csv).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.starts_with("service,module,start,seconds,traces"), "{text}");
        assert_eq!(text.lines().count(), 3);
        let e = write_frame(&mut df, &dir.path().join("no/such/dir.csv"), FrameFormat::Csv).unwrap_err();
        assert!(e.to_string().contains("no/such/dir.csv"), "{e}");
    }
}
