"""Amortised cost of ``IsolationForestDetector`` per span (vector), refits included (target <= 10 µs).

Run:  python benchmarks/bench_isolation_forest.py [--vectors 65536] [--rounds 5] [--json out.json]

A stream of per-call signal vectors (``--dim`` signals: latency, rows, output statistics,
data-quality rates ..., with 1% planted outliers) is fed through ``update_many`` in
micro-batches of 64, 128 and 256 vectors with the default detector (100 trees, sample size
256, window 2048, refit every 1024 vectors; ``--refit-every`` changes the last). The timed
loop starts after warm-up and spans ``--vectors`` vectors, so it contains
``vectors / refit_every`` refits; the figure is the median over ``--rounds`` rounds of the
wall time per vector. Single ``update`` calls and one refit are timed separately for
reference.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from time import perf_counter

import numpy as np

from otel_mlmon.anomaly.isolation_forest import IsolationForestDetector


def make_stream(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = np.empty((n, dim))
    X[:, 0] = rng.lognormal(-4.0, 0.3, n)  # latency (s)
    if dim > 1:
        X[:, 1] = rng.choice([1, 8, 32, 64], n)  # rows per call
    if dim > 2:
        X[:, 2:] = rng.normal(size=(n, dim - 2))  # output statistics, data-quality rates
    outliers = rng.random(n) < 0.01
    X[outliers] *= rng.uniform(3, 10, (outliers.sum(), 1))
    return X


def time_batches(X: np.ndarray, batch: int, warm: np.ndarray, **params) -> tuple[float, int]:
    detector = IsolationForestDetector(**params)
    detector.update_many(warm)
    fits = detector.fits
    t0 = perf_counter()
    for start in range(0, len(X), batch):
        detector.update_many(X[start : start + batch])
    elapsed = perf_counter() - t0
    return elapsed / len(X) * 1e6, detector.fits - fits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vectors", type=int, default=65536)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dim", type=int, default=6)
    parser.add_argument("--refit-every", type=int, default=None, help="default: the detector's")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
          f"dim={args.dim}, vectors={args.vectors}, rounds={args.rounds}")  # fmt: skip
    params = {} if args.refit_every is None else {"refit_every": args.refit_every}
    print(f"detector: {IsolationForestDetector(**params)!r}")
    warm = make_stream(2048, args.dim, seed=1)
    X = make_stream(args.vectors, args.dim)
    rows = []
    for batch in (64, 128, 256):
        runs = [time_batches(X, batch, warm, **params) for _ in range(args.rounds)]
        us = statistics.median(r[0] for r in runs)
        rows.append({"case": f"update_many, batches of {batch}", "us_per_vector": us, "refits": runs[0][1]})

    detector = IsolationForestDetector(**params)
    detector.update_many(warm)
    t0 = perf_counter()
    for _ in range(20):
        detector._fit()  # noqa: SLF001 - a refit alone
    rows.append({"case": "one refit (ms)", "us_per_vector": None, "ms": (perf_counter() - t0) / 20 * 1e3})
    single = X[:2000]
    t0 = perf_counter()
    for row in single:
        detector.update(row)
    rows.append({"case": "update, one vector at a time", "us_per_vector": (perf_counter() - t0) / len(single) * 1e6,
                 "refits": None})  # fmt: skip

    for row in rows:
        if row["us_per_vector"] is None:
            print(f"{row['case']:<34} {row['ms']:8.2f} ms")
        else:
            refits = f"  ({row['refits']} refits)" if row.get("refits") else ""
            print(f"{row['case']:<34} {row['us_per_vector']:8.2f} µs/vector{refits}")
    worst = max(r["us_per_vector"] for r in rows[:3])
    verdict = "OK" if worst <= 10 else "ABOVE TARGET"
    print(f"worst micro-batch case: {worst:.2f} µs/vector amortised (target <= 10): {verdict}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
