//! Reading and validating labeled incidents (CSV or JSON) before they go
//! into the store, all or nothing.

use std::path::Path;

use polars::prelude::*;

use super::{Incident, StoreError};
use crate::timefmt::parse_time;

/// Reads incidents from a CSV (header `id,service,start,end,severity,title`)
/// or a JSON array of objects with those keys. Times are RFC 3339 or epoch
/// seconds. Errors name the file and the row. Also returns, for each
/// incident, where it is in the file ("line 3", "element 2").
pub fn read_incidents(path: &Path) -> Result<(Vec<Incident>, Vec<String>), StoreError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| StoreError::Invalid(format!("{name}: {e}")))?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let rows: Vec<(usize, [Option<String>; 6])> = if first == Some(b'[') {
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Invalid(format!("{name}: invalid JSON: {e}")))?;
        let arr = v.as_array().ok_or_else(|| StoreError::Invalid(format!("{name}: expected a JSON array")))?;
        arr.iter()
            .enumerate()
            .map(|(i, o)| {
                let get = |k: &str| match o.get(k) {
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                (i + 1, ["id", "service", "start", "end", "severity", "title"].map(get))
            })
            .collect()
    } else {
        let df = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0)) // every column as text
            .into_reader_with_file_handle(std::io::Cursor::new(bytes))
            .finish()
            .map_err(|e| StoreError::Invalid(format!("{name}: {e}")))?;
        let col = |k: &str| -> Vec<Option<String>> {
            match df.column(k).ok().and_then(|c| c.as_materialized_series().str().ok().cloned()) {
                Some(ca) => (0..ca.len()).map(|i| ca.get(i).map(str::to_string)).collect(),
                None => vec![None; df.height()],
            }
        };
        for required in ["id", "service", "start", "end"] {
            if df.column(required).is_err() {
                return Err(StoreError::Invalid(format!(
                    "{name}: missing column '{required}' (expected id,service,start,end,severity,title)"
                )));
            }
        }
        let cols: Vec<Vec<Option<String>>> = ["id", "service", "start", "end", "severity", "title"].map(col).into();
        (0..df.height()).map(|i| (i + 2, std::array::from_fn(|k| cols[k][i].clone()))).collect()
    };
    let what = if first == Some(b'[') { "element" } else { "line" };
    let mut out = Vec::with_capacity(rows.len());
    let mut places = Vec::with_capacity(rows.len());
    for (row, [id, service, start, end, severity, title]) in rows {
        places.push(format!("{what} {row}"));
        let bad = |msg: String| StoreError::Invalid(format!("{name}: {what} {row}: {msg}"));
        let id = id.filter(|s| !s.trim().is_empty()).ok_or_else(|| bad("missing id".into()))?;
        let service = service.filter(|s| !s.trim().is_empty()).ok_or_else(|| bad("missing service".into()))?;
        let parse = |field: &str, v: Option<String>| -> Result<f64, StoreError> {
            let v = v.ok_or_else(|| bad(format!("missing {field}")))?;
            parse_time(&v).ok_or_else(|| bad(format!("{field} '{v}' is not RFC 3339 or epoch seconds")))
        };
        let start = parse("start", start)?;
        let end = parse("end", end)?;
        out.push(Incident {
            id: id.trim().to_string(),
            service: service.trim().to_string(),
            start,
            end,
            severity: severity.unwrap_or_default(),
            title: title.unwrap_or_default(),
        });
    }
    Ok((out, places))
}

/// Checks new incidents against each other, the existing ones and the known
/// services: end after start, no overlap within a service, known service,
/// unique ids. `label(i)` names the i-th new incident in messages.
pub fn validate(
    new: &[Incident],
    existing: &[Incident],
    services: &[String],
    label: &dyn Fn(usize) -> String,
) -> Result<(), StoreError> {
    for (i, inc) in new.iter().enumerate() {
        let bad = |msg: String| StoreError::Invalid(format!("{}: incident '{}': {msg}", label(i), inc.id));
        if inc.end <= inc.start {
            return Err(bad(format!("end ({}) is not after start ({})", inc.end, inc.start)));
        }
        if !services.iter().any(|s| s == &inc.service) {
            return Err(bad(format!(
                "unknown service '{}' (known: {}); ingest its traces first",
                inc.service,
                if services.is_empty() { "none".to_string() } else { services.join(", ") }
            )));
        }
        let others = existing.iter().map(|o| (o, "existing")).chain(new[..i].iter().map(|o| (o, "earlier")));
        for (o, which) in others {
            if o.id == inc.id {
                return Err(bad(format!("id already used by an {which} incident")));
            }
            if o.service == inc.service && inc.start < o.end && o.start < inc.end {
                return Err(bad(format!("overlaps the {which} incident '{}' of the same service", o.id)));
            }
        }
    }
    Ok(())
}
