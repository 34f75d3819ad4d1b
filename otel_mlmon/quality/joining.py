"""Ground truth joined to stored predictions: :meth:`QualityHub.record_ground_truth`.

Bad input to :meth:`QualityHub.record_ground_truth`:

* ``ValueError``, nothing changed: ``ids`` not a 1-D sequence (a str, a scalar, a 2-D array);
  ``y_true`` not 1-D; ``ids`` and ``y_true`` of different lengths; ``timestamp`` neither a
  finite number nor one per id; ``model`` neither a name nor a ``(name, version)`` tuple.
* counted ``unknown_id``: an id never stored, evicted (bound) or expired (TTL).
* counted ``duplicate`` (once per model that predicted it): an id joined recently, or earlier
  in the same call.
* counted ``invalid``, the prediction stays pending so that a corrected label can still join:
  a label that does not fit its model, i.e. a class not among a classifier's classes (``"1"``
  for classes ``[0, 1]``), an unhashable value or NaN for a classifier; anything but a finite
  number (str, bool, None, NaN, inf) for a regressor.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np

from otel_mlmon.quality.ids import normalize_ids
from otel_mlmon.quality.model_quality import CLASSIFICATION, REGRESSION, ModelQuality
from otel_mlmon.quality.outcomes import DUPLICATE, INVALID, JOINED, OUTCOMES, UNKNOWN_ID, UNKNOWN_MODEL, LabelResult
from otel_mlmon.quality.prediction_store import ModelKey, PredictionStore, StoredPrediction, model_key_of

__all__ = ["GroundTruthJoin"]


class GroundTruthJoin:
    """The joining half of :class:`~otel_mlmon.quality.tracker.QualityHub` (a mixin: the hub
    holds the state named below and provides the methods it calls)."""

    _lock: threading.RLock
    _flush_lock: threading.Lock
    _models: dict[ModelKey, ModelQuality]
    _subscribers: list[Callable[[ModelKey, np.ndarray], Any]]
    _before_join: Callable[[], Any] | None
    max_models: int

    def _error(self, stage: str, exc: BaseException) -> None:
        raise NotImplementedError

    def _open_store(self, create: bool = True) -> PredictionStore | None:
        raise NotImplementedError

    def _count(self, key: ModelKey, outcome: str, n: int, into: dict[ModelKey, dict[str, int]] | None = None) -> None:
        raise NotImplementedError

    def flush(self, timeout_millis: float = 30_000) -> bool:
        raise NotImplementedError

    def subscribe(self, callback: Callable[[ModelKey, np.ndarray], Any]) -> None:
        """``callback(model_key, delays_seconds)`` after each join, with one delay per joined
        label (prediction time to label time, >= 0). Called on the thread that recorded the
        labels, outside the hub's locks; exceptions are caught and reported."""
        with self._lock:
            if callback not in self._subscribers:
                self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[ModelKey, np.ndarray], Any]) -> None:
        with self._lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def set_before_join(self, callback: Callable[[], Any] | None) -> None:
        """Called at the start of :meth:`record_ground_truth` (e.g. drain the recording
        queue, so that a label recorded right after its prediction finds it)."""
        self._before_join = callback

    def record_ground_truth(self, ids: Any, y_true: Any, timestamp: Any = None, model: Any = None) -> LabelResult:
        """Join true outcomes to stored predictions; see the module docstring for bad input.

        ``ids``: the prediction ids (as given to ``prediction_ids`` or returned by
        ``last_prediction_ids``); ``y_true``: one label (classifier) or value (regressor) per
        id; ``timestamp``: when the labels were observed, a number or one per id (epoch
        seconds, default now; used for the label delay); ``model``: restrict the join to one
        model (a name or a ``(name, version)`` tuple).
        """
        try:
            id_list = normalize_ids(ids)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        if isinstance(y_true, (str, bytes)) or not hasattr(y_true, "__len__"):
            raise ValueError(f"y_true must be a 1-D sequence of labels, got {type(y_true).__name__}")
        if isinstance(y_true, (list, tuple)):
            labels = list(y_true)
        else:  # numpy array, pandas Series or one-column DataFrame, ...
            array = np.asarray(y_true)
            if array.ndim == 2 and array.shape[1] == 1:
                array = array[:, 0]
            if array.ndim != 1:
                raise ValueError(f"y_true must be 1-D, got shape {array.shape}")
            labels = array.tolist()
        n = len(id_list)
        if len(labels) != n:
            raise ValueError(f"ids and y_true must have the same length, got {n} ids and {len(labels)} labels")
        now = time.time()
        if timestamp is None:
            stamps = np.full(n, now)
        else:
            try:
                stamps = np.asarray(timestamp, dtype=float)
            except (TypeError, ValueError):
                raise ValueError(f"timestamp must be epoch seconds, one number or one per id: {timestamp!r}") from None
            if stamps.ndim == 0:
                stamps = np.full(n, float(stamps))
            if stamps.shape == (n,) and not np.isfinite(stamps).all():
                raise ValueError("timestamp must be finite epoch seconds")
            if stamps.shape != (n,):
                raise ValueError(f"timestamp must be a number or have one value per id ({n}), got shape {stamps.shape}")
        only = None if model is None else model_key_of(model)
        if n == 0:
            return LabelResult()
        hook = self._before_join
        if hook is not None:
            try:
                hook()
            except Exception as exc:  # noqa: BLE001
                self._error("before_join", exc)
        self.flush()
        try:
            return self._join(id_list, labels, stamps, only)
        except Exception as exc:  # noqa: BLE001 - e.g. the disk: nothing was changed
            self._error("record_ground_truth", exc)
            return LabelResult(error=f"{type(exc).__name__}: {exc}")

    def _join(self, ids: list[str], labels: list[Any], stamps: np.ndarray, only: ModelKey | None) -> LabelResult:
        with self._flush_lock:
            store = self._open_store()
        converted: dict[tuple[int, ModelKey], Any] = {}
        models = self._models
        undescribed: set[ModelKey] = set()

        def accept(position: int, prediction: StoredPrediction) -> bool:
            # Runs inside the store's transaction; lock order is always store, then hub.
            key = prediction.model_key
            state = models.get(key)
            if state is None and store is not None and key not in undescribed:
                state = self._load_model(store, key)
                if state is None:
                    undescribed.add(key)
            if state is None:
                return False
            with self._lock:
                value = state.label(labels[position])
            if value is None:
                return False
            converted[(position, prediction.model_key)] = value
            return True

        if store is None:
            joined, unknown, duplicate, rejected = [], list(range(len(ids))), [], []
        else:
            joined, unknown, duplicate, rejected = store.take_many(ids, only, accept)
        by_model: dict[ModelKey, dict[str, int]] = {}
        delays: dict[ModelKey, np.ndarray] = {}
        with self._lock:
            groups: dict[ModelKey, list[tuple[int, StoredPrediction]]] = {}
            for position, prediction in joined:
                groups.setdefault(prediction.model_key, []).append((position, prediction))
            for key, rows in groups.items():
                self._count(key, JOINED, len(rows), by_model)
                delay = stamps[[p for p, _ in rows]] - np.array([pred.timestamp for _, pred in rows])
                delays[key] = np.maximum(delay, 0.0)
                state = models.get(key)
                if state is not None:
                    state.add_labels(rows, converted)
            for _, prediction in rejected:
                self._count(prediction.model_key, INVALID, 1, by_model)
            for _, key in duplicate:
                self._count(key, DUPLICATE, 1, by_model)
            if unknown:
                if only is not None:
                    target = only
                elif len(models) == 1:
                    target = next(iter(models))
                else:
                    target = UNKNOWN_MODEL
                self._count(target, UNKNOWN_ID, len(unknown), by_model)
            subscribers = list(self._subscribers)
        for key, values in delays.items():
            for callback in subscribers:
                try:
                    callback(key, values)
                except Exception as exc:  # noqa: BLE001
                    self._error("label_delay_callback", exc)
        totals = {outcome: sum(per.get(outcome, 0) for per in by_model.values()) for outcome in OUTCOMES}
        return LabelResult(**totals, by_model=by_model)

    def _load_model(self, store: PredictionStore, key: ModelKey) -> ModelQuality | None:
        """A model described in the store by an earlier process (or another one sharing the
        file), loaded when one of its predictions is joined."""
        try:
            info = store.model_infos().get(key)
        except Exception as exc:  # noqa: BLE001
            self._error("load_model", exc)
            return None
        if not info or info.get("kind") not in (CLASSIFICATION, REGRESSION):
            return None
        with self._lock:
            model = self._models.get(key)
            if model is None and len(self._models) < self.max_models:
                model = ModelQuality(key, info["kind"], info.get("classes") or None, bool(info.get("fixed")), self)
                model.saved = model.revision
                self._models[key] = model
            return model
