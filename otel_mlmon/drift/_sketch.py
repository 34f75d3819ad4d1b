"""Bounded, mergeable summaries behind :class:`~otel_mlmon.drift.profile.ProfileBuilder`.

``NumericSketch`` — an adaptive fine histogram with *exact* counts:

1. The first ``buffer_size`` finite values are kept as they are (so tiny inputs stay exact).
2. The grid is then initialised with every distinct value when there are at most ``max_edges``
   of them (an *exact* grid: every value is an edge), otherwise with ``max_edges / 2`` quantiles
   of the buffer (the other half is headroom for step 3). The first edge is the minimum and the last the maximum; bins are ``[e_i, e_{i+1})``.
3. Every later value is counted into the grid (``np.searchsorted``). Values below the minimum or
   above the maximum first extend the grid outwards with quantiles of those values; this keeps
   counts exact, because the open bin below the minimum is always empty and the bin from the
   maximum upwards only holds values equal to the maximum.
4. Past ``max_edges`` edges the grid is coarsened to half by merging adjacent bins at equal-mass
   positions — counts add, so they stay exact.

The reference quantile edges are chosen from the grid's edges at the end, so every row is counted
exactly into the final bins without a second pass; their positions are within about
``1 / max_edges`` of the target quantiles when the first ``buffer_size`` rows cover the range
the way the rest does (shuffled or time-ordered data); data sorted by a feature is handled by the
outward extension. Memory is ``O(max_edges + buffer_size)`` per feature, whatever the row count.

Merging two sketches with different grids re-bins both onto the union of their edges, reading
each one's cumulative counts at the other's edges: exactly for an exact grid (step function) or
where a bin is not split, by linear interpolation inside a bin otherwise (the only
approximation). Moments (count, mean, M2, min, max) merge with Chan's formulas.

``CategoryCounter`` — exact counts of up to ``2 x capacity`` distinct keys; beyond that it keeps
the ``capacity`` most frequent and adds the rest to ``pruned`` (``overflow`` then records that
the set of categories is no longer complete: counts of kept keys are lower bounds, off by at
most ``pruned``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

DEFAULT_MAX_EDGES = 1024
DEFAULT_BUFFER = 8192


class NumericSketch:
    __slots__ = (
        "max_edges", "buffer_size", "_buffer", "_buffered", "edges", "counts", "exact",
        "n", "mean", "m2", "minimum", "maximum",
    )  # fmt: skip

    def __init__(self, max_edges: int = DEFAULT_MAX_EDGES, buffer_size: int = DEFAULT_BUFFER) -> None:
        if max_edges < 4:
            raise ValueError(f"max_edges must be >= 4, got {max_edges!r}")
        self.max_edges = int(max_edges)
        self.buffer_size = int(buffer_size)
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        self.edges: np.ndarray | None = None
        self.counts: np.ndarray | None = None
        self.exact = True
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf

    # ------------------------------------------------------------------ updates
    def update(self, values: np.ndarray) -> None:
        """Add finite float64 values (the caller drops NaN and infinities)."""
        if values.size == 0:
            return
        self._merge_moments(values.size, float(values.mean()), float(((values - values.mean()) ** 2).sum()),
                            float(values.min()), float(values.max()))  # fmt: skip
        if self.edges is None:
            self._buffer.append(np.array(values, dtype=np.float64, copy=True))
            self._buffered += values.size
            if self._buffered >= self.buffer_size:
                self.flush()
        else:
            self._count(values)

    def _merge_moments(self, n: int, mean: float, m2: float, lo: float, hi: float) -> None:
        if n == 0:
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total
        self.minimum = min(self.minimum, lo)
        self.maximum = max(self.maximum, hi)

    def flush(self) -> None:
        """Initialise the grid from the buffered values (no-op once initialised or when empty)."""
        if self.edges is not None or not self._buffer:
            return
        values = np.concatenate(self._buffer)
        self._buffer, self._buffered = [], 0
        unique = np.unique(values)
        if unique.size <= self.max_edges:
            self.edges = unique
        else:  # half the cap: room to extend outwards before the first coarsening
            self.edges = _quantile_edges(values, self.max_edges // 2)
            self.exact = False
        self.counts = np.zeros(self.edges.size + 1, dtype=np.int64)
        self._count(values)

    def _count(self, values: np.ndarray) -> None:
        assert self.edges is not None and self.counts is not None
        lo, hi = values.min(), values.max()
        if lo < self.edges[0]:
            below = values[values < self.edges[0]]
            new = self._extension(below, values.size)
            self.edges = np.concatenate((new, self.edges))
            self.counts = np.concatenate((np.zeros(new.size, dtype=np.int64), self.counts))
        if hi > self.edges[-1]:
            above = values[values > self.edges[-1]]
            new = self._extension(above, values.size)
            self.edges = np.concatenate((self.edges, new))
            self.counts = np.concatenate((self.counts, np.zeros(new.size, dtype=np.int64)))
        index = np.searchsorted(self.edges, values, side="right")
        if self.exact and not np.array_equal(self.edges[index - 1], values):
            self.exact = False
        self.counts += np.bincount(index, minlength=self.counts.size)
        if self.edges.size > self.max_edges:
            self.coarsen(self.max_edges // 2)

    def _extension(self, outside: np.ndarray, n_chunk: int) -> np.ndarray:
        k = int(min(self.max_edges, max(1, math.ceil(self.max_edges * outside.size / n_chunk))))
        unique = np.unique(outside)
        if unique.size <= k:
            return unique
        self.exact = False
        return _quantile_edges(outside, k)

    def coarsen(self, target: int) -> None:
        """Merge adjacent bins down to about ``target`` edges (at most ``target + 1``) at equal-mass positions."""
        if self.edges is None or self.edges.size <= target:
            return
        assert self.counts is not None
        below = np.cumsum(self.counts)[: self.edges.size]  # values < edges[i]
        goals = np.linspace(0, below[-1], max(2, target))
        picked = np.clip(np.searchsorted(below, goals, side="left"), 0, self.edges.size - 1)
        keep = np.unique(np.concatenate(([0, self.edges.size - 1], picked)))
        self.counts = np.add.reduceat(self.counts, np.concatenate(([0], keep + 1)))
        self.edges = self.edges[keep]
        self.exact = False

    # ------------------------------------------------------------------ reading
    def below(self, points: np.ndarray) -> np.ndarray:
        """Number of values ``< x`` at each point, read from the grid (see module docstring)."""
        self.flush()
        points = np.asarray(points, dtype=np.float64)
        if self.edges is None:
            return np.zeros(points.shape)
        assert self.counts is not None
        cum = np.cumsum(self.counts)
        at_edges = cum[: self.edges.size]
        if self.exact:
            return cum[np.searchsorted(self.edges, points, side="left")].astype(np.float64)
        return np.interp(points, self.edges, at_edges.astype(np.float64), left=0.0, right=float(cum[-1]))

    def merge(self, other: NumericSketch) -> None:
        """Add ``other``'s values into this sketch (``other`` is left unchanged)."""
        self._merge_moments(other.n, other.mean, other.m2, other.minimum, other.maximum)
        if other.edges is None:
            for chunk in other._buffer:
                self._add_values(chunk)
            return
        if self.edges is None:
            buffered = self._buffer
            self._buffer, self._buffered = [], 0
            assert other.counts is not None
            self.edges, self.counts, self.exact = other.edges.copy(), other.counts.copy(), other.exact
            for chunk in buffered:
                self._count(chunk)
            return
        assert self.counts is not None and other.counts is not None
        if np.array_equal(self.edges, other.edges):
            self.counts = self.counts + other.counts
            self.exact = self.exact and other.exact
            return
        union = np.union1d(self.edges, other.edges)
        total = int(self.counts.sum() + other.counts.sum())
        below = np.rint(self.below(union)) + np.rint(other.below(union))
        self.counts = np.diff(np.concatenate(([0.0], below, [float(total)]))).astype(np.int64)
        self.edges = union
        self.exact = self.exact and other.exact
        if self.edges.size > self.max_edges:
            self.coarsen(self.max_edges // 2)

    def _add_values(self, values: np.ndarray) -> None:
        """Count values whose moments were already merged."""
        if self.edges is None:
            self._buffer.append(values)
            self._buffered += values.size
            if self._buffered >= self.buffer_size:
                self.flush()
        else:
            self._count(values)

    def quantile_bins(self, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
        """Interior edges (at most ``n_bins - 1``) near the quantiles, and exact counts."""
        self.flush()
        if self.edges is None:
            return np.zeros(0), np.zeros(1, dtype=np.int64)
        assert self.counts is not None
        total = int(self.counts.sum())
        below = np.cumsum(self.counts)[: self.edges.size]
        goals = total * np.arange(1, n_bins) / n_bins
        right = np.clip(np.searchsorted(below, goals, side="left"), 0, below.size - 1)
        left = np.clip(right - 1, 0, below.size - 1)
        pick = np.where(np.abs(below[left] - goals) <= np.abs(below[right] - goals), left, right)
        _, first = np.unique(below[pick], return_index=True)
        pick = np.unique(pick[first])
        edges = self.edges[pick]
        counts = np.diff(np.concatenate(([0], below[pick], [total]))).astype(np.int64)
        return edges, counts

    # ------------------------------------------------------------------ state
    def state(self, max_edges: int | None = None) -> dict[str, Any] | None:
        """The grid (coarsened to ``max_edges``) as plain lists, or None when empty."""
        self.flush()
        if self.edges is None:
            return None
        copy = self.copy()
        if max_edges is not None:
            copy.coarsen(max_edges)
        assert copy.edges is not None and copy.counts is not None
        return {"edges": copy.edges.tolist(), "counts": copy.counts.tolist(), "exact": copy.exact}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, *, n: int, mean: float, std: float,
                   minimum: float, maximum: float, max_edges: int = DEFAULT_MAX_EDGES) -> NumericSketch:  # fmt: skip
        sketch = cls(max_edges=max_edges)
        if state is not None:
            sketch.edges = np.asarray(state["edges"], dtype=np.float64)
            sketch.counts = np.asarray(state["counts"], dtype=np.int64)
            sketch.exact = bool(state["exact"])
        if n:
            sketch.n, sketch.mean, sketch.m2 = n, mean, std * std * n
            sketch.minimum, sketch.maximum = minimum, maximum
        return sketch

    def copy(self) -> NumericSketch:
        new = NumericSketch(self.max_edges, self.buffer_size)
        new._buffer = [b.copy() for b in self._buffer]
        new._buffered = self._buffered
        new.edges = None if self.edges is None else self.edges.copy()
        new.counts = None if self.counts is None else self.counts.copy()
        for name in ("exact", "n", "mean", "m2", "minimum", "maximum"):
            setattr(new, name, getattr(self, name))
        return new

    def spawn(self) -> NumericSketch:
        """An empty sketch on the same grid (shards counted on one grid merge exactly)."""
        self.flush()
        new = NumericSketch(self.max_edges, self.buffer_size)
        if self.edges is not None:
            new.edges = self.edges.copy()
            new.counts = np.zeros_like(self.counts)
            new.exact = self.exact
        return new


def _quantile_edges(values: np.ndarray, k: int) -> np.ndarray:
    return np.unique(np.quantile(values, np.linspace(0.0, 1.0, k), method="inverted_cdf"))


class CategoryCounter:
    __slots__ = ("capacity", "counts", "pruned", "overflow")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        self.capacity = int(capacity)
        self.counts: dict[str, int] = {}
        self.pruned = 0
        self.overflow = False

    def update(self, keys: list[str], counts: np.ndarray) -> None:
        """Add ``counts[i]`` occurrences of each distinct ``keys[i]``."""
        table = self.counts
        for key, count in zip(keys, counts.tolist()):
            table[key] = table.get(key, 0) + count
        if len(table) > 2 * self.capacity:
            self._prune(self.capacity)

    def _prune(self, keep: int) -> None:
        ranked = self.ranked()
        self.pruned += sum(count for _, count in ranked[keep:])
        self.counts = dict(ranked[:keep])
        self.overflow = True

    def ranked(self) -> list[tuple[str, int]]:
        """(key, count) by decreasing count, then key."""
        return sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))

    def merge(self, other: CategoryCounter) -> None:
        for key, count in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + count
        self.pruned += other.pruned
        self.overflow = self.overflow or other.overflow
        if len(self.counts) > 2 * self.capacity:
            self._prune(self.capacity)

    def copy(self) -> CategoryCounter:
        new = CategoryCounter(self.capacity)
        new.counts = dict(self.counts)
        new.pruned, new.overflow = self.pruned, self.overflow
        return new
