"""Writes datasets/sample-traces.json: a seeded, pypss-shaped trace file of a
small web service ("shop") over ten minutes, with a latency and error burst
in `api.orders` and event-loop lag readings. Run: python datasets/make_sample.py
"""

import json
import os
import random

rng = random.Random(20261126)
MODULES = {
    "api.orders": ["create_order", "get_order", "list_orders"],
    "api.users": ["login", "get_profile"],
    "db.session": ["execute", "commit"],
    "cache.redis": ["get", "set"],
}
traces = []
t0 = 1_795_680_000.0
for i in range(1500):
    ts = t0 + i * 0.4
    module = rng.choice(list(MODULES))
    name = rng.choice(MODULES[module])
    incident = module == "api.orders" and 900 <= i < 1100
    dur = rng.lognormvariate(-3.5 if incident else -4.5, 0.9 if incident else 0.35)
    cpu = dur * rng.uniform(0.1, 0.4 if incident else 0.9)
    err = rng.random() < (0.35 if incident else 0.01)
    mem = 120_000_000 + i * 20_000 + rng.randint(0, 3_000_000)
    traces.append({
        "trace_id": f"{ts}-{rng.randint(0, 1_000_000)}",
        "name": name,
        "filename": f"/srv/shop/{module.replace('.', '/')}.py",
        "lineno": rng.randint(10, 300),
        "module": module,
        "duration": dur,
        "cpu_time": cpu,
        "wait_time": max(0.0, dur - cpu),
        "memory": mem,
        "memory_diff": rng.randint(-50_000, 80_000),
        "error": err,
        "exception_type": ("TimeoutError" if incident else "ValueError") if err else None,
        "exception_message": ("upstream payment gateway timed out after 2s" if incident else "bad input") if err else None,
        "branch_tag": rng.choice(["cache_hit", "cache_miss"]) if module == "cache.redis" else None,
        "timestamp": ts,
    })
    if i % 50 == 0:
        traces.append({
            "system_metric": True, "name": "event_loop", "module": "system", "timestamp": ts,
            "metadata": {"lag": rng.uniform(0.002, 0.03 if incident else 0.008), "active_tasks": rng.randint(5, 40), "churn_rate": 2.0},
        })
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample-traces.json")
with open(out, "w") as f:
    json.dump(traces, f, indent=1)
print(f"wrote {len(traces)} traces to {out}")
