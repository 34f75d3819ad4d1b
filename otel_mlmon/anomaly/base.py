"""The interface every otel-mlmon anomaly detector implements.

A detector consumes a stream of numbers one at a time and answers, for each, how anomalous it
is::

    score = detector.update(value, timestamp)   # float in [0, 1], higher = more anomalous
    detector.is_anomaly(score)                   # score >= detector.threshold

* The score is continuous in [0, 1] (it does not saturate at a constant), so thresholds can be
  swept; ``threshold`` turns it into a verdict and can be changed at any time. Larger deviations
  score higher: a score ranks, and stays below 1.0 even for wild values or after a constant
  stretch (see :func:`_far` and :data:`_SPREAD_FLOOR`).
* ``timestamp`` is in seconds since the epoch; detectors that do not use time ignore it.
* ``update`` is O(1) in time and memory. NaN and infinite values never enter the state: they
  score 0.0 and are counted in ``ignored``. Finite values beyond +-1e100 are clamped to it.
* Warm-up: until ``warm_up`` values have been seen, the score is 0.0 (no alarms without data).
* ``reset()`` restores the state of a freshly constructed detector (hyperparameters kept).
* Detectors pickle, and are not thread-safe: callers serialise ``update`` (otel-mlmon does).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

__all__ = ["Detector", "MultivariateDetector"]

_LARGEST = 1e100  # finite values are clamped to +-_LARGEST

# Scores that rank. A detector that measures a distance ``z`` in standard deviations (or another
# unit of spread) maps it with ``z / (z + k)``, which reaches exactly 1.0 in floating point once
# ``z`` exceeds about ``k * 2**53``: every larger deviation would tie. Two helpers keep ``z``
# finite and far below that, so that larger deviations always score higher and below 1.

_SPREAD_FLOOR = 1e-9
"""A spread (standard deviation, MAD) is taken as at least this fraction of the level's
magnitude (of 1 for a level of 0): a constant stretch has no spread, and another value is then
very far, but a finite, ranked distance away. 1e-9 is far above the rounding noise of a mean
(about 1e-16 of it) and far below the relative noise of any real measurement."""

_FAR = 1e6
"""Beyond ``_FAR`` units of spread a distance grows with its logarithm (:func:`_far`). A million
standard deviations is already certain; the compression only serves to keep such distances
ranked: ``z`` stays below 7e8 for any input, so ``z / (z + k) < 1`` for any ``k`` above 1e-7."""


def _spread_floor(level: float) -> float:
    """The least spread accepted around ``level`` (see :data:`_SPREAD_FLOOR`); never 0."""
    return _SPREAD_FLOOR * abs(level) or _SPREAD_FLOOR


def _far(z: float) -> float:
    """A distance ``z > _FAR`` compressed to ``_FAR * (1 + ln(z / _FAR))``: continuous and
    strictly increasing (with slope 1 at ``_FAR``), below 7e8 for every ``z`` (``inf`` included:
    ``z`` is first capped at 1e300, reached only when the spread is below 1e-200)."""
    return _FAR * (1.0 + math.log(min(z, 1e300) / _FAR))


def _check_threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {value!r}")
    return float(value)


# Hyperparameter checks shared by the detectors: eager, with the parameter's name in the message.


def _number(name: str, value: Any) -> float:
    if not isinstance(value, bool) and isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            pass
        else:
            if number - number == 0.0:
                return number
    raise ValueError(f"{name} must be a finite number, got {value!r}")


def _positive(name: str, value: Any) -> float:
    number = _number(name, value)
    if not number > 0.0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return number


def _rate(name: str, value: Any) -> float:
    number = _number(name, value)
    if not 0.0 < number < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return number


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


class _Thresholded:
    """The ``threshold`` that turns a score into a verdict, validated on every assignment."""

    _threshold: float

    @property
    def threshold(self) -> float:
        """Scores at or above it are anomalous; in (0, 1), may be changed at any time."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self._threshold = _check_threshold(value)


class Detector(_Thresholded, ABC):
    """Base class of univariate streaming detectors. Subclasses implement ``_update`` and
    ``_reset``; this class handles non-finite input, warm-up and the threshold.

    Subclasses call ``super().__init__(threshold, warm_up)`` last, after storing and validating
    their own hyperparameters, since it calls ``_reset()``. ``threshold`` is validated on every
    assignment (``ValueError`` outside (0, 1)). ``seen`` counts the finite values learned,
    ``ignored`` the values that were not finite numbers.
    """

    warm_up: int

    def __init__(self, threshold: float, warm_up: int) -> None:
        self.threshold = threshold
        if isinstance(warm_up, bool) or not isinstance(warm_up, int) or warm_up < 0:
            raise ValueError(f"warm_up must be a non-negative int, got {warm_up!r}")
        self.warm_up = warm_up
        self.ignored = 0
        self.seen = 0
        self._reset()

    def update(self, value: float, timestamp: float | None = None) -> float:
        """Learn ``value`` (observed at ``timestamp``, epoch seconds) and return its score."""
        if type(value) is float:
            x = value
        else:
            try:
                x = float(value)
            except (TypeError, ValueError, OverflowError):
                self.ignored += 1
                return 0.0
        if x - x != 0.0:  # NaN or +-inf (inf - inf is NaN): never enters the state
            self.ignored += 1
            return 0.0
        if x > _LARGEST:  # so that no statistic overflows
            x = _LARGEST
        elif x < -_LARGEST:
            x = -_LARGEST
        self.seen = seen = self.seen + 1
        score = self._update(x, timestamp)
        if seen <= self.warm_up:
            return 0.0
        return score

    def is_anomaly(self, score: float) -> bool:
        """The verdict for a score returned by :meth:`update`."""
        return score >= self._threshold

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
        params = [f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_") and k not in ("ignored", "seen")]
        params.insert(len(params) - 1, f"threshold={self._threshold!r}")  # before warm_up
        return f"{type(self).__name__}({', '.join(params)})"


class MultivariateDetector(_Thresholded, ABC):
    """Base class of detectors over vectors of signals (e.g. IsolationForest)."""

    @abstractmethod
    def update(self, values: Any, timestamp: float | None = None) -> float:
        """Learn a vector and return its score in [0, 1]."""

    def is_anomaly(self, score: float) -> bool:
        return score >= self.threshold

    @abstractmethod
    def reset(self) -> None:
        """Forget everything learned."""
