"""Read-only, duck-typed access to tabular inputs; numpy is the only requirement.

Accepted inputs: numpy arrays (1-D = one column, 2-D), pandas-like DataFrames (``columns`` and
``iloc``), other column containers with ``columns`` (polars: each column read with
``np.asarray``), mappings ``{name: 1-D array}``, scipy sparse matrices (only the sampled rows are
densified) and anything ``np.asarray`` turns into a 1-D or 2-D array. Nothing here writes to the
input: conversions copy, slices are only read.

Feature names come from string column labels only (the scikit-learn rule); other inputs are
positional and named ``x0, x1, ...``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# Classes of dtypes compared for schema changes. int vs float is not a change (pandas turns an
# int column into float as soon as a value is missing); numeric vs string is.
NUMERIC_DTYPES = "numeric"
BOOL_DTYPES = "bool"
STRING_DTYPES = "string"
CATEGORY_DTYPES = "category"
DATETIME_DTYPES = "datetime"
OTHER_DTYPES = "other"
DTYPE_CLASSES = (NUMERIC_DTYPES, BOOL_DTYPES, STRING_DTYPES, CATEGORY_DTYPES, DATETIME_DTYPES, OTHER_DTYPES)


def dtype_class(dtype: Any) -> str:
    """Class of a numpy or pandas dtype (duck-typed on ``kind`` and ``name``)."""
    if isinstance(dtype, np.dtype):
        kind = dtype.kind
    elif getattr(dtype, "name", None) == "category":
        return CATEGORY_DTYPES
    else:
        kind = getattr(dtype, "kind", "O")
    if kind in "iuf":
        return NUMERIC_DTYPES
    if kind == "b":
        return BOOL_DTYPES
    if kind in "OUST":
        return STRING_DTYPES
    if kind in "mM":
        return DATETIME_DTYPES
    return OTHER_DTYPES


def positional_names(n: int) -> list[str]:
    return [f"x{j}" for j in range(n)]


class Table:
    """A 2-D input seen as columns. ``rows(sl)`` returns a row slice without copying data (for
    DataFrames the slice is applied lazily, together with the column selection)."""

    __slots__ = ("_data", "_mode", "_rows", "names", "n_rows", "n_cols", "dtypes")

    def __init__(self, data: Any) -> None:
        self._rows: slice | None = None
        names: list[str] | None = None
        if isinstance(data, Mapping):
            self._mode = "columns"
            cols = [np.asarray(v) for v in data.values()]
            if any(c.ndim != 1 for c in cols) or len({c.shape[0] for c in cols}) > 1:
                raise ValueError("a mapping input needs 1-D columns of equal length")
            self._data: Any = cols
            names = [str(k) for k in data.keys()]
        elif hasattr(data, "columns") and hasattr(data, "iloc"):
            self._mode = "frame"
            self._data = data
            labels = list(data.columns)
            names = [str(c) for c in labels] if labels and all(isinstance(c, str) for c in labels) else None
        elif hasattr(data, "columns") and not isinstance(data, np.ndarray):
            labels = list(data.columns)
            self._mode = "columns"
            self._data = [np.asarray(data[c]) for c in labels]
            names = [str(c) for c in labels] if labels and all(isinstance(c, str) for c in labels) else None
        elif hasattr(data, "tocsr") and hasattr(data, "shape"):
            self._mode = "sparse"
            self._data = data.tocsr()
        else:
            array = np.asarray(data)
            if array.ndim == 1:
                array = array.reshape(-1, 1)
            if array.ndim != 2:
                raise ValueError(f"expected a 1-D or 2-D input, got shape {array.shape}")
            self._mode = "array"
            self._data = array
        self.names = names
        if self._mode == "columns":
            self.n_rows = int(self._data[0].shape[0]) if self._data else 0
            self.n_cols = len(self._data)
            self.dtypes = [c.dtype for c in self._data]
        elif self._mode == "frame":
            self.n_rows, self.n_cols = (int(s) for s in self._data.shape)
            self.dtypes = list(self._data.dtypes)
        else:
            self.n_rows, self.n_cols = (int(s) for s in self._data.shape)
            self.dtypes = [self._data.dtype] * self.n_cols

    def signature(self) -> tuple[Any, ...]:
        """Hashable description of the schema (names, column count, dtypes)."""
        if self._mode == "array":
            return ("array", self.n_cols, self._data.dtype.str)
        return (self._mode, self.n_cols, None if self.names is None else tuple(self.names),
                tuple(d if isinstance(d, np.dtype) else str(d) for d in self.dtypes))  # fmt: skip

    def rows(self, sl: slice) -> Table:
        new = Table.__new__(Table)
        new._mode, new.names, new.n_cols, new.dtypes = self._mode, self.names, self.n_cols, self.dtypes
        new._rows = None
        if self._mode == "columns":
            new._data = [c[sl] for c in self._data]
        elif self._mode == "frame":
            new._data = self._data
            new._rows = sl if self._rows is None else _compose(self._rows, sl, self.n_rows)
        elif self._mode == "sparse":
            new._data, new._mode = np.asarray(self._data[sl].toarray()), "array"
        else:
            new._data = self._data[sl]
        new.n_rows = len(range(*sl.indices(self.n_rows)))
        return new

    def column(self, j: int) -> np.ndarray:
        """Column ``j`` as a 1-D numpy array (possibly a view: never write to it)."""
        if self._mode == "columns":
            return self._data[j]
        if self._mode == "frame":
            rows = self._rows if self._rows is not None else slice(None)
            return np.asarray(self._data.iloc[rows, j].to_numpy())
        if self._mode == "sparse":
            return np.asarray(self._data[:, j].toarray()).reshape(-1)
        return self._data[:, j]

    def float_block(self, idx: list[int], numeric: bool | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Columns ``idx`` as a float64 (rows x len(idx)) array and a mask of values that were
        missing (None / NA) rather than NaN, or None when there are none. May be a view.
        ``numeric``: whether those columns all have numeric dtypes, if the caller knows."""
        every = len(idx) == self.n_cols and idx == list(range(self.n_cols))
        if self._mode == "array" and self._data.dtype.kind in "iufb":
            block = self._data if every else self._data[:, idx]
            return block.astype(np.float64, copy=False), None
        if numeric is None:
            numeric = all(dtype_class(self.dtypes[j]) == NUMERIC_DTYPES for j in idx)
        if self._mode == "frame" and numeric:
            rows = self._rows if self._rows is not None else slice(None)
            try:
                sub = self._data.iloc[rows, idx] if not every else (self._data.iloc[rows] if self._rows is not None else self._data)
                return np.asarray(sub.to_numpy(dtype=np.float64, na_value=np.nan)), None
            except (TypeError, ValueError):
                pass
        out = np.empty((self.n_rows, len(idx)), dtype=np.float64)
        missing = None
        for k, j in enumerate(idx):
            values, miss = to_float(self.column(j))
            out[:, k] = values
            if miss is not None and miss.any():
                if missing is None:
                    missing = np.zeros(out.shape, dtype=bool)
                missing[:, k] = miss
        return out, missing


def _compose(first: slice, second: slice, n: int) -> slice:
    """The slice equal to ``[first][second]`` on a sequence of length ``n`` (positive steps)."""
    r = range(*first.indices(n))[second]
    return slice(r.start, r.stop, r.step)


# --------------------------------------------------------------------------- scalar conversions
def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT
    except (TypeError, ValueError):
        return True  # pandas.NA: its truth value is ambiguous


_missing_ufunc = np.frompyfunc(_is_missing, 1, 1)


def _is_absent(value: Any) -> bool:
    """Missing but not a float NaN (which numeric columns count as ``nan``)."""
    return not isinstance(value, (float, np.floating)) and _is_missing(value)


_absent_ufunc = np.frompyfunc(_is_absent, 1, 1)


def missing_mask(values: np.ndarray) -> np.ndarray:
    """True where an object/str value is missing: None, NaN, NaT, pandas.NA."""
    if values.dtype.kind == "O":
        return _missing_ufunc(values).astype(bool) if values.size else np.zeros(0, dtype=bool)
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind in "mM":
        return np.isnat(values)
    return np.zeros(values.shape, dtype=bool)


def _float_or_nan(value: Any) -> float:
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


_float_ufunc = np.frompyfunc(_float_or_nan, 1, 1)


def to_float(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A column as float64 plus the mask of *missing* values (None, pandas.NA, NaT) — a float NaN
    stays NaN and is not missing. Values that cannot be converted (e.g. text) become NaN too."""
    kind = values.dtype.kind
    if kind in "iufb":
        return values.astype(np.float64, copy=False), None
    if kind in "mM":
        missing = np.isnat(values)
        return np.where(missing, np.nan, values.astype("datetime64[ns]").astype(np.int64) / 1e9), missing
    obj = values.astype(object, copy=False)
    missing = _absent_ufunc(obj).astype(bool) if kind == "O" and obj.size else np.zeros(values.shape, dtype=bool)
    try:
        converted = obj.astype(np.float64)
    except (TypeError, ValueError):
        converted = _float_ufunc(obj).astype(np.float64) if obj.size else np.zeros(0)
    if missing.any():
        converted[missing] = np.nan
    return converted, missing


def _key_of(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _float_key(float(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _float_key(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 2**63 else repr(value)


_key_ufunc = np.frompyfunc(_key_of, 1, 1)


def category_keys(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """String keys of categorical values and the mask of missing values.

    Keys are the same for equal values of different types: ``1``, ``1.0`` and ``np.int64(1)``
    are all ``"1"``; booleans are ``"True"``/``"False"``; text is itself. Missing values (None,
    NaN, NaT, pandas.NA) get the key ``""`` and are flagged in the mask.
    """
    kind = values.dtype.kind
    if kind == "b":
        return np.where(values, "True", "False").astype(object), np.zeros(values.shape, dtype=bool)
    if kind in "iu":
        return values.astype(str).astype(object), np.zeros(values.shape, dtype=bool)
    if kind == "U":
        return values.astype(object), np.zeros(values.shape, dtype=bool)
    if kind == "f":
        missing = np.isnan(values)
        keys = np.empty(values.shape, dtype=object)
        keys[:] = [_float_key(v) if not m else "" for v, m in zip(values.tolist(), missing.tolist())]
        return keys, missing
    if kind in "mM":
        missing = np.isnat(values)
        keys = values.astype(str).astype(object)
        keys[missing] = ""
        return keys, missing
    obj = values.astype(object, copy=False)
    missing = missing_mask(obj) if kind == "O" else np.zeros(values.shape, dtype=bool)
    keys = _key_ufunc(obj) if obj.size else np.zeros(0, dtype=object)
    keys = np.asarray(keys, dtype=object)
    if missing.any():
        keys[missing] = ""
    return keys, missing


def count_categories(values: np.ndarray) -> tuple[list[str], np.ndarray, int]:
    """Distinct category keys of a column with their counts, and the number of missing values.

    Counts the raw values first (``np.unique``) and converts only the distinct ones to keys, so
    integer, boolean and string columns never build one Python string per row."""
    kind = values.dtype.kind
    if kind in "iubUS":
        present, n_missing = values, 0
    else:
        if kind == "f":
            missing = np.isnan(values)
        elif kind in "mM":
            missing = np.isnat(values)
        else:
            values = values.astype(object, copy=False)
            missing = missing_mask(values)
        n_missing = int(missing.sum())
        present = values[~missing] if n_missing else values
    if present.size == 0:
        return [], np.zeros(0, dtype=np.int64), n_missing
    try:
        unique, counts = np.unique(present, return_counts=True)
    except TypeError:  # mixed Python types in an object column: key every value
        unique, counts = np.unique(category_keys(present)[0].astype(str), return_counts=True)
    keys = category_keys(unique)[0].tolist()
    if len(set(keys)) != len(keys):  # e.g. 1 and 1.0 and "1" in one object column
        merged: dict[str, int] = {}
        for key, count in zip(keys, counts.tolist()):
            merged[key] = merged.get(key, 0) + count
        keys, counts = list(merged), np.fromiter(merged.values(), dtype=np.int64, count=len(merged))
    return keys, counts.astype(np.int64, copy=False), n_missing


def looks_numeric(values: np.ndarray, sample: int = 1000) -> bool:
    """Whether an object column holds numbers only (bools excluded), judged on a sample."""
    if values.dtype.kind != "O":
        return values.dtype.kind in "iuf"
    seen = False
    for value in values[:sample].tolist():
        if _is_missing(value):
            continue
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            return False
        seen = True
    return seen
