"""Benchmark: `pss analyze` against `pypss analyze` on the same trace files.

Usage: python benches/analyze.py [--sizes 100000,1000000] [--repeat 3] [--pypss PATH]

Generates pypss-shaped trace files (an object with a "traces" array, indented
as `pypss run --output` writes it; seeded) under target/bench/, then runs both
tools on each file in the same session and prints wall time and peak memory
(max RSS of the process, from wait4) side by side, with the ratios. Results
are also written to target/bench/results.md. Build pss first:
`cargo build --release`.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "bench")
SCRATCH = os.path.join(OUT, "cwd")


def generate(path, n, seed=7):
    rng = random.Random(seed)
    mods = ["api.orders", "api.users", "db.session", "cache", "worker.jobs"]
    names = ["handle", "query", "render", "auth", "flush", "fetch"]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write('{\n  "overall": {},\n  "modules": {},\n  "traces": [\n')
        for i in range(n):
            # The fields and shapes of pypss's own trace records (trace_utils.py).
            err = rng.random() < 0.02
            start = 1_700_000_000.0 + i * 0.01 + rng.random() * 0.001
            dur = rng.lognormvariate(-4, 0.6)
            cpu = dur * rng.uniform(0.2, 1.0)
            mem = 80_000_000 + rng.randint(0, 4_000_000) + i * 8
            t = {
                "trace_id": f"{start}-{rng.randint(0, 1_000_000)}",
                "name": rng.choice(names),
                "filename": "/srv/app/handlers.py",
                "lineno": rng.randint(1, 400),
                "module": rng.choice(mods),
                "duration": dur,
                "cpu_time": cpu,
                "wait_time": max(0.0, dur - cpu),
                "memory": mem,
                "memory_diff": rng.randint(-4096, 4096),
                "error": err,
                "exception_type": "TimeoutError" if err else None,
                "exception_message": "upstream timed out" if err else None,
                "branch_tag": rng.choice(["hit", "miss", None]),
                "timestamp": start,
            }
            if rng.random() < 0.1:
                t["async_op"] = True
                t["yield_count"] = rng.randint(1, 5)
            text = json.dumps(t, indent=2)
            f.write("    " + text.replace("\n", "\n    "))
            f.write(",\n" if i + 1 < n else "\n")
        f.write("  ]\n}\n")
    os.replace(tmp, path)


def run(cmd):
    """Runs cmd; returns (wall seconds, peak RSS MiB, stdout)."""
    t0 = time.perf_counter()
    # Run in a scratch folder: pypss writes .pypss_alert_state.json into its cwd.
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=SCRATCH)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {err.decode()[-500:]}")
    return wall, ru.ru_maxrss / 1024.0, out.decode()


def pss_of(text):
    for line in text.splitlines():
        if line.startswith("PSS: "):
            return line.split()[1]
    return "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pypss", default=os.path.join(ROOT, "target", "pypss-venv", "bin", "pypss"))
    args = ap.parse_args()
    pss = os.path.join(ROOT, "target", "release", "pss")
    if not os.path.exists(pss):
        raise SystemExit("build pss first: cargo build --release")
    if not os.path.exists(args.pypss):
        raise SystemExit(f"pypss not found at {args.pypss}: run scripts/test.sh or pass --pypss")
    os.makedirs(SCRATCH, exist_ok=True)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        path = os.path.join(OUT, f"traces-{n}.json")
        if not os.path.exists(path):
            print(f"generating {path} ...", file=sys.stderr)
            generate(path, n)
        size = os.path.getsize(path) / 2**20
        py = [run([args.pypss, "analyze", "--trace-file", path]) for _ in range(args.repeat)]
        rs = [run([pss, "analyze", path]) for _ in range(args.repeat)]
        py_t, py_m = min(r[0] for r in py), max(r[1] for r in py)
        rs_t, rs_m = min(r[0] for r in rs), max(r[1] for r in rs)
        same = pss_of(py[0][2]) == pss_of(rs[0][2])
        rows.append((n, size, py_t, py_m, rs_t, rs_m, pss_of(py[0][2]), pss_of(rs[0][2]), same))
    head = "| traces | file MiB | pypss s | pypss MiB | pss s | pss MiB | speed-up | memory ratio | PSS pypss / pss |"
    lines = [head, "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for n, size, py_t, py_m, rs_t, rs_m, a, b, same in rows:
        lines.append(
            f"| {n:,} | {size:.0f} | {py_t:.2f} | {py_m:.0f} | {rs_t:.3f} | {rs_m:.0f} | "
            f"{py_t / rs_t:.1f}x | {rs_m / py_m:.2f} | {a} / {b}{'' if same else ' DIFFER'} |"
        )
    lines.append("")
    lines.append(f"best of {args.repeat} runs (wall), peak RSS max over runs; {os.cpu_count()} cores; "
                 f"python {sys.version.split()[0]}; {time.strftime('%Y-%m-%d')}")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
