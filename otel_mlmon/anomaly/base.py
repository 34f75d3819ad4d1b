"""The interface every otel-mlmon anomaly detector implements.

A detector consumes a stream of numbers one at a time and answers, for each, how anomalous it
is::

    score = detector.update(value, timestamp)   # float in [0, 1], higher = more anomalous
    detector.is_anomaly(score)                   # score >= detector.threshold

* The score is continuous in [0, 1] (it does not saturate at a constant), so thresholds can be
  swept; ``threshold`` turns it into a verdict and can be changed at any time.
* ``timestamp`` is in seconds since the epoch; detectors that do not use time ignore it.
* ``update`` is O(1) in time and memory. NaN and infinite values never enter the state: they
  score 0.0 and are counted in ``ignored``.
* Warm-up: until ``warm_up`` values have been seen, the score is 0.0 (no alarms without data).
* ``reset()`` restores the state of a freshly constructed detector (hyperparameters kept).
* Detectors pickle, and are not thread-safe: callers serialise ``update`` (otel-mlmon does).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

__all__ = ["Detector", "MultivariateDetector"]


class Detector(ABC):
    """Base class of univariate streaming detectors. Subclasses implement ``_update`` and
    ``_reset``; this class handles non-finite input, warm-up and the threshold."""

    threshold: float
    warm_up: int

    def __init__(self, threshold: float, warm_up: int) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        if isinstance(warm_up, bool) or not isinstance(warm_up, int) or warm_up < 0:
            raise ValueError(f"warm_up must be a non-negative int, got {warm_up!r}")
        self.threshold = float(threshold)
        self.warm_up = warm_up
        self.ignored = 0
        self.seen = 0
        self._reset()

    def update(self, value: float, timestamp: float | None = None) -> float:
        """Learn ``value`` (observed at ``timestamp``, epoch seconds) and return its score."""
        try:
            x = float(value)
        except (TypeError, ValueError):
            self.ignored += 1
            return 0.0
        if not math.isfinite(x):
            self.ignored += 1
            return 0.0
        self.seen += 1
        score = self._update(x, timestamp)
        if self.seen <= self.warm_up:
            return 0.0
        return score

    def is_anomaly(self, score: float) -> bool:
        """The verdict for a score returned by :meth:`update`."""
        return score >= self.threshold

    def reset(self) -> None:
        """Forget everything learned (hyperparameters are kept)."""
        self.ignored = 0
        self.seen = 0
        self._reset()

    @abstractmethod
    def _update(self, x: float, timestamp: float | None) -> float:
        """Score ``x`` (finite) against the state, then learn it; return a score in [0, 1]."""

    @abstractmethod
    def _reset(self) -> None:
        """Initialise the mutable state (``_``-prefixed attributes)."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_") and k not in ("ignored", "seen"))
        return f"{type(self).__name__}({params})"


class MultivariateDetector(ABC):
    """Base class of detectors over vectors of signals (e.g. IsolationForest)."""

    threshold: float

    @abstractmethod
    def update(self, values: Any, timestamp: float | None = None) -> float:
        """Learn a vector and return its score in [0, 1]."""

    def is_anomaly(self, score: float) -> bool:
        return score >= self.threshold

    @abstractmethod
    def reset(self) -> None:
        """Forget everything learned."""
