"""1-D Wasserstein (earth mover's) distance on binned data, normalised by the reference spread."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from otel_mlmon.drift.base import NUMERIC, DriftResult, DriftStatistic, check_threshold

__all__ = ["Wasserstein", "bin_centres"]


def bin_centres(edges: Any, low: float, high: float) -> np.ndarray:
    """Centres of the bins ``[low, e0), [e0, e1), ..., [e_last, high]`` of a numeric profile."""
    inner = np.asarray(edges, dtype=np.float64).reshape(-1)
    bounds = np.concatenate(([min(low, inner[0]) if inner.size else low], inner, [max(high, inner[-1]) if inner.size else high]))
    return 0.5 * (bounds[:-1] + bounds[1:])


class Wasserstein(DriftStatistic):
    """Wasserstein-1 distance between the binned distributions, in reference standard deviations.

    Each bin is represented by its centre: the bins of a numeric profile are
    ``[min, e0), [e0, e1), ..., [e_last, max]`` with the reference minimum and maximum as the
    outer bounds, so the centres need ``edges``, ``low`` and ``high``. Then
    ``W = sum_k |F_ref(k) - F_cur(k)| * (centre_{k+1} - centre_k)``, which equals
    ``scipy.stats.wasserstein_distance(centres, centres, ref_counts, cur_counts)``.

    **Normalisation**: ``W`` is divided by ``scale`` — the reference standard deviation
    (:class:`~otel_mlmon.drift.profile.ReferenceProfile` stores it) — so the score reads "mean
    shift in standard deviations" and one threshold fits every feature. Pass ``normalise=False``
    for the raw distance in feature units. A constant reference (``scale == 0``) gives NaN.

    Values beyond the reference range fall into the outer bins, whose centres lie inside it, so
    far-out values are under-weighted (they are counted as ``out_of_range`` data-quality events).
    ``drifted`` is ``statistic >= threshold`` (default ``0.1`` standard deviations).

    >>> w = Wasserstein()
    >>> result = w([1, 1, 1, 1], [0, 1, 1, 2], edges=[1.0, 2.0, 3.0], low=0.0, high=4.0, scale=1.0)
    >>> round(result.statistic, 3), result.drifted
    (0.75, True)
    """

    name = "wasserstein"
    kinds = (NUMERIC,)

    def __init__(self, threshold: float = 0.1, *, normalise: bool = True) -> None:
        self.threshold = check_threshold("threshold", threshold)
        self.normalise = bool(normalise)

    def _compute(
        self, ref: np.ndarray, cur: np.ndarray, *, edges: Any, low: Any, high: Any, scale: Any
    ) -> DriftResult:
        if edges is None or low is None or high is None:
            raise ValueError("Wasserstein needs the bin geometry: edges, low and high")
        centres = bin_centres(edges, float(low), float(high))
        if centres.size != ref.size:
            raise ValueError(f"{ref.size} bins but {np.asarray(edges).size} interior edges")
        gaps = np.abs(np.cumsum(ref)[:-1] / ref.sum() - np.cumsum(cur)[:-1] / cur.sum())
        value = float(np.dot(gaps, np.diff(centres)))
        if self.normalise:
            if scale is None:
                raise ValueError("Wasserstein(normalise=True) needs scale (the reference standard deviation)")
            value = value / float(scale) if float(scale) > 0 else math.nan
        return DriftResult(value, math.nan, bool(value >= self.threshold))
