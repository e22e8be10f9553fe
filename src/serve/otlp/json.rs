//! OTLP/JSON's departures from serde's defaults, named by `build.rs` on the
//! generated OpenTelemetry types: 64-bit integers arrive as decimal strings
//! (numbers accepted too), trace and span ids as hex (not proto3 JSON's
//! base64), `bytesValue` as base64, and doubles may be "NaN"/"Infinity".

use serde::de::{Deserializer, Error};
use serde::Deserialize;

/// A number, or a number in a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText<T> {
    Num(T),
    Text(String),
}

fn number<'de, D: Deserializer<'de>, T>(d: D) -> Result<T, D::Error>
where
    T: Deserialize<'de> + std::str::FromStr,
{
    match NumOrText::<T>::deserialize(d)? {
        NumOrText::Num(n) => Ok(n),
        NumOrText::Text(s) => s.trim().parse().map_err(|_| D::Error::custom(format!("'{s}' is not a number"))),
    }
}

/// `fixed64` times (`startTimeUnixNano`).
pub fn uint64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    number(d)
}

/// `int64` attribute values (`intValue`).
pub fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    number(d)
}

/// `doubleValue`: a number, or "NaN", "Infinity", "-Infinity" as proto3 JSON writes them.
pub fn double<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    number(d)
}

/// Trace and span ids: hex, as the OTLP/JSON encoding specifies; empty is no id.
pub fn hex<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = String::deserialize(d)?;
    ::hex::decode(s.trim()).map_err(|e| D::Error::custom(format!("id '{s}' is not hex: {e}")))
}

/// `bytesValue`: standard base64.
pub fn base64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    use ::base64::Engine;
    let s = String::deserialize(d)?;
    ::base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| D::Error::custom(format!("bytesValue: {e}")))
}

/// `AnyValue`: `{"stringValue": "x"}` and its kin; `{}` is no value.
impl<'de> Deserialize<'de> for super::pb::common::AnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        if map.is_empty() {
            return Ok(super::pb::common::AnyValue { value: None });
        }
        let value = super::pb::common::any_value::Value::deserialize(serde_json::Value::Object(map))
            .map_err(|e| D::Error::custom(format!("attribute value: {e}")))?;
        Ok(super::pb::common::AnyValue { value: Some(value) })
    }
}
