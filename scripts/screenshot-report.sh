#!/usr/bin/env bash
# Renders an HTML report in headless Chromium and saves a PNG, to look at
# what a person sees. Needs Debian's chromium (apt-get install -y chromium).
# Usage: scripts/screenshot-report.sh REPORT.html OUT.png [WIDTHxHEIGHT]
set -euo pipefail
html=$(realpath "$1"); out=$2; size=${3:-1100x2600}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size="${size/x/,}" --screenshot="$out" "file://$html" 2>/dev/null
echo "wrote $out"
