"""Differential cases for custom metrics (pypss's plugin system).

For each case: traces.json, a pypss.toml naming the metrics in `plugins` (by
code, class name or dotted path) with a `[pypss.custom_metric_weights]`
table, and expected.json from pypss 1.3.1's own `compute_pss_from_traces`
and `get_module_score_breakdown` with those metric classes registered and
those weights set (pypss's own TOML loading drops the weights table, so the
script sets them as a plugin module would).

pypss's DB, NET and CACHE metrics raise on a null `branch_tag` (and DB/NET
on a null name or module) and score 0.0; for such cases expected.json holds
pypss's score of the same traces with the null texts read as "" (what the
metrics intend, and what pss computes), and `pypss_raw` what pypss gives.

usage: plugin_cases.py OUT_DIR [--seed N]
"""
import json
import os
import random
import sys

from pypss.cli.discovery import get_module_score_breakdown
from pypss.core.core import compute_pss_from_traces
from pypss.plugins import MetricRegistry
from pypss.plugins import metrics as m
from pypss.utils.config import GLOBAL_CONFIG

CLASSES = {
    "IO": m.IOStabilityMetric,
    "DB": m.DBStabilityMetric,
    "GC": m.GCStabilityMetric,
    "CACHE": m.CacheStabilityMetric,
    "STARVE": m.ThreadStarvationMetric,
    "NET": m.NetworkStabilityMetric,
    "KAFKA": m.KafkaLagStabilityMetric,
}
NAMES = ["db_query", "fetch_user", "http_get", "render_page", "commit_tx", "api_call", "compute", "send_mail"]
MODULES = ["app.db", "app.net", "app.core", "app.cache", "app.kafka"]
TAGS = ["cache_hit", "cache_miss", "fast", "slow", "CACHE_HIT:users", ""]


def traces(rng, n, nulls=False, system=True):
    out = []
    for i in range(n):
        t = {
            "name": rng.choice(NAMES),
            "module": rng.choice(MODULES),
            "duration": round(rng.lognormvariate(-3, 0.8), 6),
            "wait_time": round(rng.uniform(0, 0.02), 6),
            "memory": 1_000_000 + rng.randint(0, 50_000),
            "memory_diff": rng.choice([0, 10, -50, -150, -2000, -600, 300]),
            "error": rng.random() < 0.05,
            "branch_tag": rng.choice(TAGS),
            "timestamp": 1.79e9 + i * 0.1,
        }
        if nulls and rng.random() < 0.2:
            t["branch_tag"] = None
        out.append(t)
        if system and rng.random() < 0.15:
            meta = {"lag": round(rng.uniform(0, 0.05), 5)}
            if rng.random() < 0.7:
                meta["kafka_lag"] = rng.randint(0, 400)
            if rng.random() < 0.7:
                meta["gc_pause_duration"] = round(rng.uniform(0, 0.02), 5)
            out.append({"system_metric": True, "module": rng.choice(MODULES), "metadata": meta, "timestamp": 1.79e9 + i * 0.1})
    return out


def score(ts, codes, weights):
    MetricRegistry.clear()
    for c in codes:
        MetricRegistry.register(CLASSES[c])
    GLOBAL_CONFIG.custom_metric_weights = dict(weights)
    overall = compute_pss_from_traces(ts)
    modules = get_module_score_breakdown(ts)
    return {"pss": overall["pss"], "breakdown": overall["breakdown"],
            "modules": {k: {"pss": v["pss"], "breakdown": v["breakdown"]} for k, v in modules.items()}}


def naming(rng, code):
    cls = CLASSES[code].__name__
    return rng.choice([code, code.lower(), cls, f"pypss.plugins.metrics.{cls}"])


def main():
    out = sys.argv[1]
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 404
    rng = random.Random(seed)
    index = []
    for k in range(24):
        codes = rng.sample(sorted(CLASSES), rng.randint(1, 7)) if k else sorted(CLASSES)
        weights = {c: round(rng.uniform(0.05, 0.6), 2) for c in codes if rng.random() < 0.5}
        nulls = k % 4 == 3
        ts = traces(rng, rng.choice([2, 5, 40, 300]), nulls=nulls, system=k % 5 != 4)
        case = f"plugins-{k:02d}"
        d = os.path.join(out, case)
        os.makedirs(d)
        with open(os.path.join(d, "traces.json"), "w") as f:
            json.dump(ts, f)
        with open(os.path.join(d, "pypss.toml"), "w") as f:
            f.write("[pypss]\nplugins = [%s]\n" % ", ".join(json.dumps(naming(rng, c)) for c in codes))
            if weights:
                f.write("[pypss.custom_metric_weights]\n")
                for c, w in weights.items():
                    f.write(f"{c} = {w}\n")
        expected = None
        if nulls:
            clean = [dict(t, branch_tag="" if t.get("branch_tag") is None else t["branch_tag"]) for t in ts]
            expected = score(clean, codes, weights)
            expected["pypss_raw"] = score(ts, codes, weights)
        else:
            expected = score(ts, codes, weights)
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump(expected, f)
        index.append(case)
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f)


if __name__ == "__main__":
    main()
