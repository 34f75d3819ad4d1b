"""``QualityHub``: predictions in, ground truth in, quality metrics out.

Data flow::

    model.predict(X)                      # hot path: ids.call_ids(rows) + set_last(block)
      -> recording worker: hub.on_predictions(model_key, block, y_pred, proba, classes)
           - estimated quality (CBPE) window updated from proba
           - rows buffered, written to the store in one transaction per flush()
    otel_mlmon.record_ground_truth(ids, y_true)      # any thread, later (minutes .. days)
      -> rows taken from the store, labels checked against their model,
         realized-quality window updated, label delays sent to subscribers
    collection: hub.snapshot()            # plain data, exported by the instrumentation

Ids supplied to ``prediction_ids`` whose count differs from the call's rows are counted
``invalid`` (one per row of the call) and replaced by generated ids.

Nothing here raises into a model call: :meth:`on_predictions`, :meth:`flush` and
:meth:`snapshot` catch every internal failure and report it to ``on_error(stage, exc)``
(default: a warning logged once per stage). A store that cannot be opened (read-only disk)
is replaced by a :class:`MemoryStore`, with a warning.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from typing import Any, Callable

import numpy as np

from otel_mlmon import _lifecycle
from otel_mlmon.quality.ids import IdBlock
from otel_mlmon.quality.joining import GroundTruthJoin
from otel_mlmon.quality.model_quality import CLASSIFICATION, REGRESSION, ModelQuality
from otel_mlmon.quality.outcomes import ESTIMATED, INVALID, OUTCOMES, REALIZED, UNKNOWN_MODEL, LabelResult, QualitySnapshot
from otel_mlmon.quality.store import (
    DEFAULT_MAX_ENTRIES,
    DEFAULT_TTL_S,
    Batch,
    MemoryStore,
    ModelKey,
    PredictionStore,
    SQLiteStore,
    default_path,
    model_key_of,
)

__all__ = [
    "OUTCOMES",
    "UNKNOWN_MODEL",
    "LabelResult",
    "QualityHub",
    "QualitySnapshot",
    "hub",
    "record_ground_truth",
]

_logger = logging.getLogger("otel_mlmon")

STORES = ("sqlite", "memory", "none")
DEFAULT_WINDOW = 1000
_UNSET: Any = object()


class QualityHub(GroundTruthJoin):
    """Stores predictions, joins ground truth, computes realized and estimated quality.

    ``store``: ``"sqlite"`` (default, file at ``path``, default
    :func:`~otel_mlmon.quality.store.default_path`), ``"memory"``, ``"none"`` (no labels can
    join; estimated quality only) or a :class:`PredictionStore` instance. The store is opened
    on first use, so constructing a hub touches no file.

    ``window``: labelled predictions per model in the realized-quality window, and recent
    predictions per model in the estimated-quality window. ``pos_label``: positive class of
    binary models (default: the second of the sorted classes). ``max_models`` /
    ``max_classes`` bound the state kept (further models are not tracked; further classes
    are invalid labels).

    Thread-safe. :meth:`on_predictions` is meant for a background worker: it buffers rows
    and writes them every ``flush_rows`` rows or :meth:`flush`.

    >>> hub = QualityHub(store="memory", window=100)
    >>> hub.on_predictions(("clf", "1"), ["a", "b", "c"], y_pred=[1, 0, 1], classes=[0, 1])
    >>> result = hub.record_ground_truth(["a", "b", "x"], [1, 1, 0])
    >>> result.joined, result.unknown_id
    (2, 1)
    >>> hub.snapshot().quality[("clf", "1")][("accuracy", "realized")]
    0.5
    """

    def __init__(
        self,
        store: str | PredictionStore = "sqlite",
        path: str | os.PathLike | None = None,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_s: float = DEFAULT_TTL_S,
        window: int = DEFAULT_WINDOW,
        pos_label: Any = None,
        calibrate: bool = True,
        max_models: int = 100,
        max_classes: int = 1000,
        flush_rows: int = 4096,
        on_error: Callable[[str, BaseException], Any] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._store: PredictionStore | None = None
        self._models: dict[ModelKey, ModelQuality] = {}
        self._counts: dict[tuple[ModelKey, str], int] = {}
        self._buffer: list[Batch] = []
        self._buffered = 0
        self._subscribers: list[Callable[[ModelKey, np.ndarray], Any]] = []
        self._before_join: Callable[[], Any] | None = None
        self._logged: set[str] = set()
        self._last_eviction = 0.0
        self.on_error = on_error
        self._store_spec: Any = None
        self.store_kind = "sqlite"
        self.path: str | None = None
        self.max_entries = DEFAULT_MAX_ENTRIES
        self.ttl_s = DEFAULT_TTL_S
        self.window = DEFAULT_WINDOW
        self.pos_label: Any = None
        self.calibrate = True
        self.max_models = 100
        self.max_classes = 1000
        self.flush_rows = 4096
        self.configure(store=store, path=path, max_entries=max_entries, ttl_s=ttl_s, window=window,
                       pos_label=pos_label, calibrate=calibrate, max_models=max_models,
                       max_classes=max_classes, flush_rows=flush_rows)  # fmt: skip
        # Fork and exit (otel_mlmon._lifecycle): both locks held across fork; at exit the
        # buffered predictions are written to the store.
        _lifecycle.register(self, _lifecycle.HUB_FLUSH, lock="_flush_lock")
        _lifecycle.register(self, _lifecycle.HUB, lock="_lock", child=QualityHub._after_fork, exit=QualityHub.flush)

    def _after_fork(self, quiesced: bool = True) -> None:
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._buffer, self._buffered = [], 0  # the parent writes its own buffer

    # ------------------------------------------------------------------ configuration
    def configure(
        self,
        store: Any = _UNSET,
        path: Any = _UNSET,
        max_entries: Any = _UNSET,
        ttl_s: Any = _UNSET,
        window: Any = _UNSET,
        pos_label: Any = _UNSET,
        calibrate: Any = _UNSET,
        max_models: Any = _UNSET,
        max_classes: Any = _UNSET,
        flush_rows: Any = _UNSET,
    ) -> None:
        """Change settings (only those given). A bad value raises ``ValueError`` and changes
        nothing. A different store, path or bound closes the current store (after writing
        the buffered rows) and opens the new one on first use; a different ``window`` starts
        every model's windows afresh. Calling it again with the same values does nothing."""
        new = {
            "store_kind": self.store_kind, "path": self.path, "max_entries": self.max_entries,
            "ttl_s": self.ttl_s, "window": self.window, "pos_label": self.pos_label,
            "calibrate": self.calibrate, "max_models": self.max_models,
            "max_classes": self.max_classes, "flush_rows": self.flush_rows,
        }  # fmt: skip
        spec = self._store_spec
        if store is not _UNSET:
            if isinstance(store, PredictionStore):
                spec, new["store_kind"] = store, "instance"
            elif isinstance(store, str) and store.strip().lower() in STORES:
                spec = new["store_kind"] = store.strip().lower()
            else:
                raise ValueError(f"store must be one of {STORES} or a PredictionStore, got {store!r}")
        if path is not _UNSET:
            if path is not None and not isinstance(path, (str, os.PathLike)):
                raise ValueError(f"path must be a file path or None, got {path!r}")
            new["path"] = None if path is None else os.fspath(path)
        integers = (("max_entries", max_entries, 1), ("window", window, 1), ("max_models", max_models, 1),
                    ("max_classes", max_classes, 2), ("flush_rows", flush_rows, 1))  # fmt: skip
        for name, value, minimum in integers:
            if value is not _UNSET:
                if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                    raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
                new[name] = value
        if ttl_s is not _UNSET:
            if isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float)) or not 0 < ttl_s < math.inf:
                raise ValueError(f"ttl_s must be a positive number of seconds, got {ttl_s!r}")
            new["ttl_s"] = float(ttl_s)
        if calibrate is not _UNSET:
            if not isinstance(calibrate, bool):
                raise ValueError(f"calibrate must be a bool, got {calibrate!r}")
            new["calibrate"] = calibrate
        if pos_label is not _UNSET:
            try:
                hash(pos_label)
            except TypeError:
                raise ValueError(f"pos_label must be a class label, got {pos_label!r}") from None
            new["pos_label"] = pos_label
        reopen = spec != self._store_spec or any(
            new[k] != getattr(self, k) for k in ("store_kind", "path", "max_entries", "ttl_s")
        )
        if reopen:
            self.close()
        with self._lock:
            rebuild = new["window"] != self.window or new["calibrate"] != self.calibrate
            for name, value in new.items():
                setattr(self, name, value)
            self._store_spec = spec if spec is not None else new["store_kind"]
            if rebuild:
                for model in self._models.values():
                    model._new_windows()
            else:
                for model in self._models.values():
                    model.cache_version = -1

    # ------------------------------------------------------------------ internals
    def _error(self, stage: str, exc: BaseException) -> None:
        handler = self.on_error
        if handler is not None:
            try:
                handler(stage, exc)
            except Exception:  # noqa: BLE001
                pass
        if stage not in self._logged:
            self._logged.add(stage)
            _logger.warning("otel-mlmon quality tracking failed at %s: %s: %s", stage, type(exc).__name__, exc)

    def _open_store(self, create: bool = True) -> PredictionStore | None:
        """The store, opened on first use (caller holds ``_flush_lock``). ``create=False``
        does not create a missing SQLite file (reads of an unused hub touch no disk)."""
        store = self._store
        if store is not None:
            return store
        spec = self._store_spec
        if spec == "none":
            return None
        if isinstance(spec, PredictionStore):
            store = spec
        elif spec == "memory":
            store = MemoryStore(self.max_entries, self.ttl_s)
        else:
            path = self.path or default_path()
            if not create and not os.path.exists(path):
                return None
            try:
                store = SQLiteStore(path, self.max_entries, self.ttl_s)
            except Exception as exc:  # noqa: BLE001 - read-only disk ...: keep working in memory
                self._logged.add("open_store")  # this warning names the file and the fallback
                _logger.warning("otel-mlmon: label store %r cannot be used (%s: %s); falling back to an in-memory "
                                "store: pending predictions are not kept across restarts", path, type(exc).__name__, exc)
                self._error("open_store", exc)
                store = MemoryStore(self.max_entries, self.ttl_s)
        self._store = store
        return store

    def _model(self, key: ModelKey, classes: Any, y_pred: np.ndarray | None, proba: np.ndarray | None) -> ModelQuality | None:
        """The model's state, created or re-typed from what this call returned (caller holds
        ``_lock``)."""
        fixed_classes = None
        if classes is not None:
            fixed_classes = np.asarray(classes).tolist()
        elif proba is not None:
            fixed_classes = list(range(proba.shape[1]))
        if fixed_classes is not None:
            kind = CLASSIFICATION
        elif y_pred is not None:
            kind = REGRESSION if y_pred.dtype.kind == "f" else CLASSIFICATION
        else:
            return self._models.get(key)
        model = self._models.get(key)
        if model is None:
            if len(self._models) >= self.max_models:
                if "max_models" not in self._logged:
                    self._logged.add("max_models")
                    _logger.warning("otel-mlmon tracks the quality of %d models at most; %r is not tracked",
                                    self.max_models, key)  # fmt: skip
                return None
            model = self._models[key] = ModelQuality(key, kind, fixed_classes, fixed_classes is not None, self)
            return model
        if fixed_classes is not None:
            if model.kind != CLASSIFICATION or model.classes != fixed_classes:
                model.reset(CLASSIFICATION, fixed_classes, True)  # refitted under the same name
            elif not model.fixed:
                model.fixed = True
                model.revision += 1
        elif model.kind != kind and not (model.kind == CLASSIFICATION and model.fixed):
            model.reset(kind, None, False)
        return model

    def _count(self, key: ModelKey, outcome: str, n: int, into: dict[ModelKey, dict[str, int]] | None = None) -> None:
        if n <= 0:
            return
        self._counts[(key, outcome)] = self._counts.get((key, outcome), 0) + n
        if into is not None:
            per = into.setdefault(key, {})
            per[outcome] = per.get(outcome, 0) + n

    # ------------------------------------------------------------------ predictions
    def on_predictions(
        self,
        model_key: ModelKey,
        ids: IdBlock | Any,
        y_pred: Any = None,
        proba: Any = None,
        classes: Any = None,
        timestamp: float | None = None,
        scores: Any = None,
        store: bool = True,
    ) -> None:
        """Record one inference call's outputs (from the recording worker, never raises).

        ``store=False`` updates the label-free estimate only: the rows are not kept for labels
        (the instrumentation does that for generated ids the application never read).

        ``ids``: the call's :class:`IdBlock` (or any sequence of ids). ``y_pred``: predicted
        labels (classifier) or values (regressor, float); ``proba``: (rows, classes)
        probabilities, columns in ``classes`` order; ``classes``: the model's class labels
        (``classes_``), default ``range(n_columns)`` when ``proba`` is given, else learned
        from the predicted labels; ``scores``: binary ``decision_function`` (grows with
        ``classes[1]``). ``timestamp``: epoch seconds of the call (default now). A model is a
        regressor when it has neither classes nor probabilities and predicts floats.
        """
        try:
            self._on_predictions(model_key_of(model_key), ids, y_pred, proba, classes, timestamp, scores, store)
        except Exception as exc:  # noqa: BLE001
            self._error("on_predictions", exc)

    def _on_predictions(self, key: ModelKey, ids: Any, y_pred: Any, proba: Any, classes: Any,
                        timestamp: float | None, scores: Any, store: bool = True) -> None:  # fmt: skip
        n = len(ids)
        rejected = isinstance(ids, IdBlock) and ids.rejected
        y = None if y_pred is None else np.asarray(y_pred)
        if y is not None and y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y is not None and (y.ndim != 1 or y.shape[0] != n):
            y = None  # multi-output or wrong length: not tracked
        p = None
        if proba is not None:
            p = np.asarray(proba)
            if p.ndim != 2 or p.shape[0] != n or p.shape[1] < 2 or p.dtype.kind not in "fiu":
                p = None
        s = None
        if scores is not None:
            s = np.asarray(scores)
            if s.ndim != 1 or s.shape[0] != n or s.dtype.kind not in "fiu":
                s = None
        stamp = time.time() if timestamp is None else float(timestamp)
        with self._lock:
            model = self._model(key, classes, y, p)
            if model is None:
                return
            if rejected:
                self._count(key, INVALID, n)
            if model.kind == REGRESSION:
                p = s = None
                if y is not None and y.dtype.kind not in "fiu":
                    y = None
            else:
                if p is not None and p.shape[1] != len(model.classes):
                    p = None
                if y is not None and not model.fixed:
                    for value in np.unique(y).tolist() if y.dtype.kind != "O" else dict.fromkeys(y.tolist()):
                        model._add_class(value)
                if len(model.classes) != 2:
                    s = None
                if p is not None and model.cbpe is not None:
                    model.cbpe.update(p, model.pos_code() if p.shape[1] == 2 else 1)
            if n == 0 or (y is None and p is None and s is None) or self._store_spec == "none" or not store:
                return
            self._buffer.append(Batch(key, ids, y, p, s, stamp))
            self._buffered += n
            buffered = self._buffered
        if buffered >= self.flush_rows:
            # Without waiting while a join holds the store; waiting only once the buffer is
            # 16 times over its size, so that it stays bounded.
            self.flush(timeout_millis=30_000 if buffered >= 16 * self.flush_rows else 0)

    def flush(self, timeout_millis: float = 30_000) -> bool:
        """Write buffered predictions to the store (one transaction) and new model
        descriptions. Returns ``False`` if that failed (those rows are then dropped) or the
        timeout passed; never raises."""
        if not self._flush_lock.acquire(timeout=max(0.0, timeout_millis / 1000)):
            return False
        try:
            return self._flush_locked()
        finally:
            self._flush_lock.release()

    def _flush_locked(self) -> bool:
        try:
            with self._lock:
                batches, self._buffer, self._buffered = self._buffer, [], 0
                dirty = [(m, m.revision, m.info()) for m in self._models.values() if m.saved != m.revision]
            if not batches and not dirty:
                return True
            store = self._open_store()
            if store is None:
                return True
            for model, revision, info in dirty:
                store.set_model_info(model.key, info)
                model.saved = revision
            if batches:
                store.put_batches(batches)
            return True
        except Exception as exc:  # noqa: BLE001
            self._error("store_predictions", exc)
            return False

    # ------------------------------------------------------------------ export
    def snapshot(self) -> QualitySnapshot:
        """Current quality per model, cumulative label counts and pending count (never raises;
        O(window) per model whose window changed since the last snapshot)."""
        self.flush()
        quality: dict[ModelKey, dict[tuple[str, str], float]] = {}
        with self._lock:
            for key, state in self._models.items():
                try:
                    values = {(name, REALIZED): value for name, value in state.metrics().items()}
                    values.update({(name, ESTIMATED): value for name, value in state.estimated().items()})
                except Exception as exc:  # noqa: BLE001
                    self._error("quality_metrics", exc)
                    continue
                if values:
                    quality[key] = values
            labels = dict(self._counts)
        return QualitySnapshot(quality, labels, self.pending())

    def pending(self) -> int:
        """Predictions stored and waiting for their label (never raises)."""
        if self._buffered:
            self.flush()
        try:
            with self._flush_lock:
                store = self._open_store(create=False)
                if store is None:
                    return self._buffered
                now = time.time()
                if now - self._last_eviction >= 10.0:
                    self._last_eviction = now
                    store.evict_expired(now, limit=store.evict_batch)
            return store.pending() + self._buffered
        except Exception as exc:  # noqa: BLE001
            self._error("pending", exc)
            return 0

    def models(self) -> dict[ModelKey, dict[str, Any]]:
        """What the hub knows of each tracked model: kind and classes."""
        with self._lock:
            return {key: state.info() for key, state in self._models.items()}

    def close(self, timeout_millis: float = 30_000) -> bool:
        """Write buffered rows and close the store (reopened on next use). Idempotent;
        ``False`` if writing failed or the timeout passed."""
        if not self._flush_lock.acquire(timeout=max(0.0, timeout_millis / 1000)):
            return False
        try:
            ok = self._flush_locked()
            store, self._store = self._store, None
        finally:
            self._flush_lock.release()
        if store is not None and not isinstance(self._store_spec, PredictionStore):
            try:
                store.close()
            except Exception as exc:  # noqa: BLE001
                self._error("close_store", exc)
                return False
        return ok

    shutdown = close


_HUB: QualityHub | None = None
_HUB_LOCK = threading.Lock()


def hub() -> QualityHub:
    """The process-wide hub used by the instrumentation and :func:`record_ground_truth`."""
    global _HUB
    if _HUB is None:
        with _HUB_LOCK:
            if _HUB is None:
                _HUB = QualityHub()
    return _HUB


def record_ground_truth(ids: Any, y_true: Any, timestamp: Any = None, model: Any = None) -> LabelResult:
    """Report the true outcome of earlier predictions; see :meth:`QualityHub.record_ground_truth`.

    ``ids`` are the prediction ids (your own, given with :func:`otel_mlmon.prediction_ids`, or
    those returned by :func:`otel_mlmon.last_prediction_ids`). Returns the counts by outcome.
    """
    return hub().record_ground_truth(ids, y_true, timestamp=timestamp, model=model)
