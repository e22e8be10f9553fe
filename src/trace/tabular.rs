//! CSV and Parquet trace files, read with polars. Each row becomes a trace:
//! a column per pypss field (any order, unknown columns ignored), an empty
//! cell means the field is absent. System traces use `system_metric` and a
//! `lag` (or `metadata.lag` / `metadata_lag`) column.

use std::borrow::Cow;
use std::io::Cursor;

use polars::prelude::*;

use super::json::{Metadata, RawTrace, Scalar, FIELD_NAMES};
use super::{ReadError, TraceSink};

/// Trace fields that can be CSV / Parquet columns: all but `metadata`.
const FIELDS: &[&str] = FIELD_NAMES.split_at(18).0;
const LAG_COLUMNS: &[&str] = &["lag", "metadata.lag", "metadata_lag"];

/// True when the first line reads as a CSV header naming a trace field.
pub fn looks_like_csv(head: &[u8]) -> bool {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return false;
    };
    line.split(',').map(|c| c.trim().trim_matches('"')).any(|c| FIELDS.contains(&c) || LAG_COLUMNS.contains(&c))
}

fn polars_err(name: &str, e: PolarsError) -> ReadError {
    ReadError::Format { path: name.to_string(), msg: e.to_string() }
}

/// Reads a CSV file with a header row.
pub fn read_csv(name: &str, bytes: Vec<u8>, sink: &mut dyn TraceSink) -> Result<u64, ReadError> {
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(10_000))
        .into_reader_with_file_handle(Cursor::new(bytes))
        .finish()
        .map_err(|e| polars_err(name, e))?;
    read_frame(name, &df, sink)
}

/// Reads a Parquet file.
pub fn read_parquet(name: &str, bytes: Vec<u8>, sink: &mut dyn TraceSink) -> Result<u64, ReadError> {
    let df = ParquetReader::new(Cursor::new(bytes)).finish().map_err(|e| polars_err(name, e))?;
    read_frame(name, &df, sink)
}

/// One column turned into per-row JSON-like values.
enum Col {
    Float(Vec<Option<f64>>),
    Int(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
    Str(Vec<Option<String>>),
}

impl Col {
    fn get(&self, i: usize) -> Option<Scalar<'_>> {
        match self {
            Col::Float(v) => v[i].map(Scalar::Float),
            Col::Int(v) => v[i].as_deref().map(Scalar::Int),
            Col::Bool(v) => v[i].map(Scalar::Bool),
            Col::Str(v) => v[i].as_deref().map(|s| Scalar::Str(Cow::Borrowed(s))),
        }
    }
}

fn column(name: &str, df: &DataFrame, col: &str) -> Result<Option<Col>, ReadError> {
    let Ok(c) = df.column(col) else {
        return Ok(None);
    };
    let s = c.as_materialized_series();
    let bad = |e: PolarsError| polars_err(name, e);
    let out = match s.dtype() {
        DataType::Float32 | DataType::Float64 => {
            let s = s.cast(&DataType::Float64).map_err(bad)?;
            let ca = s.f64().map_err(bad)?;
            Col::Float((0..ca.len()).map(|i| ca.get(i)).collect())
        }
        dt if dt.is_integer() => {
            let s = s.cast(&DataType::Int64).map_err(bad)?;
            let ca = s.i64().map_err(bad)?;
            Col::Int((0..ca.len()).map(|i| ca.get(i).map(|x| x.to_string())).collect())
        }
        DataType::Boolean => {
            let ca = s.bool().map_err(bad)?;
            Col::Bool((0..ca.len()).map(|i| ca.get(i)).collect())
        }
        DataType::String => {
            let ca = s.str().map_err(bad)?;
            Col::Str((0..ca.len()).map(|i| ca.get(i).map(str::to_string)).collect())
        }
        DataType::Null => return Ok(None),
        other => {
            return Err(ReadError::Format {
                path: name.to_string(),
                msg: format!("column \"{col}\" has type {other}, which pss cannot read as a trace field"),
            })
        }
    };
    Ok(Some(out))
}

fn read_frame(name: &str, df: &DataFrame, sink: &mut dyn TraceSink) -> Result<u64, ReadError> {
    let names: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
    if !names.iter().any(|n| FIELDS.contains(&n.as_str()) || LAG_COLUMNS.contains(&n.as_str())) {
        return Err(ReadError::Format {
            path: name.to_string(),
            msg: format!(
                "no trace fields among the columns ({}); expected duration, name, module, …",
                names.join(", ")
            ),
        });
    }
    let mut cols = Vec::new();
    for f in FIELDS {
        cols.push(column(name, df, f)?);
    }
    let mut lag = None;
    for l in LAG_COLUMNS {
        if let Some(c) = column(name, df, l)? {
            lag = Some(c);
        }
    }
    for i in 0..df.height() {
        let g = |k: usize| cols[k].as_ref().and_then(|c| c.get(i));
        let mut t = RawTrace {
            trace_id: g(0),
            name: g(1),
            filename: g(2),
            lineno: g(3),
            module: g(4),
            duration: g(5),
            cpu_time: g(6),
            wait_time: g(7),
            memory: g(8),
            memory_diff: g(9),
            error: g(10),
            exception_type: g(11),
            exception_message: g(12),
            branch_tag: g(13),
            timestamp: g(14),
            async_op: g(15),
            yield_count: g(16),
            system_metric: g(17),
            ..Default::default()
        };
        if let Some(l) = lag.as_ref().and_then(|c| c.get(i)) {
            t.metadata = Some(Metadata { lag: Some(l), ..Default::default() });
        }
        sink.trace(&t);
    }
    Ok(df.height() as u64)
}
