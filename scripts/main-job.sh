#!/usr/bin/env bash
# The main job, end to end, on the embedded default (SQLite): ingest the
# shipped labeled history into a new database, tune the score against its
# incidents, print the table and where the outputs went. Works on a fresh
# clone (needs only the Rust toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bins
PSS=target/release/pss
OUT=target/main-job
rm -rf "$OUT" && mkdir -p "$OUT"
DB=$OUT/history.db
for service in checkout search payments; do
    $PSS ingest "datasets/history/$service.jsonl.gz" --history "$DB" --service "$service" --window 5m
done
$PSS incidents import datasets/history/incidents.csv --history "$DB"
target/release/pss-tune --history "$DB" --window 5m --seed 7 --output models/all/pss-tuned.toml "$@"
