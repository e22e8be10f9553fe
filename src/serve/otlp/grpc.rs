//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`,
//! on the same hardened server as pss's gRPC input (connection limit, idle
//! timeout, message size limit, refusals counted), gzip accepted.

use std::marker::PhantomData;
use std::sync::Arc;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, ProstCodec};
use tonic::{Request, Response, Status};

use super::pb::collector::trace_service_server::{TraceService, TraceServiceServer};
use super::pb::collector::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use super::pb::{Any, ProtoDuration, RetryInfo, RpcStatus};
use super::{ExportError, Exporter, SpanMapping, RETRY_AFTER};
use crate::serve::grpc::GrpcConfig;
use crate::serve::metrics::Reason;
use crate::serve::writer::InputKind;

/// tonic's prost codec, except that a message that is not valid protobuf is
/// INVALID_ARGUMENT (OTLP: malformed data, not retryable) instead of
/// INTERNAL. Named by `build.rs` for the OTLP services.
#[derive(Debug, Clone)]
pub struct OtlpCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for OtlpCodec<T, U> {
    fn default() -> Self {
        OtlpCodec(PhantomData)
    }
}

impl<T, U> Codec for OtlpCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = OtlpDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::default())
    }
    fn decoder(&mut self) -> Self::Decoder {
        OtlpDecoder(PhantomData)
    }
}

/// Decodes `U`; see [`OtlpCodec`].
#[derive(Debug, Clone)]
pub struct OtlpDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for OtlpDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // "failed to decode" is what the refusal counter looks for.
        U::decode(buf).map(Some).map_err(|e| Status::invalid_argument(format!("failed to decode the request: {e}")))
    }
}

/// The OTLP/gRPC input's configuration: pss's gRPC limits and the span mapping.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct OtlpGrpcConfig {
    pub grpc: GrpcConfig,
    pub mapping: SpanMapping,
}

#[derive(Clone)]
struct OtlpGrpc {
    exporter: Exporter,
    token: Option<Arc<String>>,
}

/// UNAVAILABLE with a `RetryInfo` in the status details (OTLP: retry after
/// the delay) and in `google.rpc.retryinfo-bin`.
fn retry_later(message: String) -> Status {
    let info = RetryInfo { retry_delay: Some(ProtoDuration { seconds: RETRY_AFTER.as_secs() as i64, nanos: 0 }) };
    let details = RpcStatus {
        code: tonic::Code::Unavailable as i32,
        message: message.clone(),
        details: vec![Any { type_url: "type.googleapis.com/google.rpc.RetryInfo".into(), value: info.encode_to_vec() }],
    };
    let mut status = Status::with_details(tonic::Code::Unavailable, message, details.encode_to_vec().into());
    // Where OpenTelemetry's Python exporter looks for it.
    status
        .metadata_mut()
        .insert_bin("google.rpc.retryinfo-bin", tonic::metadata::MetadataValue::from_bytes(&info.encode_to_vec()));
    status
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        r: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let auth = r.metadata().get("authorization").and_then(|v| v.to_str().ok());
        if !crate::serve::http::authorized(&self.token, auth) {
            self.exporter.metrics.rejected(InputKind::OtlpGrpc, Reason::Unauthorized, 1);
            return Err(Status::unauthenticated("missing or wrong bearer token"));
        }
        let service = r.metadata().get("x-pss-service").and_then(|v| v.to_str().ok()).map(str::to_string);
        match self.exporter.export(r.into_inner(), service).await {
            Ok(resp) => Ok(Response::new(resp)),
            Err(ExportError::Busy(m)) | Err(ExportError::Unavailable(m)) => Err(retry_later(m)),
            Err(ExportError::Invalid(m)) => Err(Status::invalid_argument(m)),
            Err(ExportError::TooLarge(m)) => Err(Status::resource_exhausted(m)),
        }
    }
}

/// Builds the OTLP/gRPC input; the future serves until `shutdown` resolves.
pub(crate) async fn build(
    cfg: OtlpGrpcConfig,
    ctx: crate::serve::input::InputContext,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(std::net::SocketAddr, impl std::future::Future<Output = Result<(), tonic::transport::Error>>)> {
    let g = cfg.grpc;
    let listener = tokio::net::TcpListener::bind(g.address).await?;
    let addr = listener.local_addr()?;
    let metrics = ctx.metrics.clone();
    let exporter = Exporter::new(&ctx, cfg.mapping, g.patience, InputKind::OtlpGrpc);
    let svc = OtlpGrpc { exporter, token: ctx.token };
    let server = TraceServiceServer::new(svc)
        .max_decoding_message_size(g.max_message_bytes)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    let routes = tonic::service::Routes::new(server);
    let fut = crate::serve::grpc::serve_routes(
        listener,
        routes,
        g.max_connections,
        g.idle_timeout,
        InputKind::OtlpGrpc,
        metrics,
        shutdown,
    );
    Ok((addr, fut))
}
