#!/usr/bin/env bash
# pss serve ingest throughput (release build, this machine): HTTP batches of
# 1,000 and gRPC SubmitBatch from concurrent clients (examples/serve_bench.rs),
# then pypss's own GRPCCollector sending one SubmitTrace per trace.
# Usage: benches/serve.sh [TRACES_PER_INPUT] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bins --example serve_bench
PY=${PSS_PYTHON:-target/pypss-venv/bin/python}
target/release/examples/serve_bench "$PWD/target/release/pss" target/bench/serve "${1:-400000}" "${2:-4}"
# pypss's client: one call per trace. Its futures are kept here so the rate
# counts delivered traces (unmodified, it cancels calls on garbage collection).
dir=target/bench/serve-pypss; rm -rf "$dir"; mkdir -p "$dir"
target/release/pss serve --history "$dir/h.db" --grpc 127.0.0.1:50551 > "$dir/out.txt" &
pid=$!; sleep 1
"$PY" - <<'PY'
import time
from pypss.instrumentation.collectors import GRPCCollector
keep = []
g = GRPCCollector("127.0.0.1:50551")
orig = g.stub.SubmitTrace.future
g.stub.SubmitTrace.future = lambda m: keep.append(orig(m))
n = 20000
t = time.time()
for i in range(n):
    g.add_trace(dict(trace_id=f"p{i}", name="f", module="m", duration=0.01, memory=1000, timestamp=1.79e9 + i))
sent = time.time() - t
for f in keep: f.result(timeout=60)
total = time.time() - t
print(f"pypss GRPCCollector, one SubmitTrace per trace: {n} traces, client-side add_trace alone {n/sent:.0f}/s, delivered {n/total:.0f} traces/s")
PY
kill -TERM $pid; wait $pid || true
