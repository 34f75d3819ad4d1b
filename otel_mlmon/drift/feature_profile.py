"""The reference distribution of one feature in a profile (:class:`FeatureProfile`, read-only);
see :mod:`otel_mlmon.drift.profile` for what a profile holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from otel_mlmon.drift.base import NUMERIC

DEFAULT_TOP_K = 20


def frozen_array(values: Any, dtype: Any) -> np.ndarray:
    array = np.array(values, dtype=dtype)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class FeatureProfile:
    """Reference distribution of one feature (or of ``_output`` / ``_target``). Read-only.

    ``bins`` is the number of drift bins and :attr:`bin_counts` the reference counts over them:
    numeric — ``len(edges) + 1`` quantile bins ``(-inf, e0), [e0, e1), ..., [e_last, inf)``;
    categorical — one bin per :attr:`top` value, then "other".
    """

    name: str
    kind: str
    dtype: str
    dtype_class: str
    rows: int
    count: int
    missing: int
    nan: int = 0
    inf: int = 0
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    std: float | None = None
    edges: np.ndarray = field(default_factory=lambda: frozen_array([], np.float64))
    counts: np.ndarray = field(default_factory=lambda: frozen_array([], np.int64))
    sketch: dict[str, Any] | None = None
    values: tuple[str, ...] = ()
    other: int = 0
    complete: bool = True
    top_k: int = DEFAULT_TOP_K

    @property
    def n_bins(self) -> int:
        return int(self.edges.size + 1) if self.kind == NUMERIC else min(self.top_k, len(self.values)) + 1

    @property
    def top(self) -> tuple[str, ...]:
        """Categorical: the values that have a bin of their own, by decreasing frequency."""
        return self.values[: self.top_k]

    @property
    def bin_counts(self) -> np.ndarray:
        """Reference counts over the drift bins."""
        if self.kind == NUMERIC:
            return self.counts
        k = min(self.top_k, len(self.values))
        head = self.counts[:k]
        return np.concatenate((head, [self.count - int(head.sum())])).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "dtype": self.dtype,
                               "dtype_class": self.dtype_class, "rows": self.rows, "count": self.count,
                               "missing": self.missing}  # fmt: skip
        if self.kind == NUMERIC:
            out.update(nan=self.nan, inf=self.inf, min=self.minimum, max=self.maximum, mean=self.mean,
                       std=self.std, edges=self.edges.tolist(), counts=self.counts.tolist(), sketch=self.sketch)  # fmt: skip
        else:
            out.update(values=list(self.values), counts=self.counts.tolist(), other=self.other, complete=self.complete)
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureProfile) and self.to_dict() == other.to_dict() and self.top_k == other.top_k

    __hash__ = None  # type: ignore[assignment]
