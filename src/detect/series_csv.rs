//! A metric series from a CSV file (`timestamp,value` with a header row),
//! read through polars as text so timestamps are written back as they were.

use std::path::Path;

use polars::prelude::*;

/// A series file's timestamps and values as written, and the values parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesFile {
    pub timestamps: Vec<Option<String>>,
    pub raw_values: Vec<Option<String>>,
    pub values: Vec<f64>,
}

/// Why a series file could not be read; names the file, and the line or column.
#[derive(Debug, thiserror::Error)]
pub enum SeriesFileError {
    #[error("{path}: {message}")]
    Csv { path: String, message: String },
    #[error("{path}: no column '{column}' (columns: {columns})")]
    NoColumn { path: String, column: String, columns: String },
    #[error("{path}: line {line}: {column} '{text}' is not a finite number")]
    NotANumber { path: String, line: usize, column: String, text: String },
}

/// Reads the timestamp and value columns of a series CSV; every value must be
/// a finite number (a bad one is an error naming its line).
pub fn read_series(file: &Path, ts_col: &str, val_col: &str) -> Result<SeriesFile, SeriesFileError> {
    let path = file.display().to_string();
    let csv = |e: PolarsError| SeriesFileError::Csv { path: path.clone(), message: e.to_string() };
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0)) // text: timestamps are written back as they were
        .try_into_reader_with_file_path(Some(file.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(csv)?;
    let col = |c: &str| -> Result<Vec<Option<String>>, SeriesFileError> {
        let s = df.column(c).map_err(|_| SeriesFileError::NoColumn {
            path: path.clone(),
            column: c.to_string(),
            columns: df.get_column_names().iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
        })?;
        let ca = s.as_materialized_series().str().map_err(csv)?;
        Ok((0..ca.len()).map(|i| ca.get(i).map(str::to_string)).collect())
    };
    let timestamps = col(ts_col)?;
    let raw_values = col(val_col)?;
    let mut values = Vec::with_capacity(raw_values.len());
    for (i, v) in raw_values.iter().enumerate() {
        match v.as_deref().and_then(|s| s.trim().parse::<f64>().ok()).filter(|x| x.is_finite()) {
            Some(x) => values.push(x),
            None => {
                return Err(SeriesFileError::NotANumber {
                    path: path.clone(),
                    line: i + 2,
                    column: val_col.to_string(),
                    text: v.clone().unwrap_or_default(),
                })
            }
        }
    }
    Ok(SeriesFile { timestamps, raw_values, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_timestamps_and_names_a_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.csv");
        std::fs::write(&f, "timestamp,value\n2014-04-01 00:00:00,1.5\n2014-04-01 00:05:00,2\n").unwrap();
        let s = read_series(&f, "timestamp", "value").unwrap();
        assert_eq!(s.timestamps[1].as_deref(), Some("2014-04-01 00:05:00"));
        assert_eq!(s.values, [1.5, 2.0]);
        std::fs::write(&f, "timestamp,value\n1,1\n2,nan\n").unwrap();
        let e = read_series(&f, "timestamp", "value").unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("'nan'"), "{e}");
        let e = read_series(&f, "time", "value").unwrap_err().to_string();
        assert!(e.contains("no column 'time'") && e.contains("timestamp, value"), "{e}");
    }
}
