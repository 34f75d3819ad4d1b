"""Robust location and spread: streaming median and median absolute deviation (MAD)."""

from __future__ import annotations

from otel_mlmon.anomaly.base import _FAR, Detector, _count, _far, _positive, _rate, _spread_floor

__all__ = ["MADDetector"]

_MAD_TO_SIGMA = 1.4826  # consistency constant of the MAD for a normal distribution


class MADDetector(Detector):
    """Distance of a value from a streaming median in robust standard deviations
    (``1.4826 * MAD``): ``z = |x - median| / (1.4826 * MAD)``, ``score = z / (z + k)``. The
    score is 0.5 at ``z = k`` (the default ``threshold``) and grows towards 1 with ``z`` without
    reaching it: a larger deviation always scores higher. The MAD is kept at least 1e-9 of the
    warm-up median's magnitude (1e-9 for a median of 0; it is 0 on a constant stretch, and
    could not grow again), so another value scores close to 1 but finite and ranked; beyond a
    million robust standard deviations ``z`` grows with its logarithm, so that no value ties
    at 1.0 in floating point (see :mod:`otel_mlmon.anomaly.base`).

    The median and the MAD start as the exact values over the first ``warm_up`` values, then
    follow the stream by stochastic approximation (O(1) streaming quantile estimates, in the
    manner of "frugal" quantile tracking): each value moves the median by ``rate * MAD``
    towards itself, and multiplies the MAD by ``1 + rate`` when its absolute deviation is
    above the MAD, divides it by ``1 + rate`` when below. Each value moves the estimates by a
    bounded step whatever its size, so outliers barely affect them (unlike a mean and a
    standard deviation); the memory is a few times ``1 / rate`` values. These are
    approximations of a rolling median/MAD, not exact windowed values.

    Parameters
    ----------
    rate
        Step size in (0, 1): larger follows changes faster and is noisier.
    k
        The robust ``|z|`` that scores 0.5 (the default ``threshold``).
    threshold
        Scores at or above it are anomalous.
    warm_up
        Values used for the exact initial estimates, scored 0 (>= 3); default 30.

    Cost: O(1) time and memory per update (plus a one-off O(warm_up log warm_up) at the end of
    the warm-up).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(5)
    >>> detector = MADDetector()
    >>> values = [rng.gauss(50.0, 2.0) for _ in range(500)]
    >>> values[300] = 500.0                          # one wild outlier
    >>> scores = [detector.update(v) for v in values]
    >>> detector.is_anomaly(scores[300]), sum(detector.is_anomaly(s) for s in scores) <= 3
    (True, True)
    """

    def __init__(self, rate: float = 0.05, k: float = 3.5, threshold: float = 0.5, warm_up: int = 30) -> None:
        self.rate = _rate("rate", rate)
        self.k = _positive("k", k)
        super().__init__(threshold, _count("warm_up", warm_up, 3))

    def _reset(self) -> None:
        self._buffer: list[float] | None = []
        self._median = 0.0
        self._mad = 0.0
        self._floor = 0.0

    def _update(self, x: float, timestamp: float | None) -> float:
        buffer = self._buffer
        if buffer is not None:
            buffer.append(x)
            if len(buffer) >= self.warm_up:
                ordered = sorted(buffer)
                self._median = median = _median(ordered)
                self._floor = _spread_floor(median)
                self._mad = max(_median(sorted(abs(v - median) for v in ordered)), self._floor)
                self._buffer = None
            return 0.0
        median = self._median
        mad = self._mad
        d = x - median
        ad = d if d >= 0.0 else -d
        z = ad / (_MAD_TO_SIGMA * mad)
        if z > _FAR:
            z = _far(z)
        rate = self.rate
        if d > 0.0:
            self._median = median + rate * mad
        elif d < 0.0:
            self._median = median - rate * mad
        if ad > mad:
            self._mad = mad * (1.0 + rate)
        else:
            mad /= 1.0 + rate
            self._mad = mad if mad > self._floor else self._floor
        return z / (z + self.k)


def _median(ordered: list[float]) -> float:
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
