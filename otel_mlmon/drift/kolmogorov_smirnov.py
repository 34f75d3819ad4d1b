"""Two-sample Kolmogorov-Smirnov test on binned data."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from otel_mlmon.drift._special import kolmogorov_sf
from otel_mlmon.drift.base import NUMERIC, DriftResult, DriftStatistic, check_threshold

__all__ = ["KolmogorovSmirnov"]


class KolmogorovSmirnov(DriftStatistic):
    """Two-sample KS statistic from the binned CDFs, with its asymptotic p-value.

    ``D = max_k |F_ref(k) - F_cur(k)|`` over the bins' upper edges, where ``F`` is the
    cumulative proportion. On binned data this is the exact KS statistic of two samples whose
    values are the bins (``scipy.stats.ks_2samp`` on bin indices gives the same ``D``), and a
    lower bound of the statistic on the raw values.

    The p-value uses Smirnov's limit: ``p = Q(sqrt(n_eff) * D)`` with
    ``n_eff = n_ref * n_cur / (n_ref + n_cur)`` and ``Q`` the survival function of the Kolmogorov
    distribution (``scipy.stats.kstwobign.sf``), computed with numpy-free series. Binning and the
    asymptotic form both make the test conservative (p-values slightly too large), which is the
    safe side for alarms. (``ks_2samp(method="asymp")`` uses the finite-n ``kstwo`` law instead;
    the two agree as ``n_eff`` grows.)

    ``drifted`` is ``p_value < threshold`` (default ``0.05``); the statistic itself is the score
    exported as ``ml.drift.score``. Being a test, it is sample-size aware by construction.

    >>> ks = KolmogorovSmirnov()
    >>> result = ks([250, 250, 250, 250], [100, 200, 300, 400])
    >>> round(result.statistic, 3), result.p_value < 1e-6, result.drifted
    (0.2, True, True)
    >>> ks([25, 25, 25, 25], [24, 26, 25, 25]).drifted
    False
    """

    name = "ks"
    kinds = (NUMERIC,)

    def __init__(self, threshold: float = 0.05) -> None:
        self.threshold = check_threshold("threshold", threshold, upper=1.0)

    def _compute(self, ref: np.ndarray, cur: np.ndarray, **_: Any) -> DriftResult:
        n_ref = ref.sum()
        n_cur = cur.sum()
        cdf_gap = np.abs(np.cumsum(ref)[:-1] / n_ref - np.cumsum(cur)[:-1] / n_cur)
        d = float(cdf_gap.max()) if cdf_gap.size else 0.0
        n_eff = n_ref * n_cur / (n_ref + n_cur)
        p_value = kolmogorov_sf(math.sqrt(n_eff) * d)
        return DriftResult(d, p_value, p_value < self.threshold)
