"""Benchmark: isolation forest fit + score on 100,000 x 4 features, pss vs
scikit-learn (single-threaded), same data, same hyperparameters (100 trees,
256 samples). Usage: python benches/iforest.py (needs scikit-learn; build
first: cargo build --release --examples)."""

import os
import shutil
import subprocess
import time

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "bench", "iforest")


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(0)
    n = 100_000
    normal = rng.normal(0, 1, (n - 2000, 4))
    outliers = rng.uniform(-6, 6, (2000, 4))
    X = np.concatenate([normal, outliers])
    y = np.array([0] * len(normal) + [1] * len(outliers))
    path = os.path.join(OUT, "features.csv")
    with open(path, "w") as f:
        f.write("a,b,c,d,label\n")
        for row, label in zip(X, y):
            f.write(",".join(repr(float(v)) for v in row) + f",{label}\n")
    t0 = time.perf_counter()
    m = IsolationForest(n_estimators=100, max_samples=256, random_state=0, n_jobs=1).fit(X)
    s = -m.score_samples(X)
    sk_t = time.perf_counter() - t0
    sk_auc = roc_auc_score(y, s)
    exe = os.path.join(ROOT, "target", "release", "examples", "iforest_bench")
    runs = [("pss (2 threads)", [exe, path])]
    if shutil.which("taskset"):
        # The same run pinned to one core: pss scores on as many threads as
        # it may use, and scikit-learn above uses one.
        runs.append(("pss (1 thread, taskset -c 0)", ["taskset", "-c", "0", exe, path]))
    print("| 100,000 x 4, 100 trees, 256 samples | fit + score s | ROC AUC | speed-up |")
    print("|---|---:|---:|---:|")
    print(f"| scikit-learn (n_jobs=1) | {sk_t:.3f} | {sk_auc:.4f} | 1.0x |")
    for name, cmd in runs:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()
        ps_t, ps_auc = float(out[0]), float(out[1])
        print(f"| {name} | {ps_t:.3f} | {ps_auc:.4f} | {sk_t / ps_t:.1f}x |")
    print(f"\n{time.strftime('%Y-%m-%d')}")

if __name__ == "__main__":
    main()
