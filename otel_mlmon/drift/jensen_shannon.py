"""Jensen-Shannon distance."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from otel_mlmon.drift.base import CATEGORICAL, NUMERIC, DriftResult, DriftStatistic, check_threshold

__all__ = ["JensenShannon"]


class JensenShannon(DriftStatistic):
    """Jensen-Shannon *distance* between the reference and current proportions.

    ``JS = sqrt((KL(p || m) + KL(q || m)) / 2)`` with ``m = (p + q) / 2`` — the square root of
    the Jensen-Shannon divergence, as ``scipy.spatial.distance.jensenshannon``. With the default
    ``base=2`` the logarithms are base 2 and the distance lies in ``[0, 1]`` (1 = disjoint
    supports); ``base=math.e`` gives natural logarithms and a maximum of ``sqrt(ln 2) ~ 0.833``.

    No smoothing is needed: empty bins contribute ``0 * log 0 = 0`` and the distance is always
    finite. ``drifted`` is ``statistic >= threshold`` (default ``0.1``, base 2).

    >>> js = JensenShannon()
    >>> round(js([25, 25, 25, 25], [10, 20, 30, 40]).statistic, 4)
    0.2005
    >>> js([1, 0], [0, 1]).statistic
    1.0
    """

    name = "jensen_shannon"
    kinds = (NUMERIC, CATEGORICAL)

    def __init__(self, threshold: float = 0.1, *, base: float = 2.0) -> None:
        self.threshold = check_threshold("threshold", threshold)
        if isinstance(base, bool) or not isinstance(base, (int, float)) or not base > 1:
            raise ValueError(f"base must be a number > 1, got {base!r}")
        self.base = float(base)

    def _compute(self, ref: np.ndarray, cur: np.ndarray, **_: Any) -> DriftResult:
        p = ref / ref.sum()
        q = cur / cur.sum()
        m = 0.5 * (p + q)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
            kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
        divergence = max(0.0, 0.5 * float(kl_p + kl_q)) / math.log(self.base)
        value = math.sqrt(divergence)
        return DriftResult(value, math.nan, value >= self.threshold)
