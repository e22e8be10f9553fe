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
                    // Plain strings and numbers always serialize.
                    let _ = serde_json::to_writer(&mut *body, &t);
                    body.push(b'\n');
                }
            }
        }
    }
    out.bodies = bodies.into_iter().filter(|(_, b)| !b.is_empty()).collect();
    out
}

/// A span as the pypss trace object it is stored as (pypss's keys; the
/// optional readings left out when the span lacks them). Serialized straight
/// to the request's JSON Lines body, without a map per span.
#[derive(serde::Serialize)]
struct PypssTrace {
    name: String,
    module: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lineno: Option<i64>,
    timestamp: f64,
    duration: f64,
    error: bool,
    exception_type: Option<String>,
    exception_message: Option<String>,
    branch_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wait_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<f64>,
    trace_id: String,
}

/// One span as a pypss trace, or `None` (rejected, counted).
fn map_span(sp: &Span, scope: Option<&str>, service: &str, m: &SpanMapping, out: &mut Mapped) -> Option<PypssTrace> {
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
    // cpu_time, wait_time, memory ([`OPTIONAL_FIELDS`]'s order); absent ones counted.
    let [cpu_time, wait_time, memory] = [&m.cpu_time, &m.wait_time, &m.memory].map(|key| out.number(a, key));
    for (k, v) in [cpu_time, wait_time, memory].iter().enumerate() {
        out.absent[k] += u64::from(v.is_none());
    }
    let kind = usize::try_from(sp.kind).ok().filter(|k| *k < 6).unwrap_or(6);
    out.by_kind[kind] += 1;
    out.spans += 1;
    Some(PypssTrace {
        name,
        module,
        filename: first_text(a, &["code.file.path", "code.filepath"]),
        lineno: ["code.line.number", "code.lineno"].iter().find_map(|k| match attr(a, k) {
            Some(any_value::Value::IntValue(i)) => Some(*i),
            _ => None,
        }),
        timestamp: start as f64 / 1e9,
        duration: (sp.end_time_unix_nano - start) as f64 / 1e9,
        error,
        exception_type: exception_type.filter(|_| error),
        exception_message: exception_message.filter(|_| error),
        branch_tag: out.tag(a, &m.branch_tag).filter(|t| !t.is_empty()),
        cpu_time,
        wait_time,
        memory,
        trace_id: format!("otel:{}:{}", hex::encode(&sp.trace_id), hex::encode(&sp.span_id)),
    })
}

/// Decodes an OTLP/JSON body (`ExportTraceServiceRequest`).
pub fn decode_json(bytes: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        format!("not an OTLP/JSON ExportTraceServiceRequest at {path}: {}", e.inner())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::otlp::pb::common::{AnyValue, InstrumentationScope};
    use crate::serve::otlp::pb::resource::Resource;
    use crate::serve::otlp::pb::trace::{span::Event, ResourceSpans, ScopeSpans, Status};
    use prost::Message;
    use serde_json::Value;

    fn kv(k: &str, v: any_value::Value) -> KeyValue {
        KeyValue { key: k.into(), value: Some(AnyValue { value: Some(v) }), ..Default::default() }
    }
    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    fn request(service: Option<&str>, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: service.map(|n| vec![kv("service.name", s(n))]).unwrap_or_default(),
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope { name: "shop.http".into(), ..Default::default() }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn span(name: &str, start: u64, end: u64, attributes: Vec<KeyValue>) -> Span {
        Span {
            trace_id: vec![0xab; 16],
            span_id: vec![0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08],
            name: name.into(),
            kind: 2,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            ..Default::default()
        }
    }

    fn lines(m: &Mapped) -> Vec<(String, Value)> {
        m.bodies
            .iter()
            .flat_map(|(svc, b)| {
                b.split(|c| *c == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| (svc.clone(), serde_json::from_slice(l).unwrap()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn a_span_maps_field_by_field() {
        let mut sp = span(
            "",
            1_700_000_000_250_000_000,
            1_700_000_000_400_000_000,
            vec![
                kv("code.function", s("price_cart")),
                kv("code.namespace", s("shop.pricing")),
                kv("code.filepath", s("shop/pricing.py")),
                kv("code.lineno", any_value::Value::IntValue(42)),
                kv("pss.memory", any_value::Value::IntValue(2048)),
                kv("pss.wait_time", any_value::Value::DoubleValue(0.003)),
                kv("pss.branch_tag", any_value::Value::BoolValue(true)),
            ],
        );
        sp.status = Some(Status { code: status::StatusCode::Error as i32, message: "boom".into() });
        sp.events = vec![Event {
            name: "exception".into(),
            attributes: vec![kv("exception.type", s("KeyError")), kv("exception.message", s("'sku-1'"))],
            ..Default::default()
        }];
        let m = map_request(&request(Some("checkout"), vec![sp]), &SpanMapping::default(), "default");
        let got = lines(&m);
        assert_eq!(got.len(), 1);
        let (svc, t) = &got[0];
        assert_eq!(svc, "checkout");
        assert_eq!(t["name"], "price_cart", "code.function when the span has no name");
        assert_eq!(t["module"], "shop.pricing");
        assert_eq!((t["filename"].as_str(), t["lineno"].as_i64()), (Some("shop/pricing.py"), Some(42)));
        approx::assert_abs_diff_eq!(t["timestamp"].as_f64().unwrap(), 1_700_000_000.25, epsilon = 1e-6);
        approx::assert_abs_diff_eq!(t["duration"].as_f64().unwrap(), 0.15, epsilon = 1e-9);
        assert_eq!(t["error"], true);
        assert_eq!(
            (t["exception_type"].as_str(), t["exception_message"].as_str()),
            (Some("KeyError"), Some("'sku-1'"))
        );
        assert_eq!(t["branch_tag"], "True");
        assert_eq!((t["memory"].as_f64(), t["wait_time"].as_f64()), (Some(2048.0), Some(0.003)));
        assert!(t.get("cpu_time").is_none(), "absent, not 0");
        assert_eq!(m.absent, [1, 0, 0]);
        assert_eq!(t["trace_id"], format!("otel:{}:0102030405060708", "ab".repeat(16)));
        assert_eq!(m.by_kind[2], 1);
    }

    #[test]
    fn module_falls_back_to_the_scope_then_the_service_and_services_split() {
        let mut r = request(Some("a"), vec![span("GET /", 10, 20, vec![])]);
        let mut other = request(None, vec![span("job", 10, 20, vec![])]);
        other.resource_spans[0].scope_spans[0].scope = None;
        r.resource_spans.push(other.resource_spans.remove(0));
        let m = map_request(&r, &SpanMapping::default(), "fallback");
        let got = lines(&m);
        assert_eq!(got[0].0, "a");
        assert_eq!(got[0].1["module"], "shop.http");
        assert_eq!(got[1].0, "fallback", "no service.name: the request's service");
        assert_eq!(got[1].1["module"], "fallback");
        assert_eq!(got[1].1["error"], false);
        assert_eq!(got[1].1["exception_type"], Value::Null);
    }

    #[test]
    fn spans_that_make_no_trace_are_rejected_and_wrong_types_counted() {
        let spans = vec![
            span("no start", 0, 5, vec![]),
            span("backwards", 20, 10, vec![]),
            span(
                "ok",
                10,
                20,
                vec![kv("pss.memory", s("lots")), kv("pss.cpu_time", any_value::Value::BoolValue(true))],
            ),
        ];
        let m = map_request(&request(Some("a"), spans), &SpanMapping::default(), "d");
        assert_eq!((m.spans, m.rejected), (1, 2));
        assert!(m.first_rejection.as_deref().unwrap().contains("'no start'"));
        assert_eq!(m.unmapped.get("pss.memory:string"), Some(&1));
        assert_eq!(m.unmapped.get("pss.cpu_time:bool"), Some(&1));
        assert_eq!(m.absent, [1, 1, 1]);
        let empty = map_request(&request(Some("a"), vec![span("x", 0, 0, vec![])]), &SpanMapping::default(), "d");
        assert!(empty.bodies.is_empty(), "no body for a service with no trace");
    }

    #[test]
    fn configured_attributes_are_read() {
        let m = SpanMapping { memory: "process.memory.usage".into(), ..SpanMapping::default() };
        let sp = span("x", 10, 20, vec![kv("process.memory.usage", any_value::Value::IntValue(7))]);
        let got = lines(&map_request(&request(Some("a"), vec![sp]), &m, "d"));
        assert_eq!(got[0].1["memory"], 7.0);
    }

    #[test]
    fn the_specifications_json_example_decodes_like_its_protobuf() {
        let j = include_bytes!("../../../proto/opentelemetry/examples/trace.json");
        let req = decode_json(j).unwrap();
        let sp = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(hex::encode(&sp.trace_id), "5b8efff798038103d269b633813fc60c");
        assert_eq!((sp.start_time_unix_nano, sp.end_time_unix_nano), (1544712660000000000, 1544712661000000000));
        assert_eq!(sp.kind, 2);
        // The same request through protobuf maps to the same traces.
        let again = ExportTraceServiceRequest::decode(req.encode_to_vec().as_slice()).unwrap();
        let (a, b) =
            (map_request(&req, &SpanMapping::default(), "d"), map_request(&again, &SpanMapping::default(), "d"));
        assert_eq!(a.bodies, b.bodies);
        let got = lines(&a);
        assert_eq!(got[0].0, "my.service");
        assert_eq!(
            (got[0].1["name"].as_str(), got[0].1["module"].as_str()),
            (Some("I'm a server span"), Some("my.library"))
        );
        assert_eq!(got[0].1["duration"], 1.0);
    }

    #[test]
    fn json_values_of_every_type_and_bad_json_named() {
        let j = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"","spanId":"00ff","name":"n",
            "startTimeUnixNano":5,"endTimeUnixNano":"7","attributes":[
              {"key":"i","value":{"intValue":"-3"}},{"key":"d","value":{"doubleValue":"NaN"}},
              {"key":"b","value":{"bytesValue":"AAE="}},{"key":"a","value":{"arrayValue":{"values":[{"boolValue":true}]}}},
              {"key":"k","value":{"kvlistValue":{"values":[{"key":"x","value":{}}]}}},{"key":"e","value":{}}],
            "status":{"code":2},"events":[{"timeUnixNano":"6","name":"exception"}],"unknownField":1}]}]}]}"#;
        let req = decode_json(j).unwrap();
        let sp = &req.resource_spans[0].scope_spans[0].spans[0];
        let v = |k: &str| attr(&sp.attributes, k).cloned();
        assert_eq!(v("i"), Some(any_value::Value::IntValue(-3)));
        assert!(matches!(v("d"), Some(any_value::Value::DoubleValue(d)) if d.is_nan()));
        assert_eq!(v("b"), Some(any_value::Value::BytesValue(vec![0, 1])));
        assert!(matches!(v("a"), Some(any_value::Value::ArrayValue(_))));
        assert_eq!(v("e"), None);
        assert_eq!(sp.span_id, vec![0, 255]);
        let bad = decode_json(br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#).unwrap_err();
        assert!(bad.contains("resourceSpans[0].scopeSpans[0].spans[0].traceId"), "{bad}");
        assert!(decode_json(b"{\"resourceSpans\": 5}").is_err());
    }
}
