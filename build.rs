//! Generates the gRPC code from `proto/` at build time with `protox` (a
//! protobuf compiler in Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["pypss/protos/trace.proto", "pss/batch.proto"], ["proto"])?;
    tonic_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
