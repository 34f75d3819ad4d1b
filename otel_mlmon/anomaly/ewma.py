"""Exponentially weighted mean and standard deviation: a dynamic ``mean +- k * sigma`` band."""

from __future__ import annotations

from otel_mlmon.anomaly.base import _FAR, _SPREAD_FLOOR, Detector, _count, _far, _positive, _rate

__all__ = ["EWMADetector"]


class EWMADetector(Detector):
    """Distance of a value from the exponentially weighted moving average (EWMA), in
    exponentially weighted standard deviations: ``z = |x - mean| / sigma``,
    ``score = z / (z + k)``; the band ``mean +- k * sigma`` scores 0.5 (the default
    ``threshold``). The score grows towards 1 with ``z`` without reaching it: a larger
    deviation always scores higher. ``sigma`` is taken as at least 1e-9 of ``|mean|`` (1e-9 for
    a mean of 0), so after a constant stretch another value scores close to 1 but finite and
    ranked; beyond a million standard deviations ``z`` grows with its logarithm, so that no
    value ties at 1.0 in floating point (see :mod:`otel_mlmon.anomaly.base`).

    A value is scored against the statistics before it, then learned with weight ``alpha``
    (incremental EW mean and variance, Finch 2009). The memory is about ``1 / alpha`` values,
    so the band follows level shifts and drifts; outliers enter the statistics unclipped.

    Parameters
    ----------
    alpha
        Weight of the newest value, in (0, 1).
    k
        Half-width of the band in standard deviations (scores 0.5).
    threshold
        Scores at or above it are anomalous.
    warm_up
        Values scored 0 while the variance settles; default 30.

    Cost: O(1) time and memory per update.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(3)
    >>> detector = EWMADetector(alpha=0.05)
    >>> scores = [detector.update(rng.gauss(100.0, 5.0)) for _ in range(300)]
    >>> sum(detector.is_anomaly(s) for s in scores) <= 3
    True
    >>> detector.is_anomaly(detector.update(140.0))
    True
    """

    def __init__(self, alpha: float = 0.05, k: float = 3.0, threshold: float = 0.5, warm_up: int = 30) -> None:
        self.alpha = _rate("alpha", alpha)
        self.k = _positive("k", k)
        super().__init__(threshold, _count("warm_up", warm_up, 0))

    def _reset(self) -> None:
        self._mean: float | None = None
        self._var = 0.0

    def _update(self, x: float, timestamp: float | None) -> float:
        mean = self._mean
        if mean is None:
            self._mean = x
            return 0.0
        var = self._var
        d = x - mean
        sigma = var**0.5
        floor = _SPREAD_FLOOR * (mean if mean > 0.0 else -mean) or _SPREAD_FLOOR
        z = (d if d > 0.0 else -d) / (sigma if sigma > floor else floor)  # constant: far, finite
        if z > _FAR:
            z = _far(z)
        increment = self.alpha * d
        self._mean = mean + increment
        self._var = (1.0 - self.alpha) * (var + d * increment)
        return z / (z + self.k)
