#!/usr/bin/env bash
# Runs every check and test of pss. Works on a fresh clone: it installs what
# the tests need before running them — pypss 1.3.1 with grpcio, protobuf and
# redis from PyPI into target/pypss-venv (differential tests, and the real
# pypss clients `pss serve` is tested with) with selenium (the board's
# browser test), the OpenTelemetry SDK with its OTLP exporters, and
# nbclient with pandas, pyarrow and matplotlib (the notebook), and Debian's redis-server, prometheus-alertmanager,
# prometheus-pushgateway, chromium and chromium-driver (selenium is pointed
# at Debian's driver: nothing is downloaded at run time).
set -euo pipefail
cd "$(dirname "$0")/.."

# Building and testing pss takes about 4 GB of disk (the test build, clippy's
# check build, the Python venv); say so up front rather than fail mid-compile.
mkdir -p target
free_kb=$(df -Pk target | awk 'NR == 2 { print $4 }')
if [ "${free_kb:-0}" -lt $((5 * 1024 * 1024)) ]; then
    echo "warning: only $((free_kb / 1024)) MB free on $(df -P target | awk 'NR == 2 { print $6 }'); the build and tests need about 4 GB (free some, or set CARGO_TARGET_DIR elsewhere)" >&2
fi

VENV=target/pypss-venv
if ! "$VENV/bin/python" -c 'import pypss, grpc, redis, google.protobuf, prometheus_client, selenium, importlib.metadata as m; assert m.version("pypss") == "1.3.1"' 2>/dev/null; then
    echo "==> installing pypss==1.3.1, grpcio, protobuf, redis, prometheus-client, selenium into $VENV"
    mkdir -p target
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check pypss==1.3.1 grpcio==1.85.3 protobuf==7.36.2 redis==8.1.0 prometheus-client==0.26.0 selenium==4.51.0
fi
# The OpenTelemetry Python SDK and its OTLP exporters (the OTLP inputs' real clients).
if ! "$VENV/bin/python" -c 'import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http.trace_exporter, opentelemetry.exporter.otlp.proto.grpc.trace_exporter' 2>/dev/null; then
    echo "==> installing the OpenTelemetry SDK 1.45.2 with its OTLP/HTTP and OTLP/gRPC exporters into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check opentelemetry-sdk==1.45.2 opentelemetry-exporter-otlp-proto-http==1.45.2 opentelemetry-exporter-otlp-proto-grpc==1.45.2
fi
# What the notebook needs, and nbclient to execute it.
if ! "$VENV/bin/python" -c 'import nbclient, nbformat, ipykernel, pandas, pyarrow, matplotlib' 2>/dev/null; then
    echo "==> installing nbclient, ipykernel, pandas, pyarrow and matplotlib into $VENV (the notebook's test)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check nbclient==0.11.0 nbformat==5.11.1 ipykernel==7.4.0 pandas==3.1.1 pyarrow==26.0.1 matplotlib==3.11.2
fi
# Debian's real servers the tests start on 127.0.0.1.
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v prometheus-pushgateway >/dev/null || missing+=(prometheus-pushgateway)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]} (Debian)"
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get install -y "${missing[@]}" >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y "${missing[@]}" >/dev/null; }
fi
export PSS_PYTHON="$PWD/$VENV/bin/python"

step() { echo "==> $1 (at ${SECONDS}s)"; }
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
step "cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The library's unit tests, the binaries and the one integration-test binary
# (tests/it). Examples are checked by clippy above, not built again here.
cargo test --lib --bins --tests 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary, and
# the last binaries have no tests of their own).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
echo "==> done in ${SECONDS}s"
