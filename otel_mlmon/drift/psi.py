"""Population stability index (PSI)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from otel_mlmon.drift.base import CATEGORICAL, NUMERIC, DriftResult, DriftStatistic, check_threshold

__all__ = ["PSI"]


class PSI(DriftStatistic):
    """Population stability index of the current histogram against the reference.

    ``PSI = sum_i (c_i - r_i) * ln(c_i / r_i)`` over the bins, with ``r_i`` and ``c_i`` the
    reference and current *proportions*. It is the symmetrised Kullback-Leibler divergence
    (Jeffreys' J), 0 for identical histograms, unbounded above.

    **Empty bins** would make the logarithm infinite: a proportion of exactly 0 is replaced by
    ``eps`` (default ``1e-4``, not renormalised), so one empty bin adds at most about
    ``r ln(r / eps)``. A bin empty on both sides contributes 0.

    **Threshold**: the usual bands are ``< 0.1`` no significant change, ``0.1 - 0.25`` moderate,
    ``>= 0.25`` significant. ``drifted`` is ``statistic >= threshold`` (default ``0.1``, the
    start of the "moderate" band). PSI is biased upwards in small windows (about
    ``(bins - 1) / n`` under no drift), so :class:`~otel_mlmon.drift.monitor.DriftMonitor` also
    requires a significant KS or chi-square p-value before it calls a feature drifted.

    >>> psi = PSI()
    >>> result = psi([25, 25, 25, 25], [10, 20, 30, 40])
    >>> round(result.statistic, 4), result.drifted
    (0.2282, True)
    >>> psi([25, 25, 25, 25], [26, 24, 25, 25]).drifted
    False
    """

    name = "psi"
    kinds = (NUMERIC, CATEGORICAL)

    def __init__(self, threshold: float = 0.1, *, eps: float = 1e-4) -> None:
        self.threshold = check_threshold("threshold", threshold)
        self.eps = check_threshold("eps", eps, upper=1.0)

    def _compute(self, ref: np.ndarray, cur: np.ndarray, **_: Any) -> DriftResult:
        p = ref / ref.sum()
        q = cur / cur.sum()
        both_empty = (p == 0) & (q == 0)
        p = np.where(p == 0, self.eps, p)
        q = np.where(q == 0, self.eps, q)
        terms = np.where(both_empty, 0.0, (q - p) * np.log(q / p))
        value = float(terms.sum())
        return DriftResult(value, math.nan, value >= self.threshold)
