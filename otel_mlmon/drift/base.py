"""The interface every otel-mlmon drift statistic implements.

A drift statistic compares two histograms over the *same* bins — the reference profile's counts
and the current window's counts — and answers how different they are::

    result = statistic(reference_counts, current_counts, edges=..., low=..., high=..., scale=...)
    result.statistic    # float, 0 = identical, higher = more drift
    result.p_value      # float in [0, 1] for statistics that are a test, NaN otherwise
    result.drifted      # the statistic's verdict with its own default threshold

* Inputs are 1-D arrays of non-negative finite counts of equal length (the bins). Numeric
  features have ``len(edges) + 1`` quantile bins; categorical features have one bin per
  top-K category plus an "other" bin. Counts need not be integers (the monitor passes ints).
* The keyword geometry (``edges`` = interior bin edges, ``low``/``high`` = the reference minimum
  and maximum, ``scale`` = the reference standard deviation) is used only by statistics that
  need positions (Wasserstein); the others ignore it.
* An empty histogram on either side gives ``DriftResult(nan, nan, False)``: no data, no verdict.
* Statistics are stateless, cheap (O(bins)), pickle, and never modify their inputs.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, NamedTuple

import numpy as np

__all__ = ["DriftResult", "DriftStatistic", "NUMERIC", "CATEGORICAL"]

NUMERIC = "numeric"
CATEGORICAL = "categorical"


class DriftResult(NamedTuple):
    """Outcome of one drift statistic on one feature."""

    statistic: float
    p_value: float
    drifted: bool


NO_DATA = DriftResult(math.nan, math.nan, False)


def check_counts(reference: Any, current: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both histograms as float64 arrays, validated (``ValueError`` on misuse)."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.ndim != 1 or cur.ndim != 1 or ref.shape != cur.shape or ref.size == 0:
        raise ValueError(
            f"reference and current must be 1-D counts over the same bins, got shapes {ref.shape} and {cur.shape}"
        )
    if not (np.isfinite(ref).all() and np.isfinite(cur).all()) or (ref < 0).any() or (cur < 0).any():
        raise ValueError("counts must be finite and non-negative")
    return ref, cur


def check_threshold(name: str, value: Any, *, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if upper is not None and not value < upper:
        raise ValueError(f"{name} must be below {upper}, got {value!r}")
    return float(value)


class DriftStatistic(ABC):
    """Base class: compare reference and current counts over the same bins.

    Subclasses set ``name`` (the ``ml.drift.method`` attribute value), ``kinds`` (the feature
    kinds they apply to) and implement ``_compute`` on validated, non-empty histograms.
    """

    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    threshold: float

    def __call__(
        self,
        reference: Any,
        current: Any,
        *,
        edges: Any = None,
        low: float | None = None,
        high: float | None = None,
        scale: float | None = None,
    ) -> DriftResult:
        ref, cur = check_counts(reference, current)
        if ref.sum() <= 0 or cur.sum() <= 0:
            return NO_DATA
        return self._compute(ref, cur, edges=edges, low=low, high=high, scale=scale)

    @abstractmethod
    def _compute(
        self, ref: np.ndarray, cur: np.ndarray, *, edges: Any, low: Any, high: Any, scale: Any
    ) -> DriftResult:
        """The result for two non-empty validated histograms."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"
