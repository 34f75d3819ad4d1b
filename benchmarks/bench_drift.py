"""Drift monitoring benchmark: overhead, reference building at scale, detection power.

Run:  python benchmarks/bench_drift.py [--quick] [--json out.json]

(a) **Overhead.** ``DriftMonitor.update`` with its default budget next to a 1000-row x 30-feature
    ``predict`` of LogisticRegression (numpy and pandas input) and RandomForestClassifier (100
    trees, one thread), in interleaved blocks in one process; medians over blocks. Two figures
    per model:
    * *every call profiled*: the rate budget off, so each call profiles its 256-row sample — the
      cost of one profiled call;
    * *steady state, defaults*: ``predict`` then ``update`` back to back on the real clock for
      several seconds (after one second that spends the initial burst), so the default budget
      (256 rows per call, 2000 rows/s) decides which calls are profiled — what a saturated
      service pays on average; ratio = total update time / total predict time.
    Ratio = update time / predict time (target <= 5 %).
(b) **Reference build.** ``ProfileBuilder`` over 10 million rows x 20 features (16 numeric of
    various shapes, 4 integer-coded categorical) fed in 100,000-row chunks generated on the fly:
    build time (generation excluded), JSON size (target < 5 MB), memory held by the builder
    after chunk 10 and after the last chunk (tracemalloc; flat = no growth) and process peak
    RSS (``resource.getrusage``).
(c) **Detection power** on ``load_breast_cancer`` (shipped with scikit-learn): reference = 20,000
    rows bootstrapped from it; production = 100-row calls at 1000 rows/s. Rows until a 0.5
    standard-deviation shift of one feature is flagged (every feature, several seeds), and the
    share of 1000-row windows of unshifted traffic with any alarm.

``--quick``: 1 M rows in (b), fewer blocks and seeds (about 20 s); the full run takes under a minute.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from time import perf_counter

import numpy as np
import pandas as pd
import sklearn
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from otel_mlmon.drift import DriftMonitor, ProfileBuilder, build_profile


# --------------------------------------------------------------------------- (a) overhead
def _steady_state(model, monitor, batch, seconds: float) -> tuple[float, float, float]:
    """predict + update back to back on the real clock for ``seconds`` (after one second that
    spends the initial burst): (update s per call, predict s per call, rows profiled per s)."""
    warm_until = perf_counter() + 1.0
    while perf_counter() < warm_until:
        monitor.update(batch, predictions=model.predict(batch))
    spent_update = spent_predict = 0.0
    calls = rows = 0
    start = perf_counter()
    while perf_counter() - start < seconds:
        t0 = perf_counter()
        out = model.predict(batch)
        t1 = perf_counter()
        rows += monitor.update(batch, predictions=out)
        t2 = perf_counter()
        spent_predict += t1 - t0
        spent_update += t2 - t1
        calls += 1
    return spent_update / calls, spent_predict / calls, rows / (perf_counter() - start)


def bench_overhead(rounds: int, steady_seconds: float) -> list[dict]:
    X, y = make_classification(n_samples=20_000, n_features=30, n_informative=10, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(30)])
    results = []
    models = [
        ("LogisticRegression", LogisticRegression(max_iter=1000), X, 400),
        ("LogisticRegression, DataFrame input", LogisticRegression(max_iter=1000), frame, 400),
        ("RandomForestClassifier(100 trees)", RandomForestClassifier(n_estimators=100, n_jobs=1, random_state=0), X, 12),
    ]  # fmt: skip
    for name, model, data, calls in models:
        model.fit(data, y)
        profile = build_profile(data, predictions=model.predict(data))
        batch = data.iloc[:1000].copy() if isinstance(data, pd.DataFrame) else np.ascontiguousarray(data[:1000])
        labels = model.predict(batch)
        every = DriftMonitor(profile, max_rows_per_second=None)
        predict_s, every_s = [], []
        for _ in range(rounds):  # interleaved blocks: predict, then update on every call
            t0 = perf_counter()
            for _ in range(calls):
                model.predict(batch)
            predict_s.append((perf_counter() - t0) / calls)
            t0 = perf_counter()
            for _ in range(calls):
                every.update(batch, predictions=labels)
            every_s.append((perf_counter() - t0) / calls)
        p = statistics.median(predict_s)
        e = statistics.median(every_s)
        s_u, s_p, profiled = _steady_state(model, DriftMonitor(profile), batch, steady_seconds)
        results.append({
            "model": name, "predict_us": p * 1e6, "every_call_update_us": e * 1e6, "every_call_ratio": e / p,
            "steady_update_us": s_u * 1e6, "steady_ratio": s_u / s_p, "profiled_rows_per_s": profiled,
        })  # fmt: skip
    return results


# --------------------------------------------------------------------------- (b) building
def _chunk(rng: np.random.Generator, rows: int) -> np.ndarray:
    out = np.empty((rows, 20))
    out[:, 0:4] = rng.normal(size=(rows, 4))
    out[:, 4:8] = rng.lognormal(3, 1, size=(rows, 4))
    out[:, 8:12] = rng.uniform(-1e3, 1e3, size=(rows, 4))
    out[:, 12:16] = rng.poisson(3, size=(rows, 4))
    out[:, 16:20] = rng.integers(0, 50, size=(rows, 4))  # categorical codes
    out[rng.random(rows) < 0.01, 1] = np.nan
    return out


def bench_build(total_rows: int, chunk_rows: int) -> dict:
    rng = np.random.default_rng(0)
    names = [f"f{j}" for j in range(20)]
    builder = ProfileBuilder(names, categorical=names[16:])
    chunks = total_rows // chunk_rows
    gc.collect()
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    held, build_s, rss_after_10 = [], 0.0, None
    for i in range(chunks):
        data = _chunk(rng, chunk_rows)
        t0 = perf_counter()
        builder.update(data)
        build_s += perf_counter() - t0
        del data
        held.append(tracemalloc.get_traced_memory()[0])
        if i == 9:
            rss_after_10 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = perf_counter()
    profile = builder.finish()
    build_s += perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    text = profile.to_json()
    return {
        "rows": chunks * chunk_rows, "features": 20, "chunk_rows": chunk_rows, "build_s": build_s,
        "rows_per_s": chunks * chunk_rows / build_s, "json_bytes": len(text.encode()),
        "held_after_chunk_10_mib": held[min(9, len(held) - 1)] / 2**20, "held_after_last_chunk_mib": held[-1] / 2**20,
        "traced_peak_mib": traced_peak / 2**20, "chunk_mib": chunk_rows * 20 * 8 / 2**20,
        "peak_rss_growth_first_10_chunks_mib": (rss_after_10 - rss_start) / 1024,
        "peak_rss_growth_after_chunk_10_mib": (rss_end - rss_after_10) / 1024,
    }  # fmt: skip


# --------------------------------------------------------------------------- (c) power
def bench_power(seeds: int, windows: int) -> dict:
    data = load_breast_cancer()
    X = data.data
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, data.target)
    delays: list[int | None] = []
    observe_s: list[float] = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        reference = X[rng.integers(0, len(X), 20_000)]
        profile = build_profile(reference, predictions=model.predict_proba(reference))
        for feature in range(X.shape[1]):
            monitor = DriftMonitor(profile)
            sd = reference[:, feature].std()
            t = 0.0
            for _ in range(20):
                batch = X[rng.integers(0, len(X), 100)]
                monitor.update(batch, predictions=model.predict_proba(batch), timestamp=t)
                t += 0.1
            delay = None
            for step in range(1, 41):
                batch = X[rng.integers(0, len(X), 100)]
                batch[:, feature] += 0.5 * sd
                monitor.update(batch, predictions=model.predict_proba(batch), timestamp=t)
                t += 0.1
                t0 = perf_counter()
                flagged = f"x{feature}" in monitor.observations().drifted
                observe_s.append(perf_counter() - t0)
                if flagged:
                    delay = step * 100
                    break
            delays.append(delay)
    rng = np.random.default_rng(12345)
    reference = X[rng.integers(0, len(X), 20_000)]
    monitor = DriftMonitor(build_profile(reference, predictions=model.predict_proba(reference)))
    alarms = feature_alarms = 0
    t = 0.0
    for _ in range(windows):
        for _ in range(10):
            batch = X[rng.integers(0, len(X), 100)]
            monitor.update(batch, predictions=model.predict_proba(batch), timestamp=t)
            t += 0.1
        obs = monitor.observations()
        alarms += bool(obs.drifted) or obs.output_drifted
        feature_alarms += len(obs.drifted)
    found = [d for d in delays if d is not None]
    return {
        "runs": len(delays), "flagged": len(found), "flagged_within_2000": sum(d <= 2000 for d in found),
        "median_rows": statistics.median(found) if found else None, "max_rows": max(found) if found else None,
        "windows": windows, "windows_with_alarm": alarms, "false_alarm_rate": alarms / windows,
        "feature_alarms": feature_alarms, "observations_ms": statistics.median(observe_s) * 1e3,
    }  # fmt: skip


# --------------------------------------------------------------------------- report
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 20 s)")
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()
    started = time.time()
    overhead = bench_overhead(rounds=5 if args.quick else 15, steady_seconds=2.0 if args.quick else 6.0)
    build = bench_build(1_000_000 if args.quick else 10_000_000, 100_000)
    power = bench_power(seeds=1 if args.quick else 3, windows=200 if args.quick else 1000)

    print(f"# otel-mlmon drift benchmark{' (--quick)' if args.quick else ''}\n")
    print(f"Python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
          f"{platform.machine()}; command: `python benchmarks/bench_drift.py{' --quick' if args.quick else ''}`\n")  # fmt: skip
    print("## (a) `DriftMonitor.update` vs a 1000-row x 30-feature `predict`\n")
    print("| model | predict (µs/call) | update, every call profiled (µs) | ratio | "
          "update, steady state with defaults (µs/call) | ratio | rows profiled/s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in overhead:
        print(f"| {r['model']} | {r['predict_us']:.0f} | {r['every_call_update_us']:.0f} | {r['every_call_ratio']:.1%} | "
              f"{r['steady_update_us']:.1f} | {r['steady_ratio']:.1%} | {r['profiled_rows_per_s']:.0f} |")  # fmt: skip
    print("\n## (b) Reference profile from chunks\n")
    print("| rows x features | chunk | build time | rows/s | JSON size | held after chunk 10 | after last chunk | "
          "traced peak | peak RSS growth, chunks 1-10 | after chunk 10 |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    b = build
    print(f"| {b['rows']:,} x {b['features']} | {b['chunk_rows']:,} rows ({b['chunk_mib']:.0f} MiB) | {b['build_s']:.1f} s | "
          f"{b['rows_per_s']:,.0f} | {b['json_bytes'] / 1024:.0f} KiB | {b['held_after_chunk_10_mib']:.2f} MiB | "
          f"{b['held_after_last_chunk_mib']:.2f} MiB | {b['traced_peak_mib']:.1f} MiB | "
          f"{b['peak_rss_growth_first_10_chunks_mib']:.0f} MiB | {b['peak_rss_growth_after_chunk_10_mib']:.0f} MiB |")  # fmt: skip
    print("\n## (c) Detection power (load_breast_cancer, 100-row calls, defaults)\n")
    p = power
    print("| 0.5 sd shift: runs (features x seeds) | flagged within 2000 rows | median rows to flag | max | "
          "unshifted 1000-row windows | with an alarm | false-alarm rate | observations() |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {p['runs']} | {p['flagged_within_2000']} | {p['median_rows']} | {p['max_rows']} | {p['windows']} | "
          f"{p['windows_with_alarm']} | {p['false_alarm_rate']:.2%} | {p['observations_ms']:.2f} ms |")  # fmt: skip
    print(f"\nTotal time {time.time() - started:.0f} s.")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"overhead": overhead, "build": build, "power": power}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
