//! Property tests of the trace reader on untrusted bytes (bounded case
//! counts, so they run in CI): generated trace documents in every shape read
//! as `serde_json` reads them, and mutated files — truncated at every offset,
//! bytes flipped or inserted, deep nesting, huge numbers, long strings,
//! invalid UTF-8 — end in a result or a clean error, never a panic.

use std::io::Write;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::json::{RawTrace, Scalar};
use super::{read_bytes, TraceSink};

/// Records the fields scoring reads, as JSON values, and what else happened.
#[derive(Default)]
struct Record {
    traces: Vec<Value>,
    /// `duration` when it read as a float (NaN and infinities included).
    float_durations: Vec<f64>,
    not_objects: usize,
    resets: usize,
}

/// The fields compared (those the scoring reader keeps).
const FIELDS: [&str; 7] = ["name", "module", "duration", "error", "timestamp", "exception_message", "branch_tag"];

/// A scalar as the comparison sees it: containers only by emptiness.
fn scalar_value(s: &Scalar<'_>) -> Value {
    match s {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => json!(b),
        Scalar::Int(t) => t.parse::<i64>().map_or_else(|_| json!({ "int": t }), |i| json!(i)),
        Scalar::Float(f) => json!(f),
        Scalar::Str(s) => json!(s),
        Scalar::Array(n) => json!({ "array": n }),
        Scalar::Object(n) => json!({ "object": n }),
    }
}

/// serde_json's value as the comparison sees it.
fn plain(v: &Value) -> Value {
    match v {
        Value::Array(a) => json!({ "array": !a.is_empty() }),
        Value::Object(o) => json!({ "object": !o.is_empty() }),
        Value::Number(n) if n.is_f64() => json!(n.as_f64()),
        other => other.clone(),
    }
}

impl TraceSink for Record {
    fn trace(&mut self, t: &RawTrace<'_>) {
        let fields = [&t.name, &t.module, &t.duration, &t.error, &t.timestamp, &t.exception_message, &t.branch_tag];
        let mut m = Map::new();
        for (k, v) in FIELDS.iter().zip(fields) {
            if let Some(s) = v {
                m.insert(k.to_string(), scalar_value(s));
            }
        }
        self.traces.push(Value::Object(m));
        if let Some(Scalar::Float(f)) = t.duration {
            self.float_durations.push(f);
        }
    }
    fn not_object(&mut self) {
        self.not_objects += 1;
    }
    fn reset(&mut self) {
        self.resets += 1;
    }
}

/// What serde_json reads of one trace object, in the same terms.
fn expected(obj: &Map<String, Value>) -> Value {
    let mut m = Map::new();
    for k in FIELDS {
        if let Some(v) = obj.get(k) {
            m.insert(k.to_string(), plain(v));
        }
    }
    Value::Object(m)
}

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        (-1e-300f64..1e300).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn any_trace() -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        Just("name"),
        Just("module"),
        Just("duration"),
        Just("error"),
        Just("timestamp"),
        Just("exception_message"),
        Just("branch_tag"),
        Just("memory"),
        Just("other"),
    ];
    // Every trace has a `name`: an object without any trace field is, on a
    // line of its own, a (wrong) top-level object, which is refused.
    (any_value(), prop::collection::vec((field, any_value()), 0..8)).prop_map(|(name, kv)| {
        let mut m: Map<String, Value> = kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        m.entry("name").or_insert(name);
        Value::Object(m)
    })
}

/// The four shapes pypss writes, and gzip.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Array,
    Wrapped,
    Lines,
}

fn render(traces: &[Value], shape: Shape, gzip: bool) -> Vec<u8> {
    let text = match shape {
        Shape::Array => serde_json::to_string(traces).unwrap(),
        Shape::Wrapped => json!({ "traces": traces }).to_string(),
        Shape::Lines => traces.iter().map(|t| t.to_string() + "\n").collect(),
    };
    if !gzip {
        return text.into_bytes();
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

/// Reads bytes; a panic fails the test, an error is a fine outcome.
fn read(bytes: &[u8]) -> (Result<(), String>, Record) {
    let mut r = Record::default();
    let res = read_bytes("fuzz", bytes, &mut r).map(|_| ()).map_err(|e| e.to_string());
    (res, r)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_documents_read_as_serde_json_reads_them(
        traces in prop::collection::vec(any_trace(), 1..12),
        shape in prop_oneof![Just(Shape::Array), Just(Shape::Wrapped), Just(Shape::Lines)],
        gzip in any::<bool>(),
    ) {
        let bytes = render(&traces, shape, gzip);
        let (res, r) = read(&bytes);
        prop_assert!(res.is_ok(), "{res:?}");
        let want: Vec<Value> = traces.iter().map(|t| expected(t.as_object().unwrap())).collect();
        prop_assert_eq!(r.traces, want);
        prop_assert_eq!(r.not_objects, 0);
    }

    #[test]
    fn flipped_and_inserted_bytes_end_cleanly(
        traces in prop::collection::vec(any_trace(), 1..6),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<bool>()), 1..8),
        shape in prop_oneof![Just(Shape::Array), Just(Shape::Wrapped), Just(Shape::Lines)],
        gzip in any::<bool>(),
    ) {
        let mut bytes = render(&traces, shape, gzip);
        for (at, b, insert) in edits {
            let i = at.index(bytes.len());
            if insert { bytes.insert(i, b) } else { bytes[i] = b }
        }
        let _ = read(&bytes);
    }
}

/// A small valid file of each shape, truncated at every offset: each prefix
/// reads or fails cleanly; a failure names the source.
#[test]
fn truncation_at_every_offset_ends_cleanly() {
    let traces: Vec<Value> = (0..4)
        .map(|i| {
            json!({"name": format!("f{i}é"), "module": "m", "duration": 0.5 + i as f64, "error": i == 2,
            "timestamp": 1.7e9, "exception_message": "a \"quoted\" \\ line\n", "metadata": {"lag": [1, {"x": null}]}})
        })
        .collect();
    for shape in [Shape::Array, Shape::Wrapped, Shape::Lines] {
        for gzip in [false, true] {
            let bytes = render(&traces, shape, gzip);
            for cut in 0..bytes.len() {
                if let (Err(e), _) = read(&bytes[..cut]) {
                    assert!(e.contains("fuzz"), "{shape:?} gzip={gzip} cut {cut}: the error names no source: {e}");
                }
            }
        }
    }
}

/// Hostile documents: each ends in a result or a clean error.
#[test]
fn hostile_documents_end_cleanly() {
    let deep_array = "[".repeat(100_000);
    let deep_object = r#"[{"name":"#.to_string() + &r#"{"a":"#.repeat(100_000);
    let long_string = format!(r#"[{{"name":"{}","duration":1}}]"#, "x".repeat(8 << 20));
    let huge_int = format!(r#"[{{"name":"f","duration":{}}}]"#, "9".repeat(100_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("deep array", deep_array.into_bytes()),
        ("deep object", deep_object.into_bytes()),
        ("long string", long_string.into_bytes()),
        ("huge int", huge_int.into_bytes()),
        ("huge exponent", br#"[{"name":"f","duration":1e99999999999999999999}]"#.to_vec()),
        ("invalid utf-8", b"[{\"name\":\"\xff\xfe\",\"duration\":1}]".to_vec()),
        ("lone surrogate", br#"[{"name":"\ud800","duration":1}]"#.to_vec()),
        ("nul bytes", b"\0\0\0\0".to_vec()),
        ("gzip header only", vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in cases {
        let (res, r) = read(&bytes);
        if what == "long string" {
            assert!(res.is_ok() && r.traces.len() == 1, "{what}: {res:?}");
        }
        if what == "deep array" || what == "deep object" || what == "invalid utf-8" {
            assert!(res.is_err(), "{what} was accepted");
        }
    }
}

/// Python's `json.loads` reads NaN, Infinity and out-of-range literals; the
/// reader must read them the same way (the table is CPython 3.12's answers).
#[test]
fn python_specials_read_as_python_reads_them() {
    let cases: [(&str, f64); 6] = [
        ("NaN", f64::NAN),
        ("Infinity", f64::INFINITY),
        ("-Infinity", f64::NEG_INFINITY),
        ("1e400", f64::INFINITY),
        ("-1e400", f64::NEG_INFINITY),
        ("1e-400", 0.0),
    ];
    for (lit, want) in cases {
        let (res, r) = read(format!(r#"[{{"name":"f","duration":{lit}}}]"#).as_bytes());
        assert!(res.is_ok(), "{lit}: {res:?}");
        let g = r.float_durations[0];
        assert!(g == want || (g.is_nan() && want.is_nan()), "{lit}: {g} != {want}");
    }
}
