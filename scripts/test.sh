#!/usr/bin/env bash
# Runs every check and test of pss. Works on a fresh clone: it installs what
# the tests need (pypss 1.3.1 from PyPI into target/pypss-venv for the
# differential tests) before running them.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/pypss-venv
if ! "$VENV/bin/python" -c 'import pypss, importlib.metadata as m; assert m.version("pypss") == "1.3.1"' 2>/dev/null; then
    echo "==> installing pypss==1.3.1 into $VENV"
    mkdir -p target
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check pypss==1.3.1
fi
export PSS_PYTHON="$PWD/$VENV/bin/python"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --all-targets 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary, and
# the last binaries have no tests of their own).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
