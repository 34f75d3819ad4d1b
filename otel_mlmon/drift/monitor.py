"""Streaming drift and data-quality monitoring of inference inputs against a reference profile.

:class:`DriftMonitor` has three entry points::

    monitor.update(X, predictions=None, timestamp=None)   # worker thread, once per call
    monitor.observations(now=None) -> DriftObservations    # collection thread: gauges
    monitor.drain_counts() -> DriftCounts                  # collection thread: counter increments

**update** profiles a sample of the batch (see *Budget*): per numeric feature it counts values
into the reference's quantile bins (one sort of the sampled block and one ``searchsorted`` for all
features together), NaN, infinities, missing values (None/NA) and values outside the reference
``[min, max]``; per categorical feature it counts the top-K categories (+ "other") and values
never seen in the reference. Schema changes — a different number of columns, profile features
missing from the input's columns or unknown extra columns, a dtype of another class than the
reference's (numeric / bool / text+category / datetime; int vs float is *not* a change) — are
data-quality events counted once per profiled row. ``X`` is never modified; it is read, and only
the sampled rows are copied.

**Budget.** At most ``sample_rows`` rows per call (default 256) are profiled: an evenly spaced,
randomly offset (seeded) stride through the batch. On top of that a token bucket allows at most
``max_rows_per_second`` profiled rows per second (default 2000, bursts up to one second's worth);
a call whose sample the bucket cannot pay for is skipped whole, in about two microseconds. So a busy service pays a
bounded cost (~2000 rows/s) whatever its traffic, and a quiet one has every row profiled. Data
quality counts are over profiled rows; ``DriftCounts.rows`` (``ml.data.row.count``) is their
denominator.

**Windows** (:class:`~otel_mlmon.drift.window.SlidingWindow`): the current distribution is the
last ``window_rows`` profiled rows (default 1000, sliding every 100) and/or ``window_seconds``.

**Verdict.** A feature is *drifted* when, with at least ``min_rows`` (default 100) values in the
window, its PSI is ``>= threshold`` (default 0.1, the "moderate" band) **and** its
significance test — two-sample KS on the bins for numeric features, chi-square for categorical
ones — has ``p < alpha / m`` (default ``alpha = 0.01``, Bonferroni over the ``m`` features
tested). The p-value makes the verdict sample-size aware (PSI alone is biased upwards by about
``(bins - 1) / n`` in small windows); the PSI floor keeps huge windows from flagging
immaterial differences. ``alpha=None`` uses the PSI threshold alone.

**Bins.** A numeric feature has the profile's quantile bins plus an ``underflow`` bin (finite
values below the reference minimum) and an ``overflow`` bin (above the maximum), where the
reference has no rows: values beyond the reference range are visible as bins (and PSI / KS see
them) as well as ``out_of_range`` events. A categorical feature has its top-K slots and other.

**Cardinality.** ``observations()`` reports scores for the exported features (the first
``max_features``, below) plus ``_output``, so their series are stable; with ``top_k`` set, only
for the ``top_k`` most drifted (drifted first, then by PSI). ``share`` covers all features.
Bin counts (and :meth:`DriftMonitor.reference_shares`) cover the first ``max_features``
(default 64) features of the profile and ``_output``, fixed when the profile is loaded;
data-quality events of features beyond that are reported as ``_other``. Whole-input
events (column count, extra columns) use the feature name ``_input``; outputs of the wrong kind
for the reference (scores against a reference of labels, or the reverse) are ``schema_change``
events of ``_output`` and are not binned.

**Without a profile** only data quality is monitored: NaN / inf / missing per column, and schema
changes against the first batch seen. No drift scores, no bin counts.

**Threads.** ``update`` is meant for one worker thread; ``observations``/``drain_counts`` may
run concurrently on another (a lock guards the shared state, held for O(bins) only). Memory is
bounded: ``window_buckets x bins`` integers plus a few small dictionaries, independent of traffic.

How a batch is counted (features, schema plans, bins, data-quality events) is in
:mod:`~otel_mlmon.drift.counting`, the budget in :mod:`~otel_mlmon.drift.row_budget`, what is
reported in :mod:`~otel_mlmon.drift.observations`; this module re-exports their public names.

>>> import numpy as np
>>> from otel_mlmon.drift.profile import build_profile
>>> rng = np.random.default_rng(0)
>>> monitor = DriftMonitor(build_profile(rng.normal(size=(20_000, 3))))
>>> for t in range(20):
...     batch = rng.normal(size=(100, 3))
...     batch[:, 1] += 1.0                      # feature x1 shifts by one standard deviation
...     _ = monitor.update(batch, timestamp=t * 0.1)
>>> obs = monitor.observations()
>>> obs.drifted, obs.share
(('x1',), 0.3333333333333333)
>>> round(obs.scores[("x1", "psi")], 1) > 0.5, obs.p_values[("x1", "ks")] < 1e-6
(True, True)
>>> counts = monitor.drain_counts()
>>> counts.rows, sum(v for (f, b), v in counts.bins.items() if f == "x0")
(2000, 2000)
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
import weakref
from collections import OrderedDict
from typing import Any, Iterable

import numpy as np

from otel_mlmon.drift._columns import BOOL_DTYPES, DATETIME_DTYPES, NUMERIC_DTYPES, Table, dtype_class, positional_names
from otel_mlmon.drift.base import CATEGORICAL, NUMERIC, DriftStatistic
from otel_mlmon.drift.chi_square import ChiSquare
from otel_mlmon.drift.counting import (
    INPUT,
    ISSUES,
    SCHEMA,
    Feature,
    Plan,
    bin_labels,
    build_plan,
    bump,
    count_categorical,
    count_numeric,
    numeric_plan,
    output_fits,
)
from otel_mlmon.drift.jensen_shannon import JensenShannon
from otel_mlmon.drift.kolmogorov_smirnov import KolmogorovSmirnov
from otel_mlmon.drift.observations import DriftCounts, DriftObservations
from otel_mlmon.drift.reference_profile import OUTPUT, ReferenceProfile, output_vector
from otel_mlmon.drift.psi import PSI
from otel_mlmon.drift.row_budget import RowBudget
from otel_mlmon.drift.wasserstein import Wasserstein
from otel_mlmon.drift.window import DEFAULT_BUCKETS, DEFAULT_WINDOW_ROWS, SlidingWindow
from otel_mlmon.semconv import OTHER

__all__ = ["DriftMonitor", "DriftObservations", "DriftCounts", "INPUT", "OTHER", "OUTPUT", "ISSUES", "METHODS"]

METHODS = ("psi", "jensen_shannon", "ks", "wasserstein", "chi_square")
_NUMERIC_METHODS = ("psi", "jensen_shannon", "ks", "wasserstein")
_CATEGORICAL_METHODS = ("psi", "jensen_shannon", "chi_square")

DEFAULT_SAMPLE_ROWS = 256
DEFAULT_MAX_ROWS_PER_SECOND = 2000.0
DEFAULT_MAX_FEATURES = 64
DEFAULT_TOP_K = None  # scores for every exported feature (stable series)
DEFAULT_THRESHOLD = 0.1
DEFAULT_ALPHA = 0.01
DEFAULT_MIN_ROWS = 100
_PLAN_CACHE = 8


class DriftMonitor:
    """Drift and data-quality monitor of one model's inputs and outputs; see the module docstring
    for what is counted, the budget, windows, verdicts and caps."""

    def __init__(
        self,
        profile: ReferenceProfile | None = None,
        *,
        window_rows: int | None = DEFAULT_WINDOW_ROWS,
        window_seconds: float | None = None,
        window_buckets: int = DEFAULT_BUCKETS,
        max_features: int = DEFAULT_MAX_FEATURES,
        top_k: int | None = DEFAULT_TOP_K,
        sample_rows: int = DEFAULT_SAMPLE_ROWS,
        max_rows_per_second: float | None = DEFAULT_MAX_ROWS_PER_SECOND,
        threshold: float = DEFAULT_THRESHOLD,
        alpha: float | None = DEFAULT_ALPHA,
        min_rows: int = DEFAULT_MIN_ROWS,
        methods: Iterable[str] | None = None,
        seed: int = 0,
    ) -> None:
        if profile is not None and not isinstance(profile, ReferenceProfile):
            raise TypeError(f"profile must be a ReferenceProfile or None, got {type(profile).__name__}")
        checks = [("max_features", max_features, 0), ("sample_rows", sample_rows, 1), ("min_rows", min_rows, 1)]
        if top_k is not None:
            checks.append(("top_k", top_k, 0))
        for name, value, minimum in checks:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if max_rows_per_second is not None and (isinstance(max_rows_per_second, bool) or not max_rows_per_second > 0):
            raise ValueError(f"max_rows_per_second must be positive or None, got {max_rows_per_second!r}")
        if alpha is not None and (isinstance(alpha, bool) or not 0 < alpha < 1):
            raise ValueError(f"alpha must be in (0, 1) or None, got {alpha!r}")
        chosen = METHODS if methods is None else tuple(dict.fromkeys(methods))
        unknown = [m for m in chosen if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown drift methods {unknown}; choose from {METHODS}")
        self.profile = profile
        self.window_rows = window_rows
        self.window_seconds = window_seconds
        self.window_buckets = window_buckets
        self.max_features = max_features
        self.top_k = top_k
        self.sample_rows = sample_rows
        self.max_rows_per_second = None if max_rows_per_second is None else float(max_rows_per_second)
        self.threshold = float(threshold)
        self.alpha = alpha
        self.min_rows = min_rows
        self.methods = chosen
        self.seed = seed
        self._psi = PSI(self.threshold)
        self._statistics: dict[str, DriftStatistic] = {
            "psi": self._psi, "jensen_shannon": JensenShannon(), "ks": KolmogorovSmirnov(),
            "wasserstein": Wasserstein(), "chi_square": ChiSquare(),
        }  # fmt: skip
        # validates the window settings eagerly
        SlidingWindow(0, rows=window_rows, seconds=window_seconds, buckets=window_buckets)
        self._lock = threading.Lock()
        self._reset()
        ref = weakref.ref(self)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: (m := ref()) is not None and m._after_fork())

    # ------------------------------------------------------------------ state
    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def _reset(self) -> None:
        self._rng = random.Random(self.seed)
        self._budget = RowBudget(self.sample_rows, self.max_rows_per_second)
        self._plans: OrderedDict[Any, Plan] = OrderedDict()
        self._features: list[Feature] | None = None
        self._output: Feature | None = None
        self._named_schema = False
        self._size = 0
        if self.profile is not None:
            features = [Feature(f.name, f.kind, f.dtype_class, f) for f in self.profile.features]
            out = self.profile.output if self.profile.output is not None else self.profile.target
            self._install(features, None if out is None else Feature(OUTPUT, out.kind, out.dtype_class, out))
        self._window = SlidingWindow(self._size, rows=self.window_rows, seconds=self.window_seconds,
                                     buckets=self.window_buckets)  # fmt: skip
        self._pending = np.zeros(self._size, dtype=np.int64)
        self._quality: dict[tuple[str, str], int] = {}
        self._rows = 0

    def reset(self) -> None:
        """Forget the window, pending counts and the sampling state (settings are kept)."""
        with self._lock:
            self._reset()

    def _install(self, features: list[Feature], output: Feature | None) -> None:
        offset = 0
        for i, f in enumerate(features):
            f.offset = offset
            offset += f.n_bins
            f.exported = i < self.max_features
            f.label = f.name if f.exported else OTHER
        if output is not None:
            output.offset = offset
            offset += output.n_bins
            output.exported = True
        self._features, self._output, self._size = features, output, offset
        self._reference = np.zeros(offset, dtype=np.int64)
        self._flat_label: list[str | None] = [None] * offset
        self._flat_bin: list[int | str] = [0] * offset
        for f in features + ([output] if output is not None else []):
            if f.profile is None:
                continue
            labels = bin_labels(f)
            start = f.offset + (1 if f.tails else 0)
            self._reference[start: start + f.profile.n_bins] = f.profile.bin_counts
            for b, label in enumerate(labels):
                self._flat_label[f.offset + b] = f.name if f.exported else None
                self._flat_bin[f.offset + b] = label
        self._output_plan = None if output is None or output.profile is None or output.kind != NUMERIC else numeric_plan([output], self._size)

    def _plan(self, table: Table) -> Plan:
        key = table.signature()
        plan = self._plans.get(key)
        if plan is not None:
            self._plans.move_to_end(key)
            return plan
        if self._features is None:  # no profile: the first batch defines the schema
            names = table.names or positional_names(table.n_cols)
            kinds = [NUMERIC if dtype_class(d) in (NUMERIC_DTYPES, BOOL_DTYPES, DATETIME_DTYPES) else CATEGORICAL
                     for d in table.dtypes]  # fmt: skip
            self._install([Feature(n, k, dtype_class(d), None) for n, k, d in zip(names, kinds, table.dtypes)], None)
            self._named_schema = table.names is not None
        assert self._features is not None
        named = self.profile.named if self.profile is not None else self._named_schema
        plan = build_plan(table, self._features, named, self._size)
        self._plans[key] = plan
        if len(self._plans) > _PLAN_CACHE:
            self._plans.popitem(last=False)
        return plan

    # ------------------------------------------------------------------ update
    def update(self, X: Any, predictions: Any = None, timestamp: float | None = None, *, sample: bool = True) -> int:
        """Profile (a sample of) one batch. Returns the number of rows profiled (0 = skipped).

        ``timestamp``: when the batch was scored, in epoch seconds (default: now); it drives the
        time window and the rate budget. ``sample=False``: every row, neither sampled nor
        charged to the budget (the caller sampled and paid already, e.g. the samples of several
        calls profiled together). Raises ``ValueError`` for inputs that are not tabular
        (callers on a hot path catch it)."""
        now = time.time() if timestamp is None else float(timestamp)
        n = _row_count(X)
        table = None
        if n is None:
            table = X if isinstance(X, Table) else Table(X)
            n = table.n_rows
        if n == 0:
            return 0
        take = self._budget.admit(n, now) if sample else n
        if take == 0:
            return 0
        if table is None:
            table = X if isinstance(X, Table) else Table(X)
        if take < n:
            stride = n // take
            start = self._rng.randrange(n - stride * (take - 1))
            rows = slice(start, start + stride * (take - 1) + 1, stride)
            sample = table.rows(rows)
        else:
            rows = slice(0, n)
            sample = table
        plan = self._plan(sample)
        counts = np.zeros(self._size + 1, dtype=np.int64)
        quality: dict[tuple[str, str], int] = {}
        features = self._features
        assert features is not None
        if plan.numeric:
            block, missing = sample.float_block(plan.numeric_cols, plan.numeric_dtypes)
            count_numeric(block, missing, [features[i] for i in plan.numeric], plan.queries, plan.flat, counts, quality)
        for i, j in plan.categorical:
            count_categorical(sample.column(j), features[i], counts, quality)
        for label in plan.schema_events:
            bump(quality, label, SCHEMA, take)
        out = self._output
        vector = output_vector(predictions)
        if out is not None and vector is not None and vector.ndim == 1 and vector.size:
            vector = vector[rows] if vector.shape[0] == n else vector[:: max(1, vector.shape[0] // take)][:take]
            if not output_fits(out.kind, vector):  # e.g. probabilities against a reference of labels
                bump(quality, OUTPUT, SCHEMA, vector.size)
            elif out.kind == NUMERIC:
                assert self._output_plan is not None
                values = vector.astype(np.float64) if vector.dtype.kind in "iufb" else Table(vector).float_block([0])[0][:, 0]
                count_numeric(values.reshape(-1, 1), None, [out], *self._output_plan, counts, quality)
            else:
                count_categorical(vector, out, counts, quality)
        increments = counts[: self._size]
        with self._lock:
            self._window.add(increments, take, now)
            self._pending += increments
            for key, value in quality.items():
                self._quality[key] = self._quality.get(key, 0) + value
            self._rows += take
        return take

    # ------------------------------------------------------------------ collection
    def observations(self, now: float | None = None) -> DriftObservations:
        """Drift scores of the current window (computed here, on the caller's thread).

        ``now`` (epoch seconds) expires a time window; default: the current time when
        ``window_seconds`` is set."""
        if self._features is None or self.profile is None:
            return DriftObservations(window_rows=self._window.rows)
        if now is None and self.window_seconds is not None:
            now = time.time()
        with self._lock:
            current = self._window.totals(now)
            window_rows = self._window.rows
        evaluated: list[tuple[Feature, float, float]] = []
        candidates = list(self._features) + ([self._output] if self._output is not None else [])
        for f in candidates:
            ref = self._reference[f.offset: f.offset + f.n_bins]
            cur = current[f.offset: f.offset + f.n_bins]
            if cur.sum() < self.min_rows or ref.sum() == 0:
                continue
            psi = self._psi(ref, cur).statistic
            test = self._statistics["ks" if f.kind == NUMERIC else "chi_square"](ref, cur)
            evaluated.append((f, psi, test.p_value))
        if not evaluated:
            return DriftObservations(window_rows=window_rows)
        cut = None if self.alpha is None else self.alpha / len(evaluated)
        verdicts = {f.name: psi >= self.threshold and (cut is None or p < cut) for f, psi, p in evaluated}
        inputs = [(f, psi) for f, psi, _ in evaluated if f is not self._output]
        ranked = sorted(inputs, key=lambda item: (not verdicts[item[0].name], -item[1]))
        drifted = tuple(f.name for f, _ in ranked if verdicts[f.name])
        share = len(drifted) / len(inputs) if inputs else None
        scores: dict[tuple[str, str], float] = {}
        p_values: dict[tuple[str, str], float] = {}
        if self.top_k is None:  # the fixed set of exported features: series never reshuffle
            chosen = [f for f in self._features if f.exported and f.name in verdicts]
        else:
            chosen = [f for f, _ in ranked[: self.top_k]]
        if self._output is not None and self._output.name in verdicts:
            chosen.append(self._output)
        for f in chosen:
            self._score(f, current, scores, p_values)
        output_drifted = bool(self._output is not None and verdicts.get(self._output.name, False))
        return DriftObservations(scores, p_values, share, drifted, output_drifted, window_rows)

    def _score(self, f: Feature, current: np.ndarray, scores: dict, p_values: dict) -> None:
        p = f.profile
        assert p is not None
        ref = self._reference[f.offset: f.offset + f.n_bins]
        cur = current[f.offset: f.offset + f.n_bins]
        applicable = _NUMERIC_METHODS if f.kind == NUMERIC else _CATEGORICAL_METHODS
        for method in self.methods:
            if method not in applicable:
                continue
            if method == "wasserstein":
                if not p.std:
                    continue
                result = self._statistics[method](_fold_tails(ref), _fold_tails(cur), edges=p.edges, low=p.minimum,
                                                  high=p.maximum, scale=p.std)  # fmt: skip
            else:
                result = self._statistics[method](ref, cur)
            value = result.statistic / cur.sum() if method == "chi_square" else result.statistic
            if math.isfinite(value):
                scores[(f.name, method)] = float(value)
            if method in ("ks", "chi_square") and math.isfinite(result.p_value):
                p_values[(f.name, method)] = float(result.p_value)

    def drain_counts(self) -> DriftCounts:
        """Bin counts, data-quality events and profiled rows since the previous drain."""
        with self._lock:
            pending, self._pending = self._pending, np.zeros(self._size, dtype=np.int64)
            quality, self._quality = self._quality, {}
            rows, self._rows = self._rows, 0
        bins: dict[tuple[str, int], int] = {}
        for position in np.flatnonzero(pending).tolist():
            label = self._flat_label[position]
            if label is not None:
                bins[(label, self._flat_bin[position])] = int(pending[position])
        return DriftCounts(bins, quality, rows)

    def reference_shares(self) -> dict[tuple[str, int | str], float]:
        """The reference's share of rows per bin, ``(feature, bin) -> share``, for every bin
        (empty ones and the under/overflow bins included) of the exported features and
        ``_output`` (``ml.drift.reference.share``). Constant for the monitor's life."""
        shares: dict[tuple[str, int | str], float] = {}
        features = self._features or []
        for f in features + ([self._output] if self._output is not None else []):
            if f.profile is None or not f.exported:
                continue
            ref = self._reference[f.offset: f.offset + f.n_bins]
            total = ref.sum()
            if total <= 0:
                continue
            for label, value in zip(bin_labels(f), (ref / total).tolist()):
                shares[(f.name, label)] = value
        return shares


def _fold_tails(counts: np.ndarray) -> np.ndarray:
    """Under/overflow counts folded into the outer bins (Wasserstein's bins have centres
    inside the reference range)."""
    inner = counts[1:-1].astype(np.float64)
    inner[0] += counts[0]
    inner[-1] += counts[-1]
    return inner


def _row_count(X: Any) -> int | None:
    """Rows of an input without converting it (None when that needs a conversion)."""
    shape = getattr(X, "shape", None)
    if isinstance(shape, tuple) and len(shape) in (1, 2):
        return int(shape[0])
    return None
