//! From OpenTelemetry spans to pypss traces. The mapping (also in the
//! README's OTLP section):
//!
//! | pypss field | from the span |
//! |---|---|
//! | `service` (the history's service) | the resource's `service.name`, else the request's `X-PSS-Service` / `--service` |
//! | `timestamp` | `start_time_unix_nano`, in seconds |
//! | `duration` | end − start, in seconds |
//! | `name` | the span name, else `code.function.name` / `code.function` |
//! | `module` | `code.namespace`, else the instrumentation scope's name, else `service.name` |
//! | `filename`, `lineno` | `code.file.path` / `code.filepath`, `code.line.number` / `code.lineno` |
//! | `error` | status code ERROR |
//! | `exception_type`, `exception_message` | the last `exception` event's `exception.type` / `exception.message` (else the status message) |
//! | `branch_tag`, `cpu_time`, `wait_time`, `memory` | configurable attributes ([`SpanMapping`]); absent when the span lacks them |
//! | `trace_id` | `otel:` trace id `:` span id (hex) — a batch sent twice is stored once |
//!
//! A span whose times cannot make a trace (no start, end before start) is
//! rejected and counted in the response's partial success; a configured
//! attribute of a type that cannot be that field is counted and left out.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::pb::collector::ExportTraceServiceRequest;
use super::pb::common::{any_value, KeyValue};
use super::pb::trace::{status, Span};

/// Which span attributes carry what OpenTelemetry has no convention for.
/// Numbers in pypss's units: seconds for `cpu_time` and `wait_time`, what the
/// service measures for `memory` (pypss records bytes).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct SpanMapping {
    pub branch_tag: String,
    pub cpu_time: String,
    pub wait_time: String,
    pub memory: String,
}

impl Default for SpanMapping {
    fn default() -> Self {
        SpanMapping {
            branch_tag: "pss.branch_tag".into(),
            cpu_time: "pss.cpu_time".into(),
            wait_time: "pss.wait_time".into(),
            memory: "pss.memory".into(),
        }
    }
}

/// The span kinds, in the protocol's order (a metrics label each).
pub const KINDS: [&str; 7] = ["unspecified", "internal", "server", "client", "producer", "consumer", "unknown"];

/// The fields a span may lack (cpu_time, wait_time, memory), as counted.
pub const OPTIONAL_FIELDS: [&str; 3] = ["cpu_time", "wait_time", "memory"];

/// One request's spans as pypss traces, one JSON Lines body per service.
#[derive(Debug, Default)]
pub struct Mapped {
    /// (service, JSON Lines of its traces), services in first-seen order.
    pub bodies: Vec<(String, Vec<u8>)>,
    /// Spans mapped to traces.
    pub spans: u64,
    /// Spans that could not become a trace, and why (the first reason).
    pub rejected: u64,
    pub first_rejection: Option<String>,
    /// Mapped spans by kind ([`KINDS`]).
    pub by_kind: [u64; 7],
    /// Mapped spans without each of [`OPTIONAL_FIELDS`].
    pub absent: [u64; 3],
    /// Attribute values that could not map, by `attribute:type`.
    pub unmapped: BTreeMap<String, u64>,
}

/// An attribute's value, when set.
fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs.iter().rev().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
}

fn type_name(v: &any_value::Value) -> &'static str {
    use any_value::Value as V;
    match v {
        V::StringValue(_) => "string",
        V::BoolValue(_) => "bool",
        V::IntValue(_) => "int",
        V::DoubleValue(_) => "double",
        V::ArrayValue(_) => "array",
        V::KvlistValue(_) => "kvlist",
        V::BytesValue(_) => "bytes",
        V::StringValueStrindex(_) => "string_index",
    }
}

fn text(v: &any_value::Value) -> Option<String> {
    match v {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn first_text(attrs: &[KeyValue], keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| attr(attrs, k).and_then(text)).filter(|s| !s.is_empty())
}

impl Mapped {
    fn unmapped(&mut self, key: &str, v: &any_value::Value) {
        *self.unmapped.entry(format!("{key}:{}", type_name(v))).or_default() += 1;
    }

    /// A number attribute (int or double); another type is counted.
    fn number(&mut self, attrs: &[KeyValue], key: &str) -> Option<f64> {
        let v = attr(attrs, key)?;
        match v {
            any_value::Value::IntValue(i) => Some(*i as f64),
            any_value::Value::DoubleValue(d) if d.is_finite() => Some(*d),
            _ => {
                self.unmapped(key, v);
                None
            }
        }
    }

    /// A tag: strings as they are, ints and bools as text; others counted.
    fn tag(&mut self, attrs: &[KeyValue], key: &str) -> Option<String> {
        let v = attr(attrs, key)?;
        match v {
            any_value::Value::StringValue(s) => Some(s.clone()),
            any_value::Value::IntValue(i) => Some(i.to_string()),
            any_value::Value::BoolValue(b) => Some(if *b { "True" } else { "False" }.into()),
            _ => {
                self.unmapped(key, v);
                None
            }
        }
    }

    fn reject(&mut self, why: String) {
        self.rejected += 1;
        if self.first_rejection.is_none() {
            self.first_rejection = Some(why);
        }
    }
}

/// Maps every span of `req`; `default_service` names spans whose resource has
/// no `service.name`.
pub fn map_request(req: &ExportTraceServiceRequest, mapping: &SpanMapping, default_service: &str) -> Mapped {
    let mut out = Mapped::default();
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    for rs in &req.resource_spans {
        let rattrs = rs.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]);
        let service = first_text(rattrs, &["service.name"]).unwrap_or_else(|| default_service.to_string());
        let at = match bodies.iter().position(|(s, _)| *s == service) {
            Some(i) => i,
            None => {
                bodies.push((service.clone(), Vec::new()));
                bodies.len() - 1
            }
        };
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref().map(|s| s.name.as_str()).filter(|s| !s.is_empty());
            for sp in &ss.spans {
                if let Some(t) = map_span(sp, scope, &service, mapping, &mut out) {
                    let body = &mut bodies[at].1;
                    // A `Value` always serializes.
                    let _ = serde_json::to_writer(&mut *body, &t);
                    body.push(b'\n');
                }
            }
        }
    }
    out.bodies = bodies.into_iter().filter(|(_, b)| !b.is_empty()).collect();
    out
}

/// One span as a pypss trace object, or `None` (rejected, counted).
fn map_span(sp: &Span, scope: Option<&str>, service: &str, m: &SpanMapping, out: &mut Mapped) -> Option<Value> {
    let label = || format!("span '{}' ({})", sp.name.chars().take(80).collect::<String>(), hex::encode(&sp.span_id));
    if sp.start_time_unix_nano == 0 {
        out.reject(format!("{}: no start time", label()));
        return None;
    }
    if sp.end_time_unix_nano < sp.start_time_unix_nano {
        out.reject(format!("{}: ends before it starts", label()));
        return None;
    }
    let a = sp.attributes.as_slice();
    let name = Some(sp.name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| first_text(a, &["code.function.name", "code.function"]))
        .unwrap_or_default();
    let module =
        first_text(a, &["code.namespace"]).or_else(|| scope.map(str::to_string)).unwrap_or_else(|| service.to_string());
    let error = sp.status.as_ref().is_some_and(|s| s.code == status::StatusCode::Error as i32);
    let exception = sp.events.iter().rev().find(|e| e.name == "exception");
    let (mut exception_type, mut exception_message) = match exception {
        Some(e) => (first_text(&e.attributes, &["exception.type"]), first_text(&e.attributes, &["exception.message"])),
        None => (None, None),
    };
    if error && exception_type.is_none() {
        exception_message = sp.status.as_ref().map(|s| s.message.clone()).filter(|s| !s.is_empty());
        exception_type = exception_message.as_ref().map(|_| "Error".to_string());
    }
    let start = sp.start_time_unix_nano;
    let mut o = Map::new();
    o.insert("name".into(), name.into());
    o.insert("module".into(), module.into());
    if let Some(f) = first_text(a, &["code.file.path", "code.filepath"]) {
        o.insert("filename".into(), f.into());
    }
    if let Some(l) = ["code.line.number", "code.lineno"].iter().find_map(|k| match attr(a, k) {
        Some(any_value::Value::IntValue(i)) => Some(*i),
        _ => None,
    }) {
        o.insert("lineno".into(), l.into());
    }
    o.insert("timestamp".into(), json!(start as f64 / 1e9));
    o.insert("duration".into(), json!((sp.end_time_unix_nano - start) as f64 / 1e9));
    o.insert("error".into(), error.into());
    o.insert("exception_type".into(), exception_type.filter(|_| error).into());
    o.insert("exception_message".into(), exception_message.filter(|_| error).into());
    o.insert("branch_tag".into(), out.tag(a, &m.branch_tag).filter(|t| !t.is_empty()).into());
    for (k, (field, key)) in OPTIONAL_FIELDS.iter().zip([&m.cpu_time, &m.wait_time, &m.memory]).enumerate() {
        match out.number(a, key) {
            Some(v) => {
                o.insert((*field).into(), v.into());
            }
            None => out.absent[k] += 1,
        }
    }
    o.insert("trace_id".into(), format!("otel:{}:{}", hex::encode(&sp.trace_id), hex::encode(&sp.span_id)).into());
    let kind = usize::try_from(sp.kind).ok().filter(|k| *k < 6).unwrap_or(6);
    out.by_kind[kind] += 1;
    out.spans += 1;
    Some(Value::Object(o))
}

/// Decodes an OTLP/JSON body (`ExportTraceServiceRequest`).
pub fn decode_json(bytes: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        format!("not an OTLP/JSON ExportTraceServiceRequest at {path}: {}", e.inner())
    })
}
