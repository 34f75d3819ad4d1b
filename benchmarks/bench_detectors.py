"""Throughput of the streaming anomaly detectors: ``update(value, timestamp)`` calls per second.

Run (from the project root):

    python benchmarks/bench_detectors.py [--updates 200000] [--runs 5] [--json PATH]

What is measured
----------------
Every univariate detector the package exports (each :class:`~otel_mlmon.anomaly.base.Detector`
subclass in ``otel_mlmon.anomaly.__all__``, constructed with no arguments), and the detector
``default_detector()`` returns. Each is fed ``--updates`` pre-generated values with epoch
timestamps in a plain loop, one process, one thread, the loop overhead included; a run starts
from a fresh detector, so the warm-up is part of it. Two inputs, as the instrumentation sees
them:

* ``per-call``: the latency of single calls, log-normal (median 25 ms, log-scale sigma 0.3),
  20 ms apart;
* ``5-minute``: a 5-minute aggregate with a daily cycle (CPU-like, 20 % to 65 %, noise sd 2.5),
  300 s apart, so detectors that look for a daily cycle in the timestamps find one.

The figure per detector and input is the median over ``--runs`` runs. ``x target`` is the
slower input's rate divided by the target of :data:`TARGET` updates/s (>= 1.0 meets it).

Detection quality is not measured here: it is measured per event on real labelled operations
data by ``benchmarks/bench_cloudmon.py``. Synthetic labelled streams only serve as unit-test
helpers (``tests/test_detectors.py``); figures from them are not a measure of detection.
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import statistics
import sys
import time
from typing import Callable

import numpy as np

import otel_mlmon.anomaly as anomaly
from otel_mlmon.anomaly.base import Detector

TARGET = 300_000
"""Updates per second each exported univariate detector keeps, single-threaded (issue 13)."""

START = 1_704_067_200.0  # Monday 2024-01-01 00:00 UTC
DAY = 86_400.0


def detectors() -> dict[str, Callable[[], Detector]]:
    """Label -> factory of a fresh detector at its defaults."""
    found: dict[str, Callable[[], Detector]] = {}
    for name in anomaly.__all__:
        obj = getattr(anomaly, name)
        if inspect.isclass(obj) and issubclass(obj, Detector) and not inspect.isabstract(obj):
            found[name] = obj
    if "default_detector" in anomaly.__all__:
        found["default_detector()"] = anomaly.default_detector
    return found


def inputs(n: int, seed: int = 0) -> dict[str, tuple[list[float], list[float]]]:
    """Input label -> (values, timestamps) as Python floats, ``n`` of each."""
    rng = np.random.default_rng(seed)
    per_call = 0.025 * rng.lognormal(0.0, 0.3, n)
    t_call = START + 9 * 3600.0 + 0.02 * np.arange(n)
    t_5m = START + 300.0 * np.arange(n)
    load = 0.5 - 0.5 * np.cos(2 * np.pi * ((t_5m % DAY) / 3600.0 - 4.0) / 24.0)
    five_min = 20.0 + 45.0 * load + rng.normal(0.0, 2.5, n)
    return {
        "per-call": (per_call.tolist(), t_call.tolist()),
        "5-minute": (five_min.tolist(), t_5m.tolist()),
    }


def rate(factory: Callable[[], Detector], values: list[float], timestamps: list[float]) -> float:
    """Updates per second of one run, from a fresh detector."""
    update = factory().update
    t0 = time.perf_counter()
    for v, t in zip(values, timestamps):
        update(v, t)
    return len(values) / (time.perf_counter() - t0)


def throughput(n: int, runs: int) -> dict[str, dict[str, float]]:
    """Detector label -> input label -> median updates/s over ``runs`` runs."""
    streams = inputs(n)
    return {
        label: {kind: statistics.median(rate(factory, *stream) for _ in range(runs)) for kind, stream in streams.items()}
        for label, factory in detectors().items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=200_000, help="updates per run (default 200000)")
    parser.add_argument("--runs", type=int, default=5, help="runs per detector and input; the median is shown (default 5)")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    if args.updates < 1 or args.runs < 1:
        parser.error("--updates and --runs must be >= 1")
    print(f"Python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}; one thread; "
          f"{args.updates:,} updates per run, median of {args.runs} runs; target {TARGET:,} updates/s\n")  # fmt: skip
    rates = throughput(args.updates, args.runs)
    kinds = list(next(iter(rates.values())))
    print("| detector | " + " | ".join(f"{k} (updates/s)" for k in kinds) + " | x target |")
    print("|---|" + "---:|" * (len(kinds) + 1))
    for label, by_kind in rates.items():
        ratio = min(by_kind.values()) / TARGET
        cells = [f"{by_kind[k]:,.0f}" for k in kinds] + [f"{ratio:.1f}" + ("" if ratio >= 1.0 else " (below target)")]
        print(f"| {label} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"target": TARGET, "updates": args.updates, "runs": args.runs, "updates_per_s": rates}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
