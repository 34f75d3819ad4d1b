"""Sliding window of bin counts: a ring of sub-window buckets."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

__all__ = ["SlidingWindow", "DEFAULT_WINDOW_ROWS", "DEFAULT_BUCKETS"]

DEFAULT_WINDOW_ROWS = 1000
DEFAULT_BUCKETS = 10


class _Bucket:
    __slots__ = ("counts", "rows", "start", "end")

    def __init__(self, size: int, timestamp: float) -> None:
        self.counts = np.zeros(size, dtype=np.int64)
        self.rows = 0
        self.start = self.end = timestamp


class SlidingWindow:
    """Sum of the count vectors added over the last ``rows`` rows and/or ``seconds`` seconds.

    The window is a ring of ``buckets`` sub-windows. A sub-window closes when it holds
    ``rows / buckets`` rows (if ``rows`` is set) or spans ``seconds / buckets`` seconds (if
    ``seconds`` is set); opening one more than ``buckets`` drops the oldest, and with ``seconds``
    set, sub-windows whose last row is older than ``seconds`` expire. A running total is kept, so
    :meth:`add` and :meth:`totals` cost O(bins) — never O(rows) — and memory is
    ``buckets x size`` integers.

    The window therefore slides in steps of one sub-window: it holds between
    ``rows * (buckets - 1) / buckets`` and ``rows`` rows (plus the overshoot of the last batch
    added, which is never split). Defaults: ``rows=1000``, ``buckets=10`` — a window of about
    1000 rows that moves every 100 rows, which is what lets
    :class:`~otel_mlmon.drift.monitor.DriftMonitor` flag a 0.5 standard-deviation shift within
    about 1000 rows while keeping the false-alarm rate of unshifted traffic near zero.

    >>> window = SlidingWindow(3, rows=4, buckets=2)
    >>> for t, counts in enumerate(([1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0])):
    ...     window.add(np.array(counts), rows=1, timestamp=float(t))
    >>> window.totals().tolist(), window.rows
    ([2, 2, 1], 4)
    >>> window.add(np.array([0, 0, 1]), rows=1, timestamp=4.0)
    >>> window.totals().tolist(), window.rows
    ([1, 1, 2], 3)
    """

    def __init__(self, size: int, *, rows: int | None = DEFAULT_WINDOW_ROWS, seconds: float | None = None,
                 buckets: int = DEFAULT_BUCKETS) -> None:  # fmt: skip
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be a non-negative int, got {size!r}")
        if rows is None and seconds is None:
            raise ValueError("a window needs rows, seconds or both")
        if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
            raise ValueError(f"rows must be a positive int or None, got {rows!r}")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0):
            raise ValueError(f"seconds must be a positive number or None, got {seconds!r}")
        if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
            raise ValueError(f"buckets must be a positive int, got {buckets!r}")
        self.size = size
        self.window_rows = rows
        self.window_seconds = None if seconds is None else float(seconds)
        self.buckets = buckets
        self._bucket_rows = None if rows is None else max(1, math.ceil(rows / buckets))
        self._bucket_seconds = None if seconds is None else float(seconds) / buckets
        self._reset()

    def _reset(self) -> None:
        self._ring: deque[_Bucket] = deque()
        self._total = np.zeros(self.size, dtype=np.int64)
        self.rows = 0
        self._latest = -math.inf

    def reset(self) -> None:
        """Empty the window."""
        self._reset()

    def _full(self, bucket: _Bucket, timestamp: float) -> bool:
        if self._bucket_rows is not None and bucket.rows >= self._bucket_rows:
            return True
        return self._bucket_seconds is not None and timestamp - bucket.start >= self._bucket_seconds

    def _drop_oldest(self) -> None:
        old = self._ring.popleft()
        self._total -= old.counts
        self.rows -= old.rows

    def expire(self, now: float) -> None:
        """Drop sub-windows whose last row is older than ``seconds`` before ``now``."""
        if self.window_seconds is None:
            return
        horizon = now - self.window_seconds
        while self._ring and self._ring[0].end < horizon:
            self._drop_oldest()

    def add(self, counts: Any, rows: int, timestamp: float) -> None:
        """Add one batch's counts (length ``size``) covering ``rows`` rows seen at ``timestamp``."""
        self._latest = max(self._latest, timestamp)
        self.expire(self._latest)
        current = self._ring[-1] if self._ring else None
        if current is None or self._full(current, timestamp):
            if len(self._ring) >= self.buckets:
                self._drop_oldest()
            current = _Bucket(self.size, timestamp)
            self._ring.append(current)
        if counts is not None:
            current.counts += counts
            self._total += counts
        current.rows += rows
        current.end = max(current.end, timestamp)
        self.rows += rows

    def totals(self, now: float | None = None) -> np.ndarray:
        """A copy of the summed counts (after expiring by ``now``, if given)."""
        if now is not None:
            self.expire(now)
        return self._total.copy()
