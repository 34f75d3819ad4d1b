"""Pearson chi-square test of a categorical histogram against the reference."""

from __future__ import annotations

from typing import Any

import numpy as np

from otel_mlmon.drift._special import chi2_sf
from otel_mlmon.drift.base import CATEGORICAL, DriftResult, DriftStatistic, check_threshold

__all__ = ["ChiSquare"]


class ChiSquare(DriftStatistic):
    """Pearson chi-square statistic and p-value of the current counts against the reference.

    Two forms (``two_sample``):

    * ``True`` (default) — test of homogeneity of the 2 x bins table (reference row, current
      row): expected counts ``row_total * column_total / total``; bins empty on both sides are
      dropped; ``df = bins_used - 1``. Equals
      ``scipy.stats.chi2_contingency(table, correction=False)``. Accounts for the sampling noise
      of a finite reference.
    * ``False`` — goodness of fit to the reference proportions, the reference taken as exact:
      expected ``n_cur * p_i``. Empty reference bins would make the statistic infinite, so a
      zero proportion is replaced by ``eps`` (default ``1e-4``) and the proportions are
      renormalised; ``df = bins - 1``. Equals ``scipy.stats.chisquare(cur, n_cur * p)``.

    The p-value is ``chi2.sf(statistic, df)`` from a numpy-free regularised incomplete gamma
    function. ``drifted`` is ``p_value < threshold`` (default ``0.05``). The score exported by
    the monitor is the statistic divided by the window size (Cramer-style, comparable across
    window sizes).

    >>> chi = ChiSquare()
    >>> result = chi([500, 300, 200], [45, 30, 25])
    >>> round(result.statistic, 3), round(result.p_value, 4), result.drifted
    (1.57, 0.4562, False)
    >>> chi([500, 300, 200], [20, 30, 50]).drifted
    True
    """

    name = "chi_square"
    kinds = (CATEGORICAL,)

    def __init__(self, threshold: float = 0.05, *, two_sample: bool = True, eps: float = 1e-4) -> None:
        self.threshold = check_threshold("threshold", threshold, upper=1.0)
        self.two_sample = bool(two_sample)
        self.eps = check_threshold("eps", eps, upper=1.0)

    def _compute(self, ref: np.ndarray, cur: np.ndarray, **_: Any) -> DriftResult:
        if self.two_sample:
            used = (ref + cur) > 0
            ref, cur = ref[used], cur[used]
            column = ref + cur
            total = column.sum()
            expected_ref = column * (ref.sum() / total)
            expected_cur = column * (cur.sum() / total)
            value = float(((ref - expected_ref) ** 2 / expected_ref).sum() + ((cur - expected_cur) ** 2 / expected_cur).sum())
        else:
            p = ref / ref.sum()
            p = np.where(p == 0, self.eps, p)
            expected_cur = cur.sum() * (p / p.sum())
            value = float(((cur - expected_cur) ** 2 / expected_cur).sum())
        df = ref.size - 1
        p_value = chi2_sf(value, df) if df > 0 else 1.0
        return DriftResult(value, p_value, p_value < self.threshold)
