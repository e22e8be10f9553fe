"""Generate differential test cases and score them with pypss 1.3.1 itself.

Usage: python cases.py OUTDIR [--seed N]

Writes OUTDIR/<case>/traces.json (a JSON array, as pypss writes), an optional
config file (pypss.toml or pyproject.toml), and OUTDIR/<case>/expected.json:
pypss's own `compute_pss_from_traces` and `get_module_score_breakdown` on the
traces parsed with `json.load` (pypss's in-process, float path), with the
configuration loaded by pypss's own `PSSConfig.load()` from the case folder.
Where pypss raises, expected.json records {"crash": "<ExceptionType>"}.
Every random choice is seeded.
"""

import json
import math
import os
import random
import sys

import pypss.cli.discovery as discovery
import pypss.core.advisor as advisor
import pypss.core.core as core
from pypss.utils.config import PSSConfig


def trace(rng, i, **kw):
    t = {
        "trace_id": f"t{i}",
        "name": kw.pop("name", rng.choice(["handle", "query", "render", "auth"])),
        "filename": "app.py",
        "lineno": 10 + i % 50,
        "module": kw.pop("module", rng.choice(["api.orders", "api.users", "db", "cache"])),
        "duration": rng.lognormvariate(-4, 0.5),
        "cpu_time": rng.random() * 0.01,
        "wait_time": rng.random() * 0.002,
        "memory": 50_000_000 + rng.randint(0, 2_000_000),
        "memory_diff": rng.randint(-1000, 1000),
        "error": False,
        "exception_type": None,
        "exception_message": None,
        "branch_tag": None,
        "timestamp": 1_700_000_000.0 + i * 0.05,
        "async_op": False,
        "yield_count": 0,
    }
    t.update(kw)
    return t


def base(rng, n, **kw):
    return [trace(rng, i, **kw) for i in range(n)]


def cases(rng):
    """Yield (name, traces, config_file_name_or_None, config_text_or_None)."""
    for n in [0, 1, 2, 3, 5, 10, 100, 1000, 5000]:
        yield f"normal_{n}", base(rng, n), None, None
    # Heavy tails.
    for k in range(4):
        ts = base(rng, 800)
        for t in ts:
            t["duration"] = 0.001 * rng.paretovariate(1.2 + k * 0.3)
        yield f"pareto_{k}", ts, None, None
    # Bursty errors, all errors, error values of many JSON types.
    for k in range(4):
        ts = base(rng, 600)
        i = 0
        while i < len(ts):
            if rng.random() < 0.03 + 0.02 * k:
                for j in range(i, min(len(ts), i + rng.randint(1, 12))):
                    ts[j]["error"] = True
                    ts[j]["exception_type"] = rng.choice(["TimeoutError", "ValueError", "KeyError"])
                    ts[j]["exception_message"] = "boom <b>&</b>"
                i += 12
            i += 1
        yield f"bursty_errors_{k}", ts, None, None
    yield "all_errors", base(rng, 50, error=True), None, None
    ts = base(rng, 40)
    for i, t in enumerate(ts):
        t["error"] = [True, 1, "yes", "", 0, None, [], [0], {}, 0.0, "false", -1][i % 12]
    yield "error_truthiness", ts, None, None
    # Memory leaks and odd memory.
    for k in range(3):
        ts = base(rng, 500)
        for i, t in enumerate(ts):
            t["memory"] = 10_000_000 + i * (1000 * (k + 1) ** 3) + rng.randint(0, 5000)
        yield f"memory_leak_{k}", ts, None, None
    yield "memory_zero", base(rng, 20, memory=0), None, None
    ts = base(rng, 20, memory=0)
    ts[7]["memory"] = 100
    yield "memory_zero_with_peak", ts, None, None
    ts = base(rng, 30)
    for t in ts:
        t["memory"] = rng.choice([1e300, -1e300, 1e299, 5e-324, 0.0])
    yield "memory_extreme_values", ts, None, None
    ts = base(rng, 64)
    for t in ts:
        t["duration"] = rng.choice([5e-324, 1e-310, 2.2250738585072014e-308, 1e-300])
    yield "duration_subnormal", ts, None, None
    # Branch tags.
    for k, tags in enumerate([["a"], ["a", "b"], ["a", "b", "c", "d", "e"], [f"t{j}" for j in range(40)]]):
        ts = base(rng, 300)
        for t in ts:
            t["branch_tag"] = rng.choice(tags + [None, ""])
        yield f"branch_tags_{k}", ts, None, None
    ts = base(rng, 40)
    for i, t in enumerate(ts):
        t["branch_tag"] = [1, True, ["x"], {"a": 1}, "ok", None][i % 6]
    yield "branch_tags_non_strings", ts, None, None
    # A breakdown tie: be = 0.125 exactly (round half even gives 0.12).
    ts = base(rng, 8)
    for t, tag in zip(ts, ["a", "a", "a", "a", "b", "b", "c", "d"]):
        t["branch_tag"] = tag
    yield "tie_be_0125", ts, None, None
    yield "tie_pss_12_5", ts, "pypss.toml", "[pypss]\nw_ts = 0\nw_ms = 0\nw_ev = 0\nw_be = 1\nw_cc = 0\n"
    # Wait times above the threshold.
    for k in range(3):
        ts = base(rng, 400)
        for t in ts:
            t["wait_time"] = rng.expovariate(1 / (0.002 * (k + 1)))
        yield f"waits_{k}", ts, None, None
    # System traces with event-loop lag.
    for k, lag in enumerate([0.005, 0.02, 0.1, 0.3]):
        ts = base(rng, 200)
        for i in range(20):
            ts.insert(rng.randrange(len(ts)), {
                "system_metric": True, "name": "loop", "module": "system",
                "timestamp": 1_700_000_000.0 + i,
                "metadata": {"lag": lag * rng.uniform(0.5, 1.5), "active_tasks": rng.randint(1, 50), "churn_rate": 3.0},
            })
        yield f"system_lag_{k}", ts, None, None
    ts = base(rng, 50)
    ts += [{"system_metric": True, "metadata": {"lag": v}} for v in [1, 0, True, 0.05, 2]]
    yield "system_lag_ints_and_bools", ts, None, None
    ts = [{"system_metric": True, "metadata": {"lag": 0.2}}, {"system_metric": True, "metadata": {"lag": 0.1}}]
    yield "only_system_traces", ts, None, None
    ts = base(rng, 30)
    ts += [
        {"system_metric": True, "metadata": None},
        {"system_metric": True, "metadata": "no keys here"},
        {"system_metric": True, "metadata": ["x"]},
        {"system_metric": True},
        {"system_metric": "false", "metadata": {"lag": 0.5}},
        {"system_metric": 0, "duration": 0.5},
    ]
    yield "system_odd_metadata", ts, None, None
    # Values pypss converts, or skips part-way (its lists are appended one at a time).
    ts = base(rng, 60)
    variants = [
        {"duration": "0.5"}, {"duration": " 1_0.5 "}, {"duration": True}, {"duration": None},
        {"memory": "abc"}, {"wait_time": [1]}, {"duration": 10**400}, {"memory": 12},
        {"wait_time": "1e-3"}, {"duration": "-Infinity"[:0] or "2"}, {"memory": {}},
    ]
    for i, t in enumerate(ts[: len(variants) * 3]):
        t.update(variants[i % len(variants)])
    yield "conversions_and_partial_rows", ts, None, None
    yield "all_durations_unconvertible", [{"duration": None}, {"duration": "x"}], None, None
    ts = base(rng, 20)
    ts.insert(3, 5)
    ts.insert(7, "text")
    ts.insert(9, None)
    ts.insert(11, [1, 2])
    yield "non_objects_in_array", ts, None, None
    ts = base(rng, 25)
    for t in ts[:10]:
        del t["module"]
    ts[12]["module"] = None
    ts[13]["module"] = 5
    yield "odd_modules", ts, None, None
    yield "missing_fields", [{"name": "x"}, {"duration": 0.2}, {"memory": 5}, {}], None, None
    # Non-default configurations (pypss's own loader reads them).
    for k in range(25):
        ts = base(rng, rng.choice([2, 3, 50, 400]))
        for t in ts:
            if rng.random() < 0.1:
                t["error"] = True
            t["branch_tag"] = rng.choice(["a", "b", None])
            t["wait_time"] = rng.expovariate(200)
        keys = {
            "alpha": rng.choice([0.01, 0.5, 2, 5.5]),
            "beta": rng.choice([0.01, 1, 3.25]),
            "gamma": rng.choice([0.01, 2, 7]),
            "delta": rng.choice([0.01, 1, 4]),
            "mem_spike_threshold_ratio": rng.choice([1.0, 1.01, 1.5, 3]),
            "error_spike_threshold": rng.choice([0.0, 0.05, 0.1, 0.5]),
            "consecutive_error_threshold": rng.choice([1, 2, 3, 5]),
            "concurrency_wait_threshold": rng.choice([0.0, 0.001, 0.01]),
            "score_latency_tail_percentile": rng.choice([49, 89, 94, 98, 0]),
            "score_error_vmr_multiplier": rng.choice([0.5, 2.0]),
            "w_ts": rng.choice([0.3, 1, 0]),
            "w_ms": rng.choice([0.2, 2]),
            "w_ev": rng.choice([0.2, 0.05]),
            "w_be": rng.choice([0.15, 0]),
            "w_cc": rng.choice([0.15, 0.5]),
        }
        chosen = rng.sample(sorted(keys), rng.randint(1, len(keys)))
        body = "".join(f"{key} = {json.dumps(keys[key])}\n" for key in chosen)
        if k % 3 == 0:
            yield f"config_{k}", ts, "pyproject.toml", "[project]\nname = \"x\"\n\n[tool.pypss]\n" + body
        else:
            yield f"config_{k}", ts, "pypss.toml", "[pypss]\n" + body
    yield "config_nested_table", base(rng, 100), "pypss.toml", "[pypss]\nw_ts = 0.5\n\n[pypss.score]\nlatency_tail_percentile = 98\nmemory_epsilon = 0.5\n"
    # Random mixtures.
    for k in range(30):
        n = rng.choice([2, 3, 4, 7, 20, 150, 900])
        ts = base(rng, n)
        for t in ts:
            r = rng.random()
            if r < 0.15:
                t["error"] = True
            if r < 0.4:
                t["branch_tag"] = rng.choice(["hit", "miss", "stale"])
            t["duration"] = rng.choice([rng.random(), rng.expovariate(50), round(rng.random(), 2), 0.0])
            t["memory"] = rng.choice([t["memory"], rng.randint(0, 10), 0])
            t["wait_time"] = rng.choice([0.0, rng.random() * 0.01])
        if rng.random() < 0.3:
            ts.append({"system_metric": True, "metadata": {"lag": rng.random() * 0.05}})
        yield f"mixed_{k}", ts, None, None
    # Cases where pypss itself crashes; pss skips and counts instead.
    ts = base(rng, 10)
    ts[4]["duration"] = float("inf")
    yield "crash_inf_duration", ts, None, None
    ts = base(rng, 10)
    ts[2]["memory"] = float("nan")
    yield "crash_nan_memory", ts, None, None
    ts = base(rng, 10)
    ts[5]["duration"] = "nan"
    yield "crash_nan_string", ts, None, None
    ts = base(rng, 10) + [{"system_metric": True, "metadata": {"lag": "slow"}}]
    yield "crash_lag_string", ts, None, None


def expected_for(case_dir, traces):
    cwd = os.getcwd()
    os.chdir(case_dir)
    try:
        cfg = PSSConfig.load()
    finally:
        os.chdir(cwd)
    core.GLOBAL_CONFIG = cfg
    discovery.GLOBAL_CONFIG = cfg
    advisor.GLOBAL_CONFIG = cfg
    try:
        overall = core.compute_pss_from_traces(traces)
        modules = discovery.get_module_score_breakdown(traces)
    except Exception as e:  # pypss crashed: record it
        return {"crash": type(e).__name__}
    for r in [overall, *modules.values()]:
        # Refuse to compare numbers pypss could not have meant.
        for v in [r["pss"], *r["breakdown"].values()]:
            if isinstance(v, float) and not math.isfinite(v):
                return {"crash": "NonFinite"}
    return {"overall": overall, "modules": {str(k): v for k, v in modules.items()}}


def main():
    out = sys.argv[1]
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 1311
    rng = random.Random(seed)
    names = []
    for name, traces, cfg_name, cfg_text in cases(rng):
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "traces.json"), "w") as f:
            json.dump(traces, f)
        if cfg_name:
            with open(os.path.join(d, cfg_name), "w") as f:
                f.write(cfg_text)
        # pypss's in-process path: traces parsed by json.load as floats.
        with open(os.path.join(d, "traces.json")) as f:
            parsed = json.load(f)
        exp = expected_for(d, parsed)
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump(exp, f)
        names.append(name)
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(names, f)
    print(f"{len(names)} cases written to {out}")


if __name__ == "__main__":
    main()
