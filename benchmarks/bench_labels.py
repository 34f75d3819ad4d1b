"""Pending-prediction store under load: bounded size, file size, memory, throughput.

Run:  python benchmarks/bench_labels.py [--quick] [--json out.json]

Each scenario runs in a fresh interpreter (so its RSS is its own). A binary classifier's
outputs are recorded the way the instrumentation does it: one ``QualityHub.on_predictions``
per inference call of ``--batch`` rows (generated ids, predicted label and probability
vector), buffered and written by the hub in one transaction per 4096 rows. Every fifth of the
way the store's row count, its file size (database + WAL) and the process RSS are sampled.
Then:

* ``put_many``: the store alone, batches of ``--batch`` rows (rows/s);
* ``record_ground_truth``: labels for pending predictions, in batches of 1000 ids, joined,
  checked, added to the metric windows (labels/s);
* ``snapshot``: the metrics of a full window, at collection time (ms);
* the worker's cost of one 1-row call (online serving), store writes included (µs);
* the hot-path cost of a call's ids in the caller's thread (ns).

Full run: 1,000,000 predictions into stores bounded at 250,000 rows (SQLite and memory),
then 1,250,000 predictions into SQLite with the default bound (1,000,000). ``--quick``
divides the sizes by 10.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time

import numpy as np

SCENARIOS = [
    # (store, predictions, bound)
    ("sqlite", 1_000_000, 250_000),
    ("memory", 1_000_000, 250_000),
    ("sqlite", 1_250_000, 1_000_000),
]


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: peak RSS
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def file_mb(path: str) -> float:
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p)) / 2**20


def run_scenario(kind: str, predictions: int, bound: int, batch: int) -> dict:
    from otel_mlmon.quality.ids import IdBlock
    from otel_mlmon.quality.store import MemoryStore, SQLiteStore
    from otel_mlmon.quality.tracker import QualityHub

    directory = tempfile.mkdtemp(prefix="bench-labels-")
    path = os.path.join(directory, "pending.sqlite")
    store = SQLiteStore(path, max_entries=bound) if kind == "sqlite" else MemoryStore(max_entries=bound)
    hub = QualityHub(store=store, window=1000)
    key = ("bench", "1")
    rng = np.random.default_rng(0)
    p1 = rng.random(batch)
    proba = np.column_stack([1 - p1, p1])
    y_pred = (p1 > 0.5).astype(np.int64)
    rss_start = rss_mb()
    samples = []
    checkpoint = predictions // 5
    started = time.perf_counter()
    for call in range(predictions // batch):
        block = IdBlock(batch)
        hub.on_predictions(key, block, y_pred=y_pred, proba=proba, classes=[0, 1])
        done = (call + 1) * batch
        if done % checkpoint == 0:
            hub.flush()
            rows = store.pending()
            if kind == "sqlite":
                conn = sqlite3.connect(path)
                counted = conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
                conn.close()
                assert counted == rows, (counted, rows)
            assert rows <= bound, (rows, bound)
            samples.append({"predictions": done, "rows": rows, "file_mb": file_mb(path) if kind == "sqlite" else None,
                            "rss_mb": rss_mb()})  # fmt: skip
    hub.flush()
    record_s = time.perf_counter() - started

    put_rows = min(200_000, predictions // 5)
    blocks = [IdBlock(batch) for _ in range(put_rows // batch)]
    for block in blocks:
        block.tolist()  # ids built before timing: the store's own cost
    started = time.perf_counter()
    for block in blocks:
        store.put_many(key, block, y_pred=y_pred, proba=proba)
    put_s = time.perf_counter() - started

    label_ids = [i for block in blocks for i in block]  # all pending (the newest rows)
    y_true = (rng.random(len(label_ids)) < 0.5).astype(np.int64)
    started = time.perf_counter()
    joined = 0
    for start in range(0, len(label_ids), 1000):
        joined += hub.record_ground_truth(label_ids[start : start + 1000], y_true[start : start + 1000]).joined
    label_s = time.perf_counter() - started
    assert joined == len(label_ids), (joined, len(label_ids))

    started = time.perf_counter()
    snap = hub.snapshot()
    snapshot_ms = (time.perf_counter() - started) * 1e3

    # Online serving: one row per call. The worker's cost per call, store writes included.
    one_label, one_proba = y_pred[:1], proba[:1]
    calls = 20_000 // (10 if predictions < 500_000 else 1)
    started = time.perf_counter()
    for _ in range(calls):
        hub.on_predictions(key, IdBlock(1), y_pred=one_label, proba=one_proba, classes=[0, 1])
    hub.flush()
    small_call_us = (time.perf_counter() - started) / calls * 1e6
    result = {
        "store": kind, "predictions": predictions, "bound": bound, "batch": batch,
        "samples": samples,
        "record_rows_per_s": predictions / record_s,
        "put_many_rows_per_s": len(blocks) * batch / put_s,
        "labels": len(label_ids),
        "labels_per_s": len(label_ids) / label_s,
        "snapshot_ms": snapshot_ms,
        "small_call_us": small_call_us,
        "metrics": sorted(name for name, _ in snap.quality[key]),
        "final_rows": store.pending(),
        "final_file_mb": file_mb(path) if kind == "sqlite" else None,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_mb(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10,
    }  # fmt: skip
    hub.close()
    store.close()
    for name in os.listdir(directory):
        os.remove(os.path.join(directory, name))
    os.rmdir(directory)
    return result


def ids_cost_ns() -> float:
    from timeit import timeit

    from otel_mlmon.quality.ids import call_ids, set_last

    n = 200_000
    return min(timeit(lambda: set_last(call_ids(100)), number=n) for _ in range(3)) / n * 1e9


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="sizes divided by 10")
    parser.add_argument("--batch", type=int, default=1000, help="rows per inference call")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--scenario", help=argparse.SUPPRESS)  # internal: kind,predictions,bound
    args = parser.parse_args()
    if args.scenario:
        kind, predictions, bound = args.scenario.split(",")
        print(json.dumps(run_scenario(kind, int(predictions), int(bound), args.batch)))
        return 0
    scale = 10 if args.quick else 1
    results = []
    for kind, predictions, bound in SCENARIOS:
        spec = f"{kind},{predictions // scale},{bound // scale}"
        out = subprocess.run([sys.executable, __file__, "--scenario", spec, "--batch", str(args.batch)],
                             capture_output=True, text=True, check=True)  # fmt: skip
        results.append(json.loads(out.stdout))
    print(f"Python {platform.python_version()}, numpy {np.__version__}, SQLite {sqlite3.sqlite_version}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs; batch {args.batch} rows per call\n")  # fmt: skip
    print("| store | bound (rows) | predictions recorded | rows stored | file (DB + WAL) MB | RSS MB (start -> now) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        for s in r["samples"]:
            file_text = f"{s['file_mb']:.1f}" if s["file_mb"] is not None else "-"
            print(f"| {r['store']} | {r['bound']:,} | {s['predictions']:,} | {s['rows']:,} | {file_text} | "
                  f"{r['rss_start_mb']:.0f} -> {s['rss_mb']:.0f} |")  # fmt: skip
    print()
    print("| store | bound (rows) | on_predictions + writes (rows/s) | put_many (rows/s) "
          "| record_ground_truth (labels/s) | worker cost of a 1-row call (µs) "
          "| snapshot (ms) | peak RSS MB |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['store']} | {r['bound']:,} | {r['record_rows_per_s']:,.0f} | {r['put_many_rows_per_s']:,.0f} "
              f"| {r['labels_per_s']:,.0f} | {r['small_call_us']:.1f} | {r['snapshot_ms']:.1f} "
              f"| {r['peak_rss_mb']:.0f} |")  # fmt: skip
    print()
    print(f"Hot path, per inference call (in the caller's thread): {ids_cost_ns():.0f} ns for the call's ids "
          "(call_ids + set_last).")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
