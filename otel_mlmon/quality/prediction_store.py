"""The interface of the pending-prediction stores, and how a call's outputs become stored rows.

What the stores keep, their bounds and their transactions: see :mod:`otel_mlmon.quality.store`.
The two implementations: :mod:`~otel_mlmon.quality.memory_store`,
:mod:`~otel_mlmon.quality.sqlite_store`.
"""

from __future__ import annotations

import os
import time
from itertools import repeat
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import numpy as np

from otel_mlmon.quality.ids import IdBlock, normalize_ids

__all__ = [
    "DEFAULT_EVICT_BATCH",
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_MAX_JOINED",
    "DEFAULT_TTL_S",
    "Batch",
    "ModelKey",
    "PredictionStore",
    "StoredPrediction",
    "TakeResult",
    "default_path",
    "model_key_of",
]

DEFAULT_MAX_ENTRIES = 1_000_000
DEFAULT_TTL_S = 7 * 86400.0
DEFAULT_MAX_JOINED = 100_000
DEFAULT_EVICT_BATCH = 10_000

ModelKey = tuple  # (name: str, version: str | None)


def model_key_of(model: Any) -> ModelKey:
    """``"name"``, ``("name", "version")`` or ``("name", None)`` as ``(str, str | None)``."""
    if isinstance(model, str):
        return (model, None)
    if isinstance(model, tuple) and len(model) == 2 and isinstance(model[0], str):
        version = model[1]
        if version is not None and not isinstance(version, str):
            raise ValueError(f"model version must be a str or None, got {version!r}")
        return (model[0], version)
    raise ValueError(f"model must be a name or a (name, version) tuple, got {model!r}")


def default_path() -> str:
    """``$XDG_CACHE_HOME/otel-mlmon/predictions.sqlite`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "otel-mlmon", "predictions.sqlite")


class StoredPrediction(NamedTuple):
    id: str
    model_key: ModelKey
    timestamp: float
    y_pred: Any  # predicted label or value (None when only probabilities were recorded)
    proba: np.ndarray | None  # probability vector of the row (float64), or None
    score: float | None  # binary decision score, or None


class TakeResult(NamedTuple):
    """Outcome of :meth:`PredictionStore.take_many`, by position in the ids given."""

    joined: list[tuple[int, StoredPrediction]]  # removed from the store
    unknown: list[int]  # never stored, evicted or expired
    duplicate: list[tuple[int, ModelKey]]  # already joined (recently), once per model
    rejected: list[tuple[int, StoredPrediction]]  # refused by ``accept``: still stored


def _y_values(y_pred: Any, n: int) -> list[Any]:
    if y_pred is None:
        return [None] * n
    array = np.asarray(y_pred)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.shape != (n,):
        raise ValueError(f"y_pred must have {n} rows, got shape {array.shape}")
    values = array.tolist()
    if array.dtype.kind in "OuV":  # objects, or uint64 beyond SQLite's int64
        values = [_scalar(v) for v in values]
    return values


def _scalar(value: Any) -> Any:
    if value is None or type(value) in (str, float, bool):
        return value
    if type(value) is int:
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, np.generic):
        return _scalar(value.item())
    return str(value)


def _proba_blobs(proba: Any, n: int) -> list[bytes | None]:
    if proba is None:
        return [None] * n
    array = np.ascontiguousarray(proba, dtype="<f8")
    if array.ndim != 2 or array.shape[0] != n:
        raise ValueError(f"proba must have shape ({n}, n_classes), got {array.shape}")
    data, k = array.tobytes(), 8 * array.shape[1]
    return [data[i * k : (i + 1) * k] for i in range(n)]


def _scores(scores: Any, n: int) -> list[float | None]:
    if scores is None:
        return [None] * n
    array = np.asarray(scores, dtype=float)
    if array.shape != (n,):
        raise ValueError(f"scores must have shape ({n},), got {array.shape}")
    return array.tolist()


def _timestamps(timestamp: Any, n: int) -> Iterable[float]:
    if timestamp is None:
        return repeat(time.time(), n)
    if np.ndim(timestamp) == 0:
        return repeat(float(timestamp), n)
    array = np.asarray(timestamp, dtype=float)
    if array.shape != (n,):
        raise ValueError(f"timestamp must be a number or have shape ({n},), got {array.shape}")
    return array.tolist()


def decode(blob: Any) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype="<f8")


class Batch(NamedTuple):
    """One :meth:`PredictionStore.put_many` call's arguments, for :meth:`put_batches`."""

    model_key: ModelKey
    ids: Any
    y_pred: Any = None
    proba: Any = None
    scores: Any = None
    timestamp: Any = None


def rows_of(batch: Batch) -> tuple[list[str], list, list, list, Iterable[float]]:
    ids = batch.ids.tolist() if isinstance(batch.ids, IdBlock) else normalize_ids(batch.ids)
    n = len(ids)
    return (ids, _y_values(batch.y_pred, n), _proba_blobs(batch.proba, n), _scores(batch.scores, n),
            _timestamps(batch.timestamp, n))  # fmt: skip


class PredictionStore:
    """Interface of the stores. Every method is thread-safe."""

    max_entries: int
    ttl_s: float
    max_joined: int

    def __init__(self, max_entries: int, ttl_s: float, max_joined: int, evict_batch: int) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be an int >= 1, got {max_entries!r}")
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float)) or not ttl_s > 0:
            raise ValueError(f"ttl_s must be a positive number, got {ttl_s!r}")
        if isinstance(max_joined, bool) or not isinstance(max_joined, int) or max_joined < 0:
            raise ValueError(f"max_joined must be an int >= 0, got {max_joined!r}")
        if isinstance(evict_batch, bool) or not isinstance(evict_batch, int) or evict_batch < 1:
            raise ValueError(f"evict_batch must be an int >= 1, got {evict_batch!r}")
        self.max_entries = max_entries
        self.ttl_s = float(ttl_s)
        self.max_joined = max_joined
        self.evict_batch = evict_batch

    def put_many(self, model_key: ModelKey, ids: Any, y_pred: Any = None, proba: Any = None,
                 scores: Any = None, timestamp: Any = None) -> int:  # fmt: skip
        """Store one call's rows; returns how many new rows were added.

        ``y_pred`` (labels or values), ``proba`` (n, classes) and ``scores`` (n,) are each
        optional and per row. A row whose ``(id, model)`` is already pending is merged: a
        ``predict`` and a ``predict_proba`` of the same ids give one row with both (a value
        given again replaces the stored one; the first timestamp is kept).
        """
        return self.put_batches([Batch(model_key, ids, y_pred, proba, scores, timestamp)])

    def put_batches(self, batches: Sequence[Batch]) -> int:
        """Several :meth:`put_many` calls in one transaction; returns the new rows."""
        raise NotImplementedError

    def take_many(self, ids: Any, model_key: ModelKey | None = None,
                  accept: Callable[[int, StoredPrediction], bool] | None = None) -> TakeResult:  # fmt: skip
        """Join: remove and return the pending rows of ``ids`` (all models, or ``model_key``'s).

        ``accept(position, prediction)`` may refuse a row (a label invalid for its model); a
        refused row stays stored. Positions whose id is pending nowhere are ``duplicate`` if
        the id was joined recently (also earlier in the same ``ids``), else ``unknown``.
        """
        raise NotImplementedError

    def pending(self) -> int:
        """Rows stored and waiting for a label."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self.pending()

    def evict_expired(self, now: float | None = None, limit: int | None = None) -> int:
        """Delete rows older than ``ttl_s`` (at most about ``limit``); returns how many."""
        raise NotImplementedError

    def set_model_info(self, model_key: ModelKey, info: dict[str, Any]) -> None:
        """Persist what the hub needs to judge a label for this model (JSON-able dict)."""
        raise NotImplementedError

    def model_infos(self) -> dict[ModelKey, dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Idempotent."""

    def _take_arguments(self, ids: Any, model_key: ModelKey | None,
                        accept: Callable[[int, StoredPrediction], bool] | None) -> tuple:  # fmt: skip
        """``take_many``'s arguments, normalised: ids as text, the accept callback, the model."""
        return normalize_ids(ids), accept or self._accept_all, None if model_key is None else model_key_of(model_key)

    def _accept_all(self, position: int, prediction: StoredPrediction) -> bool:
        return True


def truncate(rows: list, limit: int) -> list:
    return rows[-limit:] if len(rows) > limit else rows
