"""The state of one feature while a reference profile is built and merged
(:class:`FeatureState`), behind :class:`~otel_mlmon.drift.profile.ProfileBuilder`."""

from __future__ import annotations

import math

import numpy as np

from otel_mlmon.drift._columns import count_categories, to_float
from otel_mlmon.drift._sketch import CategoryCounter, NumericSketch
from otel_mlmon.drift.base import CATEGORICAL, NUMERIC
from otel_mlmon.drift.feature_profile import FeatureProfile, frozen_array
from otel_mlmon.drift.profile_limits import DEFAULT_MAX_VALUE_LENGTH


class FeatureState:
    """One feature's counts while a profile is built: exact counts of NaN, inf and missing
    values, a :class:`~otel_mlmon.drift._sketch.NumericSketch` (numeric) or a
    :class:`~otel_mlmon.drift._sketch.CategoryCounter` (categorical); mergeable, and finished
    into a :class:`~otel_mlmon.drift.feature_profile.FeatureProfile`. Category values longer
    than ``max_length`` characters are not stored: they count as "other" and the category list
    is then incomplete."""

    __slots__ = ("name", "kind", "dtype", "dtype_class", "rows", "missing", "nan", "inf", "sketch", "counter",
                 "max_length")  # fmt: skip

    def __init__(self, name: str, kind: str, dtype: str, cls: str, sketch_edges: int, max_categories: int,
                 max_length: int = DEFAULT_MAX_VALUE_LENGTH) -> None:  # fmt: skip
        self.name, self.kind, self.dtype, self.dtype_class = name, kind, dtype, cls
        self.max_length = max_length
        self.rows = self.missing = self.nan = self.inf = 0
        self.sketch = NumericSketch(max_edges=sketch_edges) if kind == NUMERIC else None
        self.counter = CategoryCounter(max_categories) if kind == CATEGORICAL else None

    def add_numeric(self, values: np.ndarray, missing: np.ndarray | None) -> None:
        assert self.sketch is not None
        self.rows += values.size
        finite = np.isfinite(values)
        if finite.all():
            self.sketch.update(values)
            return
        nan = np.isnan(values)
        n_missing = int(missing.sum()) if missing is not None else 0
        self.missing += n_missing
        self.nan += int(nan.sum()) - n_missing
        self.inf += int(values.size - finite.sum() - nan.sum())
        self.sketch.update(values[finite])

    def add_categorical(self, values: np.ndarray) -> None:
        assert self.counter is not None
        keys, counts, n_missing = count_categories(values)
        self.rows += values.size
        self.missing += n_missing
        if keys and max(map(len, keys)) > self.max_length:  # too long to store: "other"
            keep = [i for i, key in enumerate(keys) if len(key) <= self.max_length]
            self.counter.pruned += int(counts.sum() - counts[keep].sum())
            self.counter.overflow = True
            keys, counts = [keys[i] for i in keep], counts[keep]
        self.counter.update(keys, counts)

    def add(self, values: np.ndarray) -> None:
        if self.kind == NUMERIC:
            self.add_numeric(*to_float(values))
        else:
            self.add_categorical(values)

    def merge(self, other: FeatureState) -> None:
        if (other.name, other.kind) != (self.name, self.kind):
            raise ValueError(f"cannot merge feature {other.name!r} ({other.kind}) into {self.name!r} ({self.kind})")
        self.rows += other.rows
        self.missing += other.missing
        self.nan += other.nan
        self.inf += other.inf
        if self.sketch is not None and other.sketch is not None:
            self.sketch.merge(other.sketch)
        if self.counter is not None and other.counter is not None:
            self.counter.merge(other.counter)

    def spawn(self) -> FeatureState:
        new = FeatureState.__new__(FeatureState)
        new.name, new.kind, new.dtype, new.dtype_class = self.name, self.kind, self.dtype, self.dtype_class
        new.max_length = self.max_length
        new.rows = new.missing = new.nan = new.inf = 0
        new.sketch = None if self.sketch is None else self.sketch.spawn()
        new.counter = None if self.counter is None else CategoryCounter(self.counter.capacity)
        return new

    def finish(self, n_bins: int, top_k: int, stored_edges: int) -> FeatureProfile:
        common = dict(name=self.name, kind=self.kind, dtype=self.dtype, dtype_class=self.dtype_class,
                      rows=self.rows, missing=self.missing, top_k=top_k)  # fmt: skip
        if self.kind == NUMERIC:
            sk = self.sketch
            assert sk is not None
            edges, counts = sk.quantile_bins(n_bins)
            has = sk.n > 0
            return FeatureProfile(**common, count=int(sk.n), nan=self.nan, inf=self.inf,
                                  minimum=sk.minimum if has else None, maximum=sk.maximum if has else None,
                                  mean=sk.mean if has else None, std=math.sqrt(sk.m2 / sk.n) if has else None,
                                  edges=frozen_array(edges, np.float64), counts=frozen_array(counts, np.int64),
                                  sketch=sk.state(stored_edges))  # fmt: skip
        assert self.counter is not None
        ranked = self.counter.ranked()[: self.counter.capacity]
        count = self.rows - self.missing
        listed = sum(c for _, c in ranked)
        return FeatureProfile(**common, count=count, values=tuple(k for k, _ in ranked),
                              counts=frozen_array([c for _, c in ranked], np.int64), other=count - listed,
                              complete=not self.counter.overflow and len(self.counter.counts) <= self.counter.capacity)  # fmt: skip

    @classmethod
    def from_profile(cls, f: FeatureProfile, sketch_edges: int, max_categories: int) -> FeatureState:
        state = cls(f.name, f.kind, f.dtype, f.dtype_class, sketch_edges, max_categories)
        state.rows, state.missing, state.nan, state.inf = f.rows, f.missing, f.nan, f.inf
        if f.kind == NUMERIC:
            state.sketch = NumericSketch.from_state(f.sketch, n=f.count, mean=f.mean or 0.0, std=f.std or 0.0,
                                                    minimum=f.minimum if f.count else math.inf,
                                                    maximum=f.maximum if f.count else -math.inf,
                                                    max_edges=sketch_edges)  # fmt: skip
        else:
            assert state.counter is not None
            state.counter.counts = dict(zip(f.values, (int(c) for c in f.counts)))
            state.counter.pruned = f.other
            state.counter.overflow = not f.complete
        return state
