"""Real-data anomaly benchmark: streaming alerts scored per event on the Microsoft Cloud
Monitoring Dataset.

Run (from the project root; ``pip install -e .[bench]`` adds river for the ``hst`` row):

    python benchmarks/bench_cloudmon.py [--data DIR] [--detectors a,b] [--parts tune,holdout,all]
                                        [--domains a,b] [--per-series] [--json PATH]

Data
----
``<DIR>/data/<domain>/<series>.csv`` with columns ``TimeStamp,Value,Label`` (1 = anomalous
point), Microsoft Cloud Monitoring Dataset (MIT). Default ``DIR``:
``<project root>/../shared/datasets/cloud-monitoring``. Empty values are NaN (passed to the
detectors as they are); naive timestamps are UTC.

Definitions (the same as the reference scorer ``../shared/bench/cloudmon_events.py``)
---------------------------------------------------------------------------------
* *Event*: a maximal run of labelled points; runs at most ``GAP = 3`` points apart merge
  (labelled points ``i < j`` with ``j - i <= 3`` belong to one event ``[s, e]``).
* *Warm-up*: the first ``min(floor(15 % of n), 750)`` points of a series of ``n`` points.
  Events starting there and alerts raised there do not count; the rest are *scored* points.
* An alert at point ``i`` *matches* event ``[s, e]`` when ``s <= i <= e + TOL``, ``TOL = 5``.
  *Ordinary* points are scored points covered by no counted event's ``[s, e + TOL]``.
* Per part (series pooled): ``recall`` = events with a matching alert / events;
  ``precision`` = alerts matching some event / alerts (0 without alerts); ``F1``;
  ``FA/1k`` = unmatched alerts per 1000 ordinary points; ``delay`` = median over detected
  events of the points from the event's start to its first matching alert; ``us/upd`` =
  median over series of the wall time per ``update`` call (one process, the loop included).

Split
-----
Within each domain, series sorted by file name: indices 0, 2, 4, ... are part ``tune``,
1, 3, 5, ... part ``holdout`` (:func:`part_of`); ``all`` pools both. Each detector is reported
on every part, with ``gap`` = holdout F1 - tune F1. Constants may only be chosen on ``tune``
(``--parts tune`` runs nothing else); the constants below were fixed in advance, not tuned.

Detectors (each a factory of fresh per-series objects, ``update(value, timestamp) -> alert``)
--------------------------------------------------------------------------------------------
* ``incidents``: ``otel_mlmon.anomaly.default_incident_detector()``, ``update(v, t).alert``
  (skipped, with a message, where the package does not have it).
* ``default-edge``: ``otel_mlmon.anomaly.default_detector()``, rising edge of
  ``is_anomaly(score)``.
* ``legacy-default``: the default detector as of commit 957a505
  (``benchmarks/baselines/legacy_default.py``), rising edge of ``is_anomaly(score)``.
* ``zscore-288``: ``|z|`` against the mean and population standard deviation of the previous
  288 values (from 10 values on), rising edge of ``|z| >= 3``.
* ``zscore-rest``: the same over the previous 20 values, an alert at every ``|z| >= 5``, then
  none for the next 50 points.
* ``ewma``: ``|z|`` against an exponentially weighted mean and variance (``alpha = 0.05``,
  started at the first value with variance 0, from 10 values on), rising edge of ``|z| >= 4``.
* ``hst``: river ``preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(n_trees=10,
  height=8, window_size=250, seed=42)`` (river's defaults, seed fixed) on the value alone;
  ``score_one`` then ``learn_one``; rising edge of ``score >= 0.9``. Skipped without river.

"Rising edge": an alert on an anomalous point that follows a non-anomalous one. The baselines
(z-scores, EWMA, HST) score NaN values 0 and do not learn them. The reference's z-score
baseline keeps NaN in its running sums and stops alerting for the rest of the series, so on
series with missing values (three in ``application-crash-rate-1``) ``zscore-288`` differs from
the reference's ``zscore``; the scoring itself is identical (``tests/test_bench_cloudmon.py``).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import platform
import shlex
import subprocess
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

GAP = 3
TOL = 5
WARM_UP_SHARE = 0.15
WARM_UP_MAX = 750
PARTS = ("tune", "holdout", "all")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "cloud-monitoring"


# --------------------------------------------------------------------------------------------
# Data and split


@dataclass(frozen=True)
class Series:
    name: str  # <domain>/<file name>
    part: str  # "tune" or "holdout"
    timestamps: list[float]  # epoch seconds
    values: list[float]
    labels: np.ndarray


def part_of(index: int) -> str:
    """The part of the series at ``index`` among its domain's series sorted by file name."""
    return "tune" if index % 2 == 0 else "holdout"


def _epoch(text: str) -> float:
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _read(path: Path, part: str) -> Series:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return Series(
        name=f"{path.parent.name}/{path.name}",
        part=part,
        timestamps=[_epoch(row["TimeStamp"]) for row in rows],
        values=[float(row["Value"]) if row["Value"].strip() else math.nan for row in rows],
        labels=np.array([int(row["Label"]) for row in rows], dtype=np.int64),
    )


def load(data_dir: Path | str, domains: set[str] | frozenset[str] = frozenset()) -> list[Series]:
    """Every series under ``data_dir/data`` (of ``domains`` if given), by domain then file name."""
    series = []
    for domain in sorted(p for p in (Path(data_dir) / "data").iterdir() if p.is_dir()):
        if not domains or domain.name in domains:
            series += [_read(path, part_of(i)) for i, path in enumerate(sorted(domain.glob("*.csv")))]
    return series


# --------------------------------------------------------------------------------------------
# Scoring


def warm_up(n: int) -> int:
    return min(math.floor(WARM_UP_SHARE * n), WARM_UP_MAX)


def events_of(labels: np.ndarray) -> list[tuple[int, int]]:
    """Runs ``[s, e]`` of labelled points; runs at most ``GAP`` points apart merge."""
    events: list[list[int]] = []
    for i in np.flatnonzero(labels).tolist():
        if events and i - events[-1][1] <= GAP:
            events[-1][1] = i
        else:
            events.append([i, i])
    return [(s, e) for s, e in events]


def scored_events(labels: np.ndarray) -> list[tuple[int, int]]:
    """The events that count: those starting after the warm-up."""
    start = warm_up(len(labels))
    return [event for event in events_of(labels) if event[0] >= start]


@dataclass
class Tally:
    """Counts of a series, or of a part (``+`` pools them)."""

    events: int = 0
    hit: int = 0  # events with a matching alert
    alerts: int = 0
    matched: int = 0  # alerts matching some event
    ordinary: int = 0
    delays: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # per update, one entry per series

    @property
    def false_alarms(self) -> int:
        return self.alerts - self.matched

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values())))

    def summary(self) -> dict[str, float]:
        recall = self.hit / self.events if self.events else math.nan
        precision = self.matched / self.alerts if self.alerts else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        return {
            "series": len(self.seconds),
            "events": self.events,
            "hit": self.hit,
            "alerts": self.alerts,
            "false_alarms": self.false_alarms,
            "f1": f1,
            "precision": precision,
            "recall": recall,
            "fa_per_1000": 1000.0 * self.false_alarms / max(self.ordinary, 1),
            "median_delay": float(np.median(self.delays)) if self.delays else math.nan,
            "us_per_update": 1e6 * float(np.median(self.seconds)) if self.seconds else math.nan,
        }


def score_series(labels: np.ndarray, fired: np.ndarray, seconds: float = math.nan) -> Tally:
    """Score the alerts ``fired`` (one bool per point) against the labels of one series."""
    n, start = len(labels), warm_up(len(labels))
    events = scored_events(labels)
    cover = np.zeros(n, dtype=bool)
    for s, e in events:
        cover[s : e + TOL + 1] = True
    at = np.flatnonzero(fired)
    at = at[at >= start]
    delays = []
    for s, e in events:
        matching = at[(at >= s) & (at <= e + TOL)]
        if len(matching):
            delays.append(int(matching[0]) - s)
    return Tally(
        events=len(events),
        hit=len(delays),
        alerts=len(at),
        matched=int(cover[at].sum()),
        ordinary=int((~cover[start:]).sum()),
        delays=delays,
        seconds=[seconds],
    )


def run(make: Callable[[], Any], series: Series) -> tuple[np.ndarray, float]:
    """A fresh detector's alert at every point of ``series``, and the seconds per update."""
    update = make().update
    start = time.perf_counter()
    fired = [update(v, t) for v, t in zip(series.values, series.timestamps)]
    seconds = (time.perf_counter() - start) / max(len(fired), 1)
    return np.array(fired, dtype=bool), seconds


# --------------------------------------------------------------------------------------------
# Detectors


class Alerter:
    """Turns the results of ``inner.update`` into alerts: ``anomalous(result)`` on its rising
    edge (``edge``), or at every anomalous point; after an alert, ``rest`` points without one."""

    def __init__(self, inner: Any, anomalous: Callable[[Any], bool], edge: bool = True, rest: int = 0) -> None:
        self.inner, self.anomalous, self.edge, self.rest = inner, anomalous, edge, rest
        self.previous = False
        self.quiet = 0  # points left in the rest period

    def update(self, value: float, timestamp: float) -> bool:
        now = bool(self.anomalous(self.inner.update(value, timestamp)))
        resting = self.quiet > 0
        if resting:
            self.quiet -= 1
        alert = now and not resting and not (self.edge and self.previous)
        self.previous = now
        if alert:
            self.quiet = self.rest
        return alert


class RollingZ:
    """``|z|`` of a value against the mean and population standard deviation of the previous
    ``window`` values (running sums), 0 before ``min_count`` values; NaN scores 0, unlearned."""

    def __init__(self, window: int, min_count: int = 10) -> None:
        self.window, self.min_count = window, min_count
        self.q: deque[float] = deque()
        self.s = self.s2 = 0.0

    def update(self, x: float, timestamp: float | None = None) -> float:
        if not math.isfinite(x):
            return 0.0
        n, z = len(self.q), 0.0
        if n >= self.min_count:
            m = self.s / n
            z = abs(x - m) / math.sqrt(max(self.s2 / n - m * m, 1e-12))
        self.q.append(x)
        self.s += x
        self.s2 += x * x
        if len(self.q) > self.window:
            y = self.q.popleft()
            self.s -= y
            self.s2 -= y * y
        return z


class EwmaZ:
    """``|z|`` of a value against an exponentially weighted mean and variance (rate ``alpha``,
    started at the first value with variance 0), 0 before ``min_count`` values; NaN scores 0."""

    def __init__(self, alpha: float = 0.05, min_count: int = 10) -> None:
        self.alpha, self.min_count = alpha, min_count
        self.n, self.mean, self.var = 0, 0.0, 0.0

    def update(self, x: float, timestamp: float | None = None) -> float:
        if not math.isfinite(x):
            return 0.0
        if not self.n:
            self.mean = x
        d = x - self.mean
        z = abs(d) / math.sqrt(max(self.var, 1e-12)) if self.n >= self.min_count else 0.0
        self.n += 1
        self.mean += self.alpha * d
        self.var = (1.0 - self.alpha) * (self.var + self.alpha * d * d)
        return z


class HalfSpace:
    """river's Half-Space Trees on the min-max scaled value: score, then learn; NaN scores 0."""

    def __init__(self) -> None:
        from river import anomaly, preprocessing

        self.model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
            n_trees=10, height=8, window_size=250, seed=42
        )

    def update(self, x: float, timestamp: float | None = None) -> float:
        if not math.isfinite(x):
            return 0.0
        features = {"value": x}
        score = self.model.score_one(features)
        self.model.learn_one(features)
        return score


def _edge_of(detector: Any) -> Alerter:
    """Rising edge of an otel-mlmon detector's own verdict."""
    return Alerter(detector, detector.is_anomaly)


def _incidents() -> Callable[[], Alerter]:
    from otel_mlmon.anomaly import default_incident_detector

    return lambda: Alerter(default_incident_detector(), lambda verdict: verdict.alert, edge=False)


def _default_edge() -> Callable[[], Alerter]:
    from otel_mlmon.anomaly import default_detector

    return lambda: _edge_of(default_detector())


def _legacy_default() -> Callable[[], Alerter]:
    spec = importlib.util.spec_from_file_location("legacy_default", HERE / "baselines" / "legacy_default.py")
    module = sys.modules["legacy_default"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return lambda: _edge_of(module.default_detector())


def _hst() -> Callable[[], Alerter]:
    import river  # noqa: F401  (ImportError here: the row is skipped)

    return lambda: Alerter(HalfSpace(), lambda score: score >= 0.9)


# name -> setup(): imports what the detector needs (ImportError: not available) and returns a
# factory of fresh per-series alerters.
DETECTORS: dict[str, Callable[[], Callable[[], Alerter]]] = {
    "incidents": _incidents,
    "default-edge": _default_edge,
    "legacy-default": _legacy_default,
    "zscore-288": lambda: lambda: Alerter(RollingZ(288), lambda z: z >= 3.0),
    "zscore-rest": lambda: lambda: Alerter(RollingZ(20), lambda z: z >= 5.0, edge=False, rest=50),
    "ewma": lambda: lambda: Alerter(EwmaZ(0.05), lambda z: z >= 4.0),
    "hst": _hst,
}


# --------------------------------------------------------------------------------------------
# Report

COLUMNS = "detector        part     series events  hit alerts false    F1  prec   rec  FA/1k delay us/upd"


def _row(detector: str, part: str, r: dict[str, float]) -> str:
    return (
        f"{detector:15s} {part:8s} {r['series']:6d} {r['events']:6d} {r['hit']:4d} {r['alerts']:6d}"
        f" {r['false_alarms']:5d} {r['f1']:5.3f} {r['precision']:5.3f} {r['recall']:5.3f}"
        f" {r['fa_per_1000']:6.2f} {r['median_delay']:5.1f} {r['us_per_update']:6.2f}"
    )


def _code_version() -> str:
    """The project's commit, flagged when the package or benchmarks have uncommitted changes."""
    git = ["git", "-C", str(ROOT)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        status = subprocess.run([*git, "status", "--porcelain", "--", "otel_mlmon", "benchmarks"],
                                capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit.stdout.strip() + (" with uncommitted changes" if status.stdout.strip() else "")


def _names(text: str, known: tuple[str, ...] | None = None) -> list[str]:
    names = [name for name in text.split(",") if name]
    unknown = [name for name in names if known is not None and name not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)} (choose from {', '.join(known)})")
    return names


def evaluate(make: Callable[[], Any], series: list[Series], parts: list[str]) -> tuple[dict, dict]:
    """Summaries per part (and ``gap_f1`` when tune and holdout are both there), and per series."""
    tallies = [score_series(s.labels, *run(make, s)) for s in series]
    results: dict[str, Any] = {}
    for part in parts:
        results[part] = sum((t for s, t in zip(series, tallies) if part in (s.part, "all")), Tally()).summary()
    if "tune" in results and "holdout" in results:
        results["gap_f1"] = results["holdout"]["f1"] - results["tune"]["f1"]
    return results, {s.name: {"part": s.part, **t.summary()} for s, t in zip(series, tallies)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="dataset folder (holding data/)")
    parser.add_argument("--detectors", type=lambda s: _names(s, tuple(DETECTORS)), default=list(DETECTORS))
    parser.add_argument("--parts", type=lambda s: _names(s, PARTS), default=list(PARTS))
    parser.add_argument("--domains", type=_names, default=[], help="only these domains (default: all)")
    parser.add_argument("--per-series", action="store_true", help="print each series' counts")
    parser.add_argument("--json", metavar="PATH", help="write every result to PATH")
    args = parser.parse_args(argv)

    wanted = {"tune", "holdout"} if "all" in args.parts else set(args.parts)
    series = [s for s in load(args.data, set(args.domains)) if s.part in wanted]
    if not series:
        sys.exit(f"no series under {Path(args.data) / 'data'}")
    command = shlex.join(["python", "benchmarks/bench_cloudmon.py", *argv])
    print(f"reproduce (from the project root): {command}")
    counts = ", ".join(f"{p} {sum(s.part == p for s in series)}" for p in ("tune", "holdout"))
    code = _code_version()
    print(f"data {args.data}: {len(series)} series ({counts}); code {code}; python {platform.python_version()}")
    print(COLUMNS)
    report: dict[str, Any] = {
        "command": command,
        "data": str(args.data),
        "definitions": {"gap": GAP, "tol": TOL, "warm_up": f"min(floor({WARM_UP_SHARE} n), {WARM_UP_MAX})"},
        "split": {s.name: s.part for s in series},
        "code": code,
        "python": platform.python_version(),
        "results": {},
        "skipped": {},
        "per_series": {},
    }
    for name in args.detectors:
        try:
            make = DETECTORS[name]()
        except ImportError as exc:
            report["skipped"][name] = str(exc)
            print(f"{name:15s} skipped, not available: {exc}")
            continue
        results, per_series = evaluate(make, series, args.parts)
        report["results"][name], report["per_series"][name] = results, per_series
        for part in args.parts:
            print(_row(name, part, results[part]))
        if "gap_f1" in results:
            print(f"{name:15s} gap      holdout F1 - tune F1 = {results['gap_f1']:+.3f}")
        if args.per_series:
            for s in series:
                r = per_series[s.name]
                print(f"    {s.name:55s} {s.part:7s} events={r['events']:3d} hit={r['hit']:3d} "
                      f"alerts={r['alerts']:4d} false={r['false_alarms']:4d}")
    if args.json:
        report = json.loads(json.dumps(report), parse_constant=lambda _: None)  # JSON has no NaN
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
