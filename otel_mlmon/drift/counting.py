"""How :class:`~otel_mlmon.drift.monitor.DriftMonitor` counts one sampled batch: the profiled
features (:class:`Feature`), how an input schema maps onto them (:class:`Plan`, built once per
schema), numeric values into the reference's bins with one ``searchsorted`` for all features
(:func:`count_numeric`), categorical values into the top-K slots (:func:`count_categorical`),
and the data-quality events found on the way. Every count goes into one flat vector of bins.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from otel_mlmon.drift._columns import (
    CATEGORY_DTYPES,
    NUMERIC_DTYPES,
    STRING_DTYPES,
    Table,
    count_categories,
    dtype_class,
    missing_mask,
)
from otel_mlmon.drift.base import CATEGORICAL, NUMERIC
from otel_mlmon.drift.feature_profile import FeatureProfile

INPUT = "_input"
MISSING, NAN, INF, OUT_OF_RANGE, UNSEEN, SCHEMA = (
    "missing", "nan", "inf", "out_of_range", "unseen_category", "schema_change",
)  # fmt: skip
ISSUES = (MISSING, NAN, INF, OUT_OF_RANGE, UNSEEN, SCHEMA)
UNDERFLOW, OVERFLOW = "underflow", "overflow"  # bins of numeric values outside the reference range


def compatible(reference: str, current: str) -> bool:
    text = (STRING_DTYPES, CATEGORY_DTYPES)
    return reference == current or (reference in text and current in text)


class Feature:
    """What the monitor needs of one profiled feature."""

    __slots__ = ("name", "kind", "dtype_class", "profile", "offset", "n_bins", "label", "slots", "known", "exported",
                 "tails")  # fmt: skip

    def __init__(self, name: str, kind: str, dtype_cls: str, profile: FeatureProfile | None) -> None:
        self.name, self.kind, self.dtype_class, self.profile = name, kind, dtype_cls, profile
        self.offset = 0
        # numeric: [underflow, the profile's bins, overflow]; categorical: top-K slots + other
        self.tails = profile is not None and kind == NUMERIC
        self.n_bins = 0 if profile is None else profile.n_bins + (2 if self.tails else 0)
        self.label = name
        self.exported = False
        self.slots: dict[str, int] = {}
        self.known: frozenset[str] | None = None
        if profile is not None and kind == CATEGORICAL:
            self.slots = {value: i for i, value in enumerate(profile.top)}
            self.known = frozenset(profile.values) if profile.complete else None


class Plan:
    """How one input schema maps onto the profiled features (cached per schema)."""

    __slots__ = ("numeric", "numeric_cols", "numeric_dtypes", "queries", "flat", "categorical", "schema_events")

    def __init__(self) -> None:
        self.numeric: list[int] = []  # feature indices
        self.numeric_cols: list[int] = []  # input column per numeric feature
        self.numeric_dtypes = True  # whether those input columns all have numeric dtypes
        self.queries: np.ndarray | None = None  # flat complex probes, see numeric_plan
        self.flat: np.ndarray | None = None  # (k, max_bins) positions in the flat count vector
        self.categorical: list[tuple[int, int]] = []  # (feature index, input column)
        self.schema_events: list[str] = []  # labels that get one schema_change per row


def numeric_plan(features: list[Feature], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Probe keys (feature index + 1j * [min, edges, next(max), next(max) pads]) and flat
    positions of the bins [underflow, bins, overflow], for numeric features with bins.

    The counts below the probes, between the -inf count and the count of all non-NaN values
    below +inf, differ into: underflow, the bins, zeros for the pads, overflow."""
    max_bins = max(f.n_bins for f in features)
    queries = np.full((len(features), max_bins - 1), np.inf)
    flat = np.full((len(features), max_bins), size, dtype=np.int64)
    for k, f in enumerate(features):
        p = f.profile
        assert p is not None
        low, high = (p.minimum, np.nextafter(p.maximum, np.inf)) if p.count else (np.nextafter(-np.inf, 0), np.inf)
        queries[k, 0] = low
        queries[k, 1: 1 + p.edges.size] = p.edges
        queries[k, 1 + p.edges.size:] = high
        flat[k, : f.n_bins - 1] = f.offset + np.arange(f.n_bins - 1)
        flat[k, -1] = f.offset + f.n_bins - 1
    probe = np.empty(queries.shape, dtype=np.complex128)
    probe.real = np.arange(len(features), dtype=np.float64)[:, None]
    probe.imag = queries
    return probe.ravel(), flat


def build_plan(table: Table, features: list[Feature], named: bool, size: int) -> Plan:
    """How ``table``'s columns map onto ``features``; ``named``: whether features are matched by
    column name (else by position); ``size``: the length of the flat count vector."""
    plan = Plan()
    names = [f.name for f in features]
    columns: list[int | None]
    if named and table.names is not None:
        where = {n: j for j, n in enumerate(table.names)}
        columns = [where.get(n) for n in names]
        if set(table.names) - set(names):
            plan.schema_events.append(INPUT)
    elif table.n_cols == len(names):
        columns = list(range(len(names)))
    else:
        plan.schema_events.append(INPUT)
        columns = [None] * len(names)
    numeric_with_bins: list[Feature] = []
    for i, (f, j) in enumerate(zip(features, columns)):
        if j is None:
            if INPUT not in plan.schema_events or named:
                plan.schema_events.append(f.label)
            continue
        if not compatible(f.dtype_class, dtype_class(table.dtypes[j])):
            plan.schema_events.append(f.label)
        if f.kind == NUMERIC:
            plan.numeric.append(i)
            plan.numeric_cols.append(j)
            if f.profile is not None:
                numeric_with_bins.append(f)
        else:
            plan.categorical.append((i, j))
    plan.numeric_dtypes = all(dtype_class(table.dtypes[j]) == NUMERIC_DTYPES for j in plan.numeric_cols)
    if numeric_with_bins:
        if len(numeric_with_bins) != len(plan.numeric):  # pragma: no cover - profiles bin every numeric feature
            raise AssertionError("numeric features without bins")
        plan.queries, plan.flat = numeric_plan(numeric_with_bins, size)
    return plan


def count_numeric(block: np.ndarray, missing: np.ndarray | None, features: list[Feature],
                  queries: np.ndarray | None, flat: np.ndarray | None, counts: np.ndarray,
                  quality: dict[tuple[str, str], int]) -> None:  # fmt: skip
    m, k = block.shape
    data = block.T
    finite = np.isfinite(data)
    if finite.all():
        nan = pos = neg = np.zeros(k, dtype=np.int64)
        clean = True
    else:
        nan_mask = np.isnan(data)
        nan = nan_mask.sum(axis=1)
        pos = (data == np.inf).sum(axis=1)
        neg = (data == -np.inf).sum(axis=1)
        clean = False
        n_missing = np.zeros(k, dtype=np.int64) if missing is None else missing.T.sum(axis=1)
        for c in np.flatnonzero(nan + pos + neg):
            label = features[c].label
            bump(quality, label, MISSING, int(n_missing[c]))
            bump(quality, label, NAN, int(nan[c] - n_missing[c]))
            bump(quality, label, INF, int(pos[c] + neg[c]))
    if queries is None or flat is None:
        return
    ordered = np.sort(data, axis=1)
    if not clean:
        ordered[np.isnan(ordered)] = np.inf
    # Row-sorted values as complex keys (feature index, value) are sorted lexicographically as
    # one flat array, so a single searchsorted counts the values below every probe.
    keys = np.empty(ordered.shape, dtype=np.complex128)
    keys.real = np.arange(k, dtype=np.float64)[:, None]
    keys.imag = ordered
    below = np.searchsorted(keys.ravel(), queries, side="left").reshape(k, -1)
    below -= np.arange(0, k * m, m)[:, None]  # values < probe, per feature
    cumulative = np.concatenate((neg[:, None], below, (m - nan - pos)[:, None]), axis=1)
    binned = cumulative[:, 1:] - cumulative[:, :-1]
    outside = binned[:, 0] + binned[:, -1]  # underflow + overflow
    if outside.any():
        for c in np.flatnonzero(outside).tolist():
            bump(quality, features[c].label, OUT_OF_RANGE, int(outside[c]))
    counts[flat.ravel()] += binned.ravel()


def count_categorical(values: np.ndarray, f: Feature, counts: np.ndarray,
                      quality: dict[tuple[str, str], int]) -> None:  # fmt: skip
    kind = values.dtype.kind
    if f.profile is None:
        n_missing = int(missing_mask(values).sum()) if kind in "Of" else 0
        bump(quality, f.label, MISSING, n_missing)
        return
    keys, seen, n_missing = count_categories(values)
    bump(quality, f.label, MISSING, n_missing)
    if not keys:
        return
    other = f.n_bins - 1
    slots = np.fromiter((f.slots.get(key, other) for key in keys), dtype=np.int64, count=len(keys))
    counts[f.offset: f.offset + f.n_bins] += np.bincount(slots, weights=seen, minlength=f.n_bins).astype(np.int64)
    if f.known is not None:
        known = f.known
        unseen = sum(c for key, c in zip(keys, seen.tolist()) if key not in known)
        bump(quality, f.label, UNSEEN, unseen)


def bin_labels(feature: Any) -> list[int | str]:
    """The ``ml.drift.bin`` of each of a feature's bins: numeric ``underflow`` (below the
    reference minimum), ``0`` .. ``n-1`` (the profile's bins), ``overflow`` (above the
    maximum); categorical ``0`` .. ``K`` (the top-K slots, then other)."""
    p = feature.profile
    if p is None:
        return []
    inner: list[int | str] = list(range(p.n_bins))
    return [UNDERFLOW, *inner, OVERFLOW] if feature.tails else inner


def output_fits(kind: str, vector: np.ndarray) -> bool:
    """Whether outputs can be compared with a reference of this kind: numeric needs numbers;
    categorical (labels) takes anything but non-integral floats."""
    if kind == NUMERIC:
        return vector.dtype.kind in "iufb"
    if vector.dtype.kind == "f":
        finite = vector[np.isfinite(vector)]
        return bool(np.array_equal(finite, np.round(finite)))
    return True


def bump(quality: dict[tuple[str, str], int], label: str, issue: str, value: int) -> None:
    if value > 0:
        key = (label, issue)
        quality[key] = quality.get(key, 0) + value
