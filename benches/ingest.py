"""Benchmark: `pss ingest` of 1,000,000 simulated traces into a new database,
windows included. Usage: python benches/ingest.py [--repeat 3]
Build first: cargo build --release.
"""

import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "bench", "ingest")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    pss = os.path.join(ROOT, "target", "release", "pss")
    if not os.path.exists(pss):
        raise SystemExit("build pss first: cargo build --release")
    os.makedirs(OUT, exist_ok=True)
    src = os.path.join(OUT, "checkout.jsonl")
    if not os.path.exists(src):
        # One day of one service at ~700 traces/minute plus lag readings: ~1M traces.
        subprocess.run([pss, "simulate", "--days", "1", "--services", "1", "--rate", "1260", "--seed", "1", "-o", OUT],
                       check=True, stdout=subprocess.DEVNULL)
    n = sum(1 for _ in open(src))
    best = None
    for _ in range(args.repeat):
        db = os.path.join(OUT, "bench.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.remove(db + suffix)
        t0 = time.perf_counter()
        p = subprocess.Popen([pss, "ingest", src, "--history", db, "--service", "checkout"], stdout=subprocess.PIPE)
        out = p.stdout.read().decode()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit("pss ingest failed")
        if best is None or wall < best[0]:
            best = (wall, ru.ru_maxrss / 1024.0, out.strip())
    wall, rss, out = best
    print(f"| traces | file MiB | pss ingest s | peak MiB | traces/s |")
    print(f"|---:|---:|---:|---:|---:|")
    print(f"| {n:,} | {os.path.getsize(src) / 2**20:.0f} | {wall:.2f} | {rss:.0f} | {n / wall:,.0f} |")
    print(f"\n{out}\nbest of {args.repeat}; {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
