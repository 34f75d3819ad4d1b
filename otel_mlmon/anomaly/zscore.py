"""Rolling z-score over a fixed window of recent values."""

from __future__ import annotations

from otel_mlmon.anomaly.base import _FAR, _SPREAD_FLOOR, Detector, _count, _far, _positive

__all__ = ["ZScoreDetector"]


class ZScoreDetector(Detector):
    """Distance of a value from the mean of the last ``window`` values, in their standard
    deviations: ``z = |x - mean| / std``, ``score = z / (z + k)``.

    The score is 0.5 at ``|z| = k`` (the default ``threshold``), 0.25 at ``k / 3`` and grows
    towards 1 with ``z`` without reaching it: a larger deviation always scores higher. The
    standard deviation is taken as at least 1e-9 of ``|mean|`` (1e-9 for a mean of 0), so after a
    constant window another value scores close to 1 but finite and ranked; beyond a million
    standard deviations ``z`` grows with its logarithm, so that no value ties at 1.0 in floating
    point (see :mod:`otel_mlmon.anomaly.base`).

    A value is scored against the window *before* it enters it. The mean and variance are kept
    by the sliding-window form of Welford's update over a ring buffer and recomputed exactly
    each time the ring wraps, so rounding errors cannot accumulate.

    Parameters
    ----------
    window
        Number of recent values (>= 2).
    k
        The ``|z|`` that scores 0.5.
    threshold
        Scores at or above it are anomalous.
    warm_up
        Values scored 0; default ``window`` (the first full window).

    Cost: O(1) time per update (amortised: an O(window) exact recomputation once every
    ``window`` updates) and O(window) memory.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> detector = ZScoreDetector(window=50)
    >>> scores = [detector.update(rng.gauss(0.0, 1.0)) for _ in range(200)]
    >>> scores[:50] == [0.0] * 50                              # warm-up
    True
    >>> sum(detector.is_anomaly(s) for s in scores) <= 2
    True
    >>> detector.is_anomaly(detector.update(6.0))
    True
    """

    def __init__(self, window: int = 100, k: float = 3.0, threshold: float = 0.5, warm_up: int | None = None) -> None:
        self.window = _count("window", window, 2)
        self.k = _positive("k", k)
        super().__init__(threshold, window if warm_up is None else warm_up)

    def _reset(self) -> None:
        self._values: list[float] = []
        self._index = 0
        self._mean = 0.0
        self._m2 = 0.0

    def _update(self, x: float, timestamp: float | None) -> float:
        values = self._values
        n = len(values)
        mean = self._mean
        if n > 1:
            d = x - mean if x > mean else mean - x
            sd = (self._m2 / (n - 1)) ** 0.5
            floor = _SPREAD_FLOOR * (mean if mean > 0.0 else -mean) or _SPREAD_FLOOR
            z = d / (sd if sd > floor else floor)  # a constant window: far, but finite
            if z > _FAR:
                z = _far(z)
            score = z / (z + self.k)
        else:
            score = 0.0
        if n < self.window:  # filling: ordinary Welford
            values.append(x)
            n += 1
            delta = x - mean
            mean += delta / n
            self._m2 += delta * (x - mean)
            self._mean = mean
            return score
        i = self._index
        old = values[i]
        values[i] = x
        new_mean = mean + (x - old) / n
        m2 = self._m2 + (x - old) * (x - new_mean + old - mean)
        self._mean = new_mean
        self._m2 = m2 if m2 > 0.0 else 0.0
        i += 1
        if i == n:  # the ring wraps: exact recomputation
            i = 0
            new_mean = sum(values) / n
            self._mean = new_mean
            self._m2 = sum((v - new_mean) ** 2 for v in values)
        self._index = i
        return score
