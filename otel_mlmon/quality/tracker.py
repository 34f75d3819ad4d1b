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
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

from otel_mlmon.quality.cbpe import CBPE
from otel_mlmon.quality.ids import IdBlock, normalize_ids
from otel_mlmon.quality.metrics import ClassificationWindow, RegressionWindow
from otel_mlmon.quality.store import (
    DEFAULT_MAX_ENTRIES,
    DEFAULT_TTL_S,
    Batch,
    MemoryStore,
    ModelKey,
    PredictionStore,
    SQLiteStore,
    StoredPrediction,
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

JOINED, UNKNOWN_ID, DUPLICATE, INVALID = "joined", "unknown_id", "duplicate", "invalid"
OUTCOMES = (JOINED, UNKNOWN_ID, DUPLICATE, INVALID)
REALIZED, ESTIMATED = "realized", "estimated"
UNKNOWN_MODEL: ModelKey = ("_unknown", None)
"""Model key under which labels of unknown ids are counted when the model cannot be told."""

CLASSIFICATION, REGRESSION = "classification", "regression"
STORES = ("sqlite", "memory", "none")
DEFAULT_WINDOW = 1000
_UNSET: Any = object()


@dataclass(frozen=True)
class LabelResult:
    """What :meth:`QualityHub.record_ground_truth` did with each label, counted by outcome.

    ``by_model`` splits the counts per model key. A label whose id was predicted by two
    models (shadow deployment) joins both and counts once per model. ``error`` is set when
    an internal failure (e.g. the store's disk) prevented the join; nothing was changed then.
    """

    joined: int = 0
    unknown_id: int = 0
    duplicate: int = 0
    invalid: int = 0
    by_model: dict[ModelKey, dict[str, int]] = field(default_factory=dict)
    error: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        return {outcome: getattr(self, outcome) for outcome in OUTCOMES}


class QualitySnapshot(NamedTuple):
    """Plain data for export, taken by :meth:`QualityHub.snapshot`.

    * ``quality``: ``{model_key: {(metric, source): value}}``, ``source`` is ``"realized"`` or
      ``"estimated"``; undefined metrics are absent (never NaN).
    * ``labels``: cumulative ``{(model_key, outcome): count}`` since the hub started.
    * ``pending``: predictions stored and waiting for a label.
    """

    quality: dict[ModelKey, dict[tuple[str, str], float]]
    labels: dict[tuple[ModelKey, str], int]
    pending: int


def _is_number(value: Any) -> bool:
    if type(value) in (int, float):
        return True
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def _family(value: Any) -> str:
    if isinstance(value, (bool, int, float, np.number, np.bool_)):
        return "number"
    return type(value).__name__


class _Model:
    """Per-model state: kind, classes, windows, cached metrics."""

    def __init__(self, key: ModelKey, kind: str, classes: list[Any] | None, fixed: bool, hub: QualityHub) -> None:
        self.key = key
        self.kind = kind
        self.fixed = fixed
        self._hub = hub
        self.classes: list[Any] = []
        self.code_of: dict[Any, int] = {}
        self.families: set[str] = set()
        self.revision = 1  # of the info (kind, classes); persisted up to ``saved``
        self.saved = 0
        self._pos_cache: tuple[Any, int] | None = None
        if classes:
            self._set_classes(classes)
        self._new_windows()

    def _new_windows(self) -> None:
        size = self._hub.window
        self.window: ClassificationWindow | RegressionWindow = (
            ClassificationWindow(size) if self.kind == CLASSIFICATION else RegressionWindow(size)
        )
        self.cbpe = CBPE(size, calibrate=self._hub.calibrate) if self.kind == CLASSIFICATION else None
        self.cache_version = -1
        self.cache: dict[str, float] = {}
        self.calibrated_version = -1

    def _set_classes(self, classes: list[Any]) -> None:
        self.classes = []
        self.code_of = {}
        self.families = set()
        for value in classes:
            self._add_class(value)

    def _add_class(self, value: Any) -> int | None:
        try:
            code = self.code_of.get(value)
        except TypeError:
            return None
        if code is None:
            if len(self.classes) >= self._hub.max_classes:
                return None
            code = self.code_of[value] = len(self.classes)
            self.classes.append(value)
            self.families.add(_family(value))
            self.revision += 1
        return code

    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, "classes": list(self.classes), "fixed": self.fixed}

    def reset(self, kind: str, classes: list[Any] | None, fixed: bool) -> None:
        self.kind, self.fixed = kind, fixed
        self._set_classes(classes or [])
        self.revision += 1
        self._new_windows()

    # -------------------------------------------------------------- labels
    def label(self, value: Any) -> Any:
        """The label as the window stores it (class code or float), or None if invalid."""
        if self.kind == REGRESSION:
            if not _is_number(value):
                return None
            number = float(value)
            return number if math.isfinite(number) else None
        if isinstance(value, float) and math.isnan(value):
            return None
        try:
            code = self.code_of.get(value)
        except TypeError:
            return None
        if code is None and not self.fixed and value is not None and _family(value) in self.families:
            code = self._add_class(value)
        return code

    def predicted_code(self, y_pred: Any, proba: np.ndarray | None) -> int:
        if y_pred is not None:
            try:
                code = self.code_of.get(y_pred)
            except TypeError:
                code = None
            if code is not None:
                return code
        if proba is not None and proba.size == len(self.classes):
            return int(np.argmax(proba))
        return -1

    def pos_code(self) -> int:
        """Column of the positive class (binary models); cached per classes and setting."""
        cache_key = (self.revision, self._hub.pos_label)
        if self._pos_cache is not None and self._pos_cache[0] == cache_key:
            return self._pos_cache[1]
        code = self._pos_code()
        self._pos_cache = (cache_key, code)
        return code

    def _pos_code(self) -> int:
        pos_label = self._hub.pos_label
        if pos_label is not None:
            try:
                code = self.code_of.get(pos_label)
            except TypeError:
                code = None
            if code is not None:
                return code
        try:
            order = sorted(range(len(self.classes)), key=lambda c: self.classes[c])
        except TypeError:
            order = list(range(len(self.classes)))
        return order[1] if len(order) > 1 else 0

    def metrics(self) -> dict[str, float]:
        window = self.window
        if window.version != self.cache_version:
            if isinstance(window, ClassificationWindow):
                self.cache = window.metrics(self.classes, self._hub.pos_label)
            else:
                self.cache = window.metrics()
            self.cache_version = window.version
        return self.cache

    def estimated(self) -> dict[str, float]:
        cbpe = self.cbpe
        if cbpe is None or len(cbpe) == 0:
            return {}
        window = self.window
        if cbpe.calibrate and isinstance(window, ClassificationWindow) and window.version != self.calibrated_version:
            y_true, _, proba, _ = window.arrays()
            if proba is not None and proba.shape[1] == len(self.classes):
                rows = ~np.isnan(proba).any(axis=1)
                cbpe.fit_calibration(proba[rows], y_true[rows])
            self.calibrated_version = window.version
        return cbpe.estimate()


class QualityHub:
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
        self._models: dict[ModelKey, _Model] = {}
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
        ref = weakref.ref(self)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: (h := ref()) is not None and h._after_fork())

    def _after_fork(self) -> None:
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
                self._error("open_store", exc)
                store = MemoryStore(self.max_entries, self.ttl_s)
        self._store = store
        return store

    def _load_model(self, store: PredictionStore, key: ModelKey) -> _Model | None:
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
                model = _Model(key, info["kind"], info.get("classes") or None, bool(info.get("fixed")), self)
                model.saved = model.revision
                self._models[key] = model
            return model

    def _model(self, key: ModelKey, classes: Any, y_pred: np.ndarray | None, proba: np.ndarray | None) -> _Model | None:
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
            model = self._models[key] = _Model(key, kind, fixed_classes, fixed_classes is not None, self)
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

    # ------------------------------------------------------------------ ground truth
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
                    self._update_window(state, key, rows, converted)
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

    @staticmethod
    def _update_window(state: _Model, key: ModelKey, rows: list[tuple[int, StoredPrediction]],
                       converted: dict[tuple[int, ModelKey], Any]) -> None:  # fmt: skip
        if state.kind == REGRESSION:
            pairs = [(converted[(p, key)], pred.y_pred) for p, pred in rows if _is_number(pred.y_pred)]
            if pairs:
                truth, predicted = zip(*pairs)
                state.window.extend(np.array(truth, dtype=float), np.array(predicted, dtype=float))
            return
        n_classes = len(state.classes)
        y_true = np.array([converted[(p, key)] for p, _ in rows], dtype=np.int32)
        y_pred = np.array([state.predicted_code(pred.y_pred, pred.proba) for _, pred in rows], dtype=np.int32)
        proba = None
        if any(pred.proba is not None and pred.proba.size == n_classes for _, pred in rows):
            proba = np.full((len(rows), n_classes), np.nan)
            for j, (_, pred) in enumerate(rows):
                if pred.proba is not None and pred.proba.size == n_classes:
                    proba[j] = pred.proba
        score = np.array([np.nan if pred.score is None else pred.score for _, pred in rows], dtype=float)
        window = state.window
        assert isinstance(window, ClassificationWindow)
        window.extend(y_true, y_pred, proba, score)

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
