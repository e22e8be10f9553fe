"""A small program instrumented with the OpenTelemetry Python SDK, exporting
with the SDK's own OTLP exporter (HTTP/protobuf or gRPC) to `pss serve`.

Prints one JSON line per finished span (what the SDK recorded: ids, name,
kind, status, times, attributes) so the test can check every span arrived
and mapped as documented.

usage: otel_client.py http|grpc ENDPOINT SERVICE ROUNDS THREADS
"""
import json
import sys
import threading

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

protocol, endpoint, service, rounds, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
lock = threading.Lock()


class Recording(SpanExporter):
    """Prints what the SDK hands its exporters."""

    def export(self, spans):
        with lock:
            for s in spans:
                print(json.dumps({
                    "trace_id": format(s.context.trace_id, "032x"),
                    "span_id": format(s.context.span_id, "016x"),
                    "name": s.name,
                    "kind": s.kind.name,
                    "error": s.status.status_code.name == "ERROR",
                    "start": s.start_time,
                    "end": s.end_time,
                    "scope": s.instrumentation_scope.name,
                    "attributes": {k: v for k, v in s.attributes.items()},
                    "exceptions": [dict(e.attributes) for e in s.events if e.name == "exception"],
                }), flush=True)
        return SpanExportResult.SUCCESS


def exporter():
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter(endpoint=endpoint, timeout=60)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=60)


def work(n):
    # One provider per thread: exports run concurrently, as from several processes.
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    otlp = exporter()
    provider.add_span_processor(SimpleSpanProcessor(Recording()))
    provider.add_span_processor(SimpleSpanProcessor(otlp))
    tracer = provider.get_tracer("shop.checkout", "1.0")
    for i in range(rounds):
        with tracer.start_as_current_span("GET /checkout", kind=trace.SpanKind.SERVER) as root:
            root.set_attribute("pss.branch_tag", "cart" if i % 2 else "express")
            with tracer.start_as_current_span("price_cart", attributes={
                "code.namespace": "shop.pricing", "code.function": "price_cart",
                "code.filepath": "shop/pricing.py", "code.lineno": 42,
                "pss.memory": 1_000_000 + i, "pss.wait_time": 0.002, "pss.cpu_time": 0.001,
            }):
                pass
            with tracer.start_as_current_span("charge", kind=trace.SpanKind.CLIENT,
                                              attributes={"pss.memory": "lots"}):
                pass
            if i % 3 == 0:
                try:
                    with tracer.start_as_current_span("reserve_stock", attributes={"code.namespace": "shop.stock"}):
                        raise KeyError(f"sku-{n}-{i}")
                except KeyError:
                    pass
    provider.shutdown()


ts = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
