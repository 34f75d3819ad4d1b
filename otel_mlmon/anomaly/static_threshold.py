"""Fixed bounds: the rule an operator writes by hand ("alert when latency > 250 ms")."""

from __future__ import annotations

import math

from otel_mlmon.anomaly.base import _FAR, Detector, _count, _far, _number, _positive, _spread_floor

__all__ = ["StaticThresholdDetector"]

_MAD_TO_SIGMA = 1.4826  # consistency constant of the MAD for a normal distribution


class StaticThresholdDetector(Detector):
    """Alarm when a value leaves ``[lower, upper]``; the bounds never move.

    The score is a rational sigmoid of the signed distance ``d`` of the value beyond the
    nearest bound, in units of ``scale``: with ``t = d / softness``,
    ``score = 1 - 0.5 / (1 + t)`` beyond the bound and ``0.5 / (1 - t)`` inside (smooth at the
    bound, ``score(-t) = 1 - score(t)``). It is 0.5 exactly on a bound (the default
    ``threshold``), rises smoothly beyond it (0.9 at one ``scale`` beyond with the default
    ``softness``, 0.99 at about 12) and falls towards 0 inside the bounds, so a threshold can be
    swept like any other detector's. It approaches 1 only slowly, so a larger excess always
    scores higher (a logistic would be exactly 1.0 from about 9 ``scale`` beyond); beyond
    ``t`` = a million it grows with the logarithm of ``t``, so no value ties at 1.0 in
    floating point (see :mod:`otel_mlmon.anomaly.base`).

    Bounds may be given (``upper``, ``lower`` or both). When neither is given they are learned
    once from the first ``warm_up`` values: ``median +- k * 1.4826 * MAD`` (the MAD-based
    standard deviation becomes ``scale``), then frozen; this is the "set it from last week's
    data and forget it" baseline, which does not follow drifts or seasonality. A constant
    warm-up learns a standard deviation of 1e-9 of the median's magnitude (1e-9 for a median of
    0): any other value is beyond the bounds, with a finite, ranked score.

    Parameters
    ----------
    upper, lower
        Bounds (finite numbers, ``lower < upper``); ``None`` for no bound on that side.
    scale
        The unit of distance beyond a bound. Default: ``(upper - lower) / 2`` with two bounds,
        ``abs(bound)`` (1.0 for a zero bound) with one, the learned standard deviation without.
    k
        Width of learned bounds in robust standard deviations (only used without bounds).
    softness
        Distance beyond a bound, in units of ``scale``, over which the score rises from 0.5 to
        0.75 (smaller = sharper).
    threshold
        Scores at or above it are anomalous.
    warm_up
        Values scored 0. Default: 0 with given bounds, 50 when bounds are learned.

    Cost: O(1) time and memory per update (the learning buffer holds ``warm_up`` values and is
    dropped once the bounds are learned).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> detector = StaticThresholdDetector(upper=250.0)       # e.g. latency in ms
    >>> scores = [detector.update(rng.gauss(120.0, 20.0)) for _ in range(100)]
    >>> max(scores) < detector.threshold
    True
    >>> round(detector.update(300.0), 3), detector.is_anomaly(detector.update(300.0))
    (0.722, True)
    >>> learned = StaticThresholdDetector()                    # bounds from the first 50 values
    >>> _ = [learned.update(rng.gauss(10.0, 1.0)) for _ in range(50)]
    >>> learned.is_anomaly(learned.update(10.5)), learned.is_anomaly(learned.update(20.0))
    (False, True)
    """

    def __init__(
        self,
        upper: float | None = None,
        lower: float | None = None,
        scale: float | None = None,
        k: float = 4.0,
        softness: float = 0.25,
        threshold: float = 0.5,
        warm_up: int | None = None,
    ) -> None:
        self.upper = None if upper is None else _number("upper", upper)
        self.lower = None if lower is None else _number("lower", lower)
        if self.upper is not None and self.lower is not None and not self.lower < self.upper:
            raise ValueError(f"lower must be < upper, got lower={lower!r}, upper={upper!r}")
        self.scale = None if scale is None else _positive("scale", scale)
        self.k = _positive("k", k)
        self.softness = _positive("softness", softness)
        learned = self.upper is None and self.lower is None
        if warm_up is None:
            warm_up = 50 if learned else 0
        elif learned:
            _count("warm_up", warm_up, 2)  # bounds are learned from at least two values
        super().__init__(threshold, warm_up)

    def _reset(self) -> None:
        self._buffer: list[float] | None = None
        upper, lower, scale = self.upper, self.lower, self.scale
        if upper is None and lower is None:
            self._buffer = []
            self._hi = self._lo = 0.0
            self._inv = 1.0
            return
        if scale is None:
            if upper is not None and lower is not None:
                scale = (upper - lower) / 2.0
            else:
                scale = abs(upper if upper is not None else lower) or 1.0  # type: ignore[arg-type]
        self._hi = math.inf if upper is None else upper
        self._lo = -math.inf if lower is None else lower
        self._inv = _inverse(scale * self.softness)

    def _learn(self) -> None:
        values = sorted(self._buffer)  # type: ignore[arg-type]
        median = _median(values)
        sigma = _MAD_TO_SIGMA * _median(sorted(abs(v - median) for v in values))
        sigma = max(sigma, _spread_floor(median))  # constant warm-up: any other value is beyond
        scale = self.scale if self.scale is not None else sigma
        self._hi = median + self.k * sigma
        self._lo = median - self.k * sigma
        self._inv = _inverse(scale * self.softness)
        self._buffer = None

    def _update(self, x: float, timestamp: float | None) -> float:
        buffer = self._buffer
        if buffer is not None:
            buffer.append(x)
            if len(buffer) >= self.warm_up:
                self._learn()
            return 0.0
        d = x - self._hi if x - self._hi > self._lo - x else self._lo - x
        t = d * self._inv
        if t >= 0.0:
            if t > _FAR:
                t = _far(t)
            return 1.0 - 0.5 / (1.0 + t)
        return 0.5 / (1.0 - t)


def _inverse(unit: float) -> float:
    """``1 / unit``, finite even if ``scale * softness`` underflowed to (nearly) 0."""
    return 1.0 / max(unit, 1e-300)


def _median(ordered: list[float]) -> float:
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
