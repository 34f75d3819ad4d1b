"""``IsolationForestDetector``: a streaming multivariate Isolation Forest, in numpy only."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from otel_mlmon.anomaly.base import MultivariateDetector

__all__ = ["IsolationForestDetector"]

_EULER_GAMMA = 0.5772156649015329
_SCORE_CHUNK = 4096  # rows scored at once (bounds the temporary n_trees x rows arrays)


def _average_path_length(n: Any) -> np.ndarray:
    """c(n): the average path length of an unsuccessful search in a binary search tree of
    ``n`` points, which normalises depths (Liu et al. 2008): 0 for n <= 1, 1 for n = 2."""
    n = np.asarray(n, dtype=float)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    m = n[big]
    out[big] = 2.0 * (np.log(m - 1.0) + _EULER_GAMMA) - 2.0 * (m - 1.0) / m
    return out


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class IsolationForestDetector(MultivariateDetector):
    """Isolation Forest over a sliding window of per-call signal vectors (latency, rows,
    output statistics, data-quality rates ...), refitted periodically.

    Each vector is scored by the current forest with the standard score
    ``s = 2 ** (-E[h(x)] / c(psi))`` (Liu, Ting and Zhou, 2008), where ``h`` is the depth at
    which a tree isolates ``x`` and ``c(psi)`` the average depth for ``psi`` samples: s is in
    (0, 1] and continuous, about 0.5 or below for ordinary points and towards 1 for isolated
    ones. Then the vector joins the window (the last ``window`` vectors, a ring buffer) and,
    every ``refit_every`` vectors, ``n_trees`` trees are grown afresh on random subsamples of
    ``sample_size`` vectors of the window, to a depth of ``ceil(log2(sample_size))``, splitting
    on a random feature that is not constant in the node, at a uniform random threshold (the
    scikit-learn ``IsolationForest`` algorithm, without its scikit-learn dependency).

    * Warm-up: until the first forest is grown (``warm_up`` finite vectors), scores are 0.0.
    * Vectors with NaN or infinite values, or of another length than the first vector, score
      0.0, are counted in ``ignored`` and never enter the window.
    * Determinism: the same ``seed`` and the same input give the same scores.

    Cost: scoring is ``O(n_trees x depth)`` per vector, vectorised over trees and vectors, so
    :meth:`update_many` on micro-batches (64-256 vectors) amortises numpy's per-call overhead
    (a few µs per vector; a single :meth:`update` costs tens of µs). A refit is
    ``O(n_trees x sample_size x depth x d)`` (milliseconds) and is paid by the call that
    triggers it: call this detector from a worker or on micro-batches, not inline per
    ``predict``. Memory: ``window x d`` floats plus ``n_trees x 2 x sample_size`` nodes.

    Args:
        n_trees: trees in the forest.
        sample_size: vectors drawn (without replacement) from the window for each tree.
        window: vectors kept for refitting (the most recent ones).
        refit_every: grow a new forest after this many new vectors.
        warm_up: vectors needed before the first forest (at least 2 are always needed).
        threshold: ``is_anomaly(score)`` is ``score >= threshold``, in (0, 1).
        seed: seed of the random generator (``None``: fresh entropy); ``random_state`` is
            accepted as its scikit-learn name.

    Example:

    >>> import numpy as np
    >>> from otel_mlmon.anomaly.isolation_forest import IsolationForestDetector
    >>> rng = np.random.default_rng(0)
    >>> detector = IsolationForestDetector(seed=0)
    >>> calls = rng.normal(size=(512, 3))  # e.g. standardised latency, rows, output mean
    >>> float(detector.update_many(calls).max())  # warm-up: no forest yet
    0.0
    >>> detector.fits
    1
    >>> score = detector.update([0.1, -0.2, 0.3])
    >>> 0.3 < score < 0.6, detector.is_anomaly(score)
    (True, False)
    >>> score = detector.update([6.0, -6.0, 6.0])
    >>> score > 0.7, detector.is_anomaly(score)
    (True, True)
    >>> detector.update([float("nan"), 0.0, 0.0]), detector.ignored
    (0.0, 1)
    """

    def __init__(
        self,
        n_trees: int = 100,
        sample_size: int = 256,
        window: int = 2048,
        refit_every: int = 1024,
        warm_up: int = 256,
        threshold: float = 0.65,
        seed: int | None = 0,
        *,
        random_state: int | None = None,
    ) -> None:
        self.n_trees = _positive_int("n_trees", n_trees)
        self.sample_size = _positive_int("sample_size", sample_size, 2)
        self.window = _positive_int("window", window, 2)
        self.refit_every = _positive_int("refit_every", refit_every)
        self.warm_up = _positive_int("warm_up", warm_up, 0)
        if self.warm_up > self.window:
            raise ValueError(f"warm_up ({warm_up!r}) must not exceed window ({window!r})")
        self.threshold = threshold
        if random_state is not None:
            if seed not in (0, None, random_state):
                raise ValueError(f"seed ({seed!r}) and random_state ({random_state!r}) disagree")
            seed = random_state
        if seed is not None:
            _positive_int("seed", seed, 0)
        self.seed = seed
        self._reset()

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        self.seen = 0
        self.ignored = 0
        self.fits = 0
        self._rng = np.random.default_rng(self.seed)
        self._dim: int | None = None
        self._buffer: np.ndarray | None = None  # (window, dim) ring buffer
        self._count = 0  # vectors in the buffer
        self._head = 0  # next write position
        self._since_fit = 0
        self._forest: tuple | None = None

    def reset(self) -> None:
        """Forget everything learned (hyperparameters are kept; the generator is re-seeded)."""
        self._reset()

    @property
    def buffered(self) -> int:
        """Vectors currently in the window (at most ``window``)."""
        return self._count

    # ------------------------------------------------------------------ public API
    def update(self, values: Any, timestamp: float | None = None) -> float:
        """Score one vector with the current forest, then learn it; a score in [0, 1]."""
        try:
            row = np.asarray(values, dtype=float).reshape(1, -1)
        except (TypeError, ValueError):
            self.ignored += 1
            return 0.0
        return float(self._update_rows(row)[0])

    def update_many(self, X: Any, timestamps: Any = None) -> np.ndarray:
        """Score a micro-batch with the current forest, then learn it (and refit if due).

        ``X`` is 2-D, one vector per row (a 1-D ``X`` is a batch of 1-signal vectors).
        Returns one score per row (0.0 for ignored rows and during warm-up).
        """
        try:
            rows = np.asarray(X, dtype=float)
        except (TypeError, ValueError):
            n = len(X) if hasattr(X, "__len__") else 1
            self.ignored += n
            return np.zeros(n)
        if rows.ndim == 0:
            rows = rows.reshape(1, 1)
        elif rows.ndim == 1:
            rows = rows.reshape(-1, 1)
        elif rows.ndim > 2:
            rows = rows.reshape(len(rows), -1)
        return self._update_rows(rows)

    # ------------------------------------------------------------------ internals
    def _update_rows(self, rows: np.ndarray) -> np.ndarray:
        n = len(rows)
        scores = np.zeros(n)
        if n == 0:
            return scores
        if self._dim is None:
            self._dim = rows.shape[1]
            self._buffer = np.empty((self.window, self._dim))
        if rows.shape[1] != self._dim:
            self.ignored += n
            return scores
        finite = np.isfinite(rows).all(axis=1)
        good = rows if finite.all() else rows[finite]
        self.ignored += n - len(good)
        if not len(good):
            return scores
        if self._forest is not None:
            if len(good) == n:
                scores = self._score(good)
            else:
                scores[finite] = self._score(good)
        self.seen += len(good)
        self._append(good)
        if self._forest is None:
            if self._count >= max(self.warm_up, 2):
                self._fit()
        elif self._since_fit >= self.refit_every:
            self._fit()
        return scores

    def _append(self, rows: np.ndarray) -> None:
        buffer, size = self._buffer, self.window
        m = len(rows)
        self._since_fit += m
        if m >= size:
            buffer[:] = rows[-size:]
            self._head, self._count = 0, size
            return
        end = self._head + m
        if end <= size:
            buffer[self._head : end] = rows
        else:
            split = size - self._head
            buffer[self._head :] = rows[:split]
            buffer[: end - size] = rows[split:]
        self._head = end % size
        self._count = min(self._count + m, size)

    def _fit(self) -> None:
        """Grow ``n_trees`` trees level by level, all trees at once.

        Trees are complete binary trees of ``depth`` levels in arrays (node ``i`` has children
        ``2i+1`` and ``2i+2``). A node that cannot be split (one sample, or every feature
        constant) gets threshold +inf, so that a vector walks left down to a level-``depth``
        slot holding that node's path length ``level + c(size)``.
        """
        rng, trees = self._rng, self.n_trees
        n = self._count
        window = self._buffer[:n]
        psi = min(self.sample_size, n)
        depth = max(1, math.ceil(math.log2(psi)))
        internal = (1 << depth) - 1
        if psi < n:
            data = window[np.concatenate([rng.choice(n, psi, replace=False, shuffle=False) for _ in range(trees)])]
        else:
            data = np.tile(window, (trees, 1))
        flat = data.ravel()
        sample = np.arange(trees * psi)  # samples still in splittable nodes
        node = np.repeat(np.arange(trees), psi)  # their node: tree * width + position in level
        features = np.zeros(trees * internal, dtype=np.intp)
        thresholds = np.full(trees * internal, np.inf)
        done = np.full(trees, np.nan)  # per node of the level: its path length if a leaf above
        for level in range(depth):
            width = 1 << level
            nodes = trees * width
            sizes = np.bincount(node, minlength=nodes)
            open_nodes = np.isnan(done)
            candidates = open_nodes & (sizes >= 2)
            feature, low, spread, values = self._choose_features(flat, sample, node, candidates)
            split = candidates & (spread > 0)
            ending = open_nodes & ~split
            done[ending] = level + _average_path_length(sizes[ending])
            threshold = np.where(split, low + rng.random(nodes) * spread, np.inf)
            feature[~split] = 0
            index = np.arange(nodes)
            slots = (index >> level) * internal + (width - 1) + (index & (width - 1))
            features[slots] = feature
            thresholds[slots] = threshold
            keep = split[node]
            if not keep.all():
                sample, node, values = sample[keep], node[keep], values[keep]
            node = 2 * node + (values > threshold.take(node))
            done = np.repeat(done, 2)
        sizes = np.bincount(node, minlength=trees << depth)
        leaves = np.where(np.isnan(done), depth + _average_path_length(sizes), done)
        # For scoring, each tree is one block of 2 * internal + 1 nodes (internal nodes, then
        # leaves) in flat arrays; ``child[i]`` is the left child of node i, its right is next.
        block = 2 * internal + 1
        first = np.arange(trees)[:, None] * block
        inner = (first + np.arange(internal)).ravel()
        child = np.zeros(trees * block, dtype=np.intp)
        child[inner] = (first + 2 * np.arange(internal) + 1).ravel()
        feature_of = np.zeros(trees * block, dtype=np.intp)
        feature_of[inner] = features
        threshold_of = np.full(trees * block, np.inf)
        threshold_of[inner] = thresholds
        path = np.zeros(trees * block)
        path[(first + internal + np.arange(internal + 1)).ravel()] = leaves
        self._forest = (child, feature_of, threshold_of, path, depth, first, float(_average_path_length(psi)))
        self._since_fit = 0
        self.fits += 1

    def _choose_features(self, flat: np.ndarray, sample: np.ndarray, node: np.ndarray, candidates: np.ndarray):
        """Per node, a feature drawn uniformly among those not constant in the node, with the
        node's minimum and spread of it (spread 0: no such feature), and per sample its value
        of its node's feature.

        A random feature is drawn and checked, twice for the nodes where it was constant;
        the few nodes left are settled exactly over every feature. Linear in the samples.
        """
        rng, dim = self._rng, self._dim
        nodes = len(candidates)
        feature = np.zeros(nodes, dtype=np.intp)
        low = np.zeros(nodes)
        spread = np.zeros(nodes)
        values = np.zeros(len(sample))
        pending = candidates
        where = None  # samples of the pending nodes (None: all)
        for attempt in range(1 if dim == 1 else 2):
            chosen = np.flatnonzero(pending)
            if not len(chosen):
                return feature, low, spread, values
            feature[chosen] = rng.integers(dim, size=len(chosen))
            if attempt:
                where = np.flatnonzero(pending[node])
                at = node[where]
                vals = values[where] = flat.take(sample[where] * dim + feature.take(at))
            else:
                at = node
                vals = values[:] = flat.take(sample * dim + feature.take(node))
            lo = np.full(nodes, np.inf)
            hi = np.full(nodes, -np.inf)
            np.minimum.at(lo, at, vals)
            np.maximum.at(hi, at, vals)
            low[chosen] = lo[chosen]
            spread[chosen] = hi[chosen] - lo[chosen]
            pending = pending & ~(spread > 0)
        chosen = np.flatnonzero(pending)
        if len(chosen) and dim > 1:
            where = np.flatnonzero(pending[node])
            at = node[where]
            rows = flat.reshape(-1, dim)[sample[where]]
            lo = np.full((nodes, dim), np.inf)
            hi = np.full((nodes, dim), -np.inf)
            np.minimum.at(lo, at, rows)
            np.maximum.at(hi, at, rows)
            lo, hi = lo[chosen], hi[chosen]
            splittable = hi > lo
            keys = rng.random((len(chosen), dim))
            keys[~splittable] = -1.0
            best = keys.argmax(axis=1)
            index = np.arange(len(chosen))
            ok = splittable[index, best]
            feature[chosen] = best
            low[chosen] = np.where(ok, lo[index, best], 0.0)
            spread[chosen] = np.where(ok, hi[index, best] - lo[index, best], 0.0)
            values[where] = flat.take(sample[where] * dim + feature.take(at))
        return feature, low, spread, values

    def _score(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) > _SCORE_CHUNK:
            return np.concatenate([self._score(rows[i : i + _SCORE_CHUNK]) for i in range(0, len(rows), _SCORE_CHUNK)])
        child, feature, threshold, path, depth, roots, norm = self._forest
        flat = np.ascontiguousarray(rows).ravel()
        row_base = np.arange(len(rows)) * rows.shape[1]
        node = np.repeat(roots, len(rows), axis=1)  # (n_trees, rows)
        for _ in range(depth):
            node = child.take(node) + (flat.take(feature.take(node) + row_base) > threshold.take(node))
        return np.exp2(-path.take(node).mean(axis=0) / norm)

    def __repr__(self) -> str:
        return (
            f"IsolationForestDetector(n_trees={self.n_trees}, sample_size={self.sample_size}, "
            f"window={self.window}, refit_every={self.refit_every}, warm_up={self.warm_up}, "
            f"threshold={self.threshold}, seed={self.seed})"
        )
