//! Generates the gRPC code from `proto/` at build time with `protox` (a
//! protobuf compiler in Rust), so no system `protoc` is needed.
//!
//! The OpenTelemetry messages also derive serde's `Deserialize` in OTLP/JSON's
//! shape (lowerCamelCase keys, 64-bit integers as strings, trace and span ids
//! as hex, `AnyValue`'s one-of as its own key), so OTLP/HTTP JSON and
//! protobuf bodies decode into the same types. The helpers named here live in
//! `src/serve/otlp/json.rs`.

const OTLP: [&str; 4] = [
    "opentelemetry/proto/common/v1/common.proto",
    "opentelemetry/proto/resource/v1/resource.proto",
    "opentelemetry/proto/trace/v1/trace.proto",
    "opentelemetry/proto/collector/trace/v1/trace_service.proto",
];

/// Messages (and packages) that derive `Deserialize`.
const SERDE_MESSAGES: [&str; 8] = [
    ".opentelemetry.proto.common.v1.ArrayValue",
    ".opentelemetry.proto.common.v1.KeyValueList",
    ".opentelemetry.proto.common.v1.KeyValue",
    ".opentelemetry.proto.common.v1.InstrumentationScope",
    ".opentelemetry.proto.common.v1.EntityRef",
    ".opentelemetry.proto.resource",
    ".opentelemetry.proto.trace",
    ".opentelemetry.proto.collector",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["pypss/protos/trace.proto", "pss/batch.proto"], ["proto"])?;
    tonic_build::configure().build_client(true).build_server(true).compile_fds(fds)?;

    let json = "crate::serve::otlp::json";
    let mut b = tonic_build::configure()
        .build_client(true)
        .build_server(true)
        // Malformed protobuf is INVALID_ARGUMENT, as OTLP says, not tonic's INTERNAL.
        .codec_path("crate::serve::otlp::grpc::OtlpCodec")
        .enum_attribute(".opentelemetry.proto.common.v1.AnyValue.value", "#[derive(serde::Deserialize)]")
        .enum_attribute(".opentelemetry.proto.common.v1.AnyValue.value", "#[serde(rename_all = \"camelCase\")]");
    // Every message but AnyValue, whose one-of is its own key (json.rs).
    for m in SERDE_MESSAGES {
        b = b
            .message_attribute(m, "#[derive(serde::Deserialize)]")
            .message_attribute(m, "#[serde(rename_all = \"camelCase\", default)]");
    }
    let with = |path: &str, f: &str| (path.to_string(), format!("#[serde(deserialize_with = \"{json}::{f}\")]"));
    for (path, attr) in [
        with(".opentelemetry.proto.common.v1.AnyValue.value.int_value", "int64"),
        with(".opentelemetry.proto.common.v1.AnyValue.value.double_value", "double"),
        with(".opentelemetry.proto.common.v1.AnyValue.value.bytes_value", "base64"),
        with(".opentelemetry.proto.trace.v1.Span.trace_id", "hex"),
        with(".opentelemetry.proto.trace.v1.Span.span_id", "hex"),
        with(".opentelemetry.proto.trace.v1.Span.parent_span_id", "hex"),
        with(".opentelemetry.proto.trace.v1.Span.start_time_unix_nano", "uint64"),
        with(".opentelemetry.proto.trace.v1.Span.end_time_unix_nano", "uint64"),
        with(".opentelemetry.proto.trace.v1.Span.Event.time_unix_nano", "uint64"),
        with(".opentelemetry.proto.trace.v1.Span.Link.trace_id", "hex"),
        with(".opentelemetry.proto.trace.v1.Span.Link.span_id", "hex"),
    ] {
        b = b.field_attribute(path, attr);
    }
    b.compile_fds(protox::compile(OTLP, ["proto"])?)?;
    Ok(())
}
