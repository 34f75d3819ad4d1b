"""scikit-learn instrumentation.

Usage::

    from otel_mlmon import SklearnInstrumentor
    SklearnInstrumentor().instrument(tracer_provider=..., meter_provider=...)

or with no code change: ``opentelemetry-instrument python app.py``.

How it covers every estimator without importing all of scikit-learn: for each class that
subclasses ``sklearn.base.BaseEstimator`` (those imported so far, found through
``__subclasses__``, and every later one, through a hook on ``BaseEstimator.__init_subclass__``)
the inference, training and evaluation (``score``) methods are wrapped where they are defined
(the class or the mixin that owns them in the MRO), once. ``available_if`` descriptors keep
their availability check: only their inner function is wrapped. If ``sklearn.base`` is not
imported yet, the work waits for its import (a post-import hook), so ``instrument()`` costs
nothing until then.

Evaluation is not production traffic: inside an estimator's ``score``, a scorer or a
cross-validation fold (``EVALUATION_ENTRY_POINTS``, wrapped when their modules are imported)
nothing is traced or recorded, and the clones fitted there get no reference profile.
"""

from __future__ import annotations

import logging
import sys
import threading
import types
from typing import Any, Collection

import numpy as np
import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from otel_mlmon._internal.config import KNOWN_OPERATIONS, Settings
from otel_mlmon._internal.monitor import (
    Holder,
    Monitor,
    evaluation_wrapper,
    inference_wrapper,
    is_wrapper,
    shape_of_first_argument,
    training_wrapper,
)
from otel_mlmon._internal.recorder import snapshot_array
from otel_mlmon._internal.state import OUT_LABELS, OUT_PROBA, OUT_VALUES
from otel_mlmon.package import _instruments_sklearn

_logger = logging.getLogger(__name__)

TRAINING_METHODS = ("fit", "partial_fit", "fit_transform", "fit_predict")
EVALUATION_METHODS = ("score",)
# Evaluation entry points outside the estimators, wrapped when their module is imported:
# scorers (``get_scorer``, ``scoring=``, ``permutation_importance``) and the per-fold
# functions behind ``cross_val_score``, ``cross_validate``, ``cross_val_predict``,
# ``learning_curve``, ``validation_curve`` and ``permutation_test_score``. These names are
# private to scikit-learn: one that a version lacks is left alone.
EVALUATION_ENTRY_POINTS = {
    "sklearn.metrics._scorer": ("_BaseScorer.__call__", "_MultimetricScorer.__call__",
                                "_PassthroughScorer.__call__"),
    "sklearn.model_selection._validation": ("_fit_and_score", "_fit_and_predict", "_permutation_test_score",
                                            "_incremental_fit_estimator"),
}  # fmt: skip
FRAMEWORK = "sklearn"


class _SklearnAdapter:
    name = FRAMEWORK

    @staticmethod
    def describe(model: Any, operation: str) -> tuple[str | None, dict[str, Any]]:
        from sklearn.base import is_classifier, is_regressor  # noqa: PLC0415 - imported by then

        if operation == "predict_proba":
            return OUT_PROBA, {}
        if operation == "predict" and is_classifier(model):
            return OUT_LABELS, {}
        if operation == "predict" and is_regressor(model):
            return OUT_VALUES, {}
        return None, {}

    inputs = staticmethod(shape_of_first_argument)

    @staticmethod
    def may_start_spans(model: Any) -> bool:
        return runs_foreign_code(model)

    @staticmethod
    def snapshot(result: Any, mode: str) -> Any:
        # Plain arrays only: tuples (``return_std=True``) and lists of per-output arrays
        # (multi-output ``predict_proba``) are not predictions alone.
        return snapshot_array(result) if type(result) is np.ndarray else None


# Libraries whose estimators and functions start no spans: a model made only of them gets its span
# from the recording worker, after the call (``OTEL_MLMON_CURRENT_SPAN=auto``).
KNOWN_LIBRARIES = frozenset(("sklearn", "numpy", "scipy", "pandas", "xgboost", "lightgbm", "catboost",
                             "imblearn", "builtins"))  # fmt: skip
_MAX_PARTS = 10_000  # parts of an estimator inspected; beyond, it may run anything


def _known(obj: Any) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module.partition(".")[0] in KNOWN_LIBRARIES


def runs_foreign_code(model: Any) -> bool:
    """Whether an estimator can run code from outside ``KNOWN_LIBRARIES`` (which may start spans):
    its class, a step or member estimator (``get_params``), or a function parameter
    (``FunctionTransformer(func=...)``, a custom metric) defined elsewhere. Once per model."""
    stack, seen = [model], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, type(None), np.ndarray, np.generic)):
            continue
        seen.add(id(obj))
        if len(seen) > _MAX_PARTS:
            return True
        if isinstance(obj, type):
            continue  # a class given as a parameter (dtype=np.float32) is not called as code of its own
        if isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
            if not _known(obj):
                return True
        elif hasattr(obj, "get_params"):
            if not _known(type(obj)):
                return True
            stack.extend(obj.get_params(deep=False).values())
        elif callable(obj) and not _known(type(obj)):
            return True  # a callable object (functools.partial, a scorer) of unknown code
    return False


def _subclasses(root: type) -> list[type]:
    seen: set[type] = set()
    stack, found = [root], [root]
    while stack:
        for sub in type.__subclasses__(stack.pop()):
            if sub not in seen:
                seen.add(sub)
                found.append(sub)
                stack.append(sub)
    return found


class _Patcher:
    """Wraps methods in place and remembers exactly what it replaced."""

    def __init__(self, holder: Holder) -> None:
        self._holder = holder
        self._lock = threading.RLock()
        # (owner, attribute, original, wrapper, on_descriptor)
        self._patches: list[tuple[Any, str, Any, Any, bool]] = []
        self._base: type | None = None
        self._had_hook = False
        self._old_hook: Any = None
        self.active = False

    def install(self, base_module: Any) -> None:
        with self._lock:
            if not self.active or self._base is not None:
                return
            base = base_module.BaseEstimator
            self._base = base
            for cls in _subclasses(base):
                self.patch_class(cls)
            self._had_hook = "__init_subclass__" in base.__dict__
            self._old_hook = base.__dict__.get("__init_subclass__")
            patcher = self

            def __init_subclass__(cls, **kwargs):  # noqa: N807
                if patcher._old_hook is not None:
                    patcher._old_hook.__get__(None, cls)(**kwargs)
                else:
                    super(base, cls).__init_subclass__(**kwargs)
                try:
                    patcher.patch_class(cls)
                except Exception:  # noqa: BLE001 - never break a class definition
                    _logger.warning("otel-mlmon could not instrument %r", cls, exc_info=True)

            base.__init_subclass__ = classmethod(__init_subclass__)

    def patch_class(self, cls: type) -> None:
        with self._lock:
            if not self.active:
                return
            for name in KNOWN_OPERATIONS + TRAINING_METHODS + EVALUATION_METHODS:
                for owner in cls.__mro__:
                    if name in owner.__dict__:
                        self._patch(owner, name, owner.__dict__[name])
                        break

    def install_entry_points(self, module: Any) -> None:
        """Wrap the evaluation entry points of ``module`` (see ``EVALUATION_ENTRY_POINTS``)."""
        with self._lock:
            if not self.active:
                return
            for dotted in EVALUATION_ENTRY_POINTS.get(module.__name__, ()):
                *path, name = dotted.split(".")
                owner = module
                for part in path:
                    owner = getattr(owner, part, None)
                raw = getattr(owner, "__dict__", {}).get(name)
                if isinstance(raw, types.FunctionType) and not is_wrapper(raw):
                    wrapper = evaluation_wrapper(raw, self._holder)
                    try:
                        setattr(owner, name, wrapper)
                    except (TypeError, AttributeError):
                        continue
                    self._patches.append((owner, name, raw, wrapper, False))

    def _patch(self, owner: type, name: str, raw: Any) -> None:
        if isinstance(raw, types.FunctionType):
            if is_wrapper(raw):
                return
            wrapper = self._wrap(raw, name)
            try:
                setattr(owner, name, wrapper)
            except (TypeError, AttributeError):
                return
            self._patches.append((owner, name, raw, wrapper, False))
            return
        # available_if-style descriptors: wrap the function they hand out, keep their check.
        inner = getattr(raw, "fn", None)
        if isinstance(inner, types.FunctionType) and hasattr(type(raw), "__get__"):
            if is_wrapper(inner):
                return
            wrapper = self._wrap(inner, name)
            try:
                raw.fn = wrapper
            except (TypeError, AttributeError):
                return
            self._patches.append((raw, "fn", inner, wrapper, True))

    def _wrap(self, function: types.FunctionType, name: str) -> Any:
        if name in TRAINING_METHODS:
            return training_wrapper(function, self._holder)
        if name in EVALUATION_METHODS:
            return evaluation_wrapper(function, self._holder)
        return inference_wrapper(function, name, self._holder)

    def uninstall(self) -> None:
        with self._lock:
            self.active = False
            for owner, name, original, wrapper, on_descriptor in reversed(self._patches):
                if on_descriptor:
                    if getattr(owner, name, None) is wrapper:
                        setattr(owner, name, original)
                elif owner.__dict__.get(name) is wrapper:
                    setattr(owner, name, original)
                # else: someone wrapped our wrapper since; it stays, as a pass-through.
            self._patches.clear()
            base, self._base = self._base, None
            if base is not None:
                if self._had_hook:
                    base.__init_subclass__ = self._old_hook
                elif "__init_subclass__" in base.__dict__:
                    del base.__init_subclass__


class SklearnInstrumentor(BaseInstrumentor):
    """Traces and measures inference of every scikit-learn-API estimator.

    Keyword arguments of :meth:`instrument` (each also settable by its ``OTEL_MLMON_*``
    environment variable, see ``docs/configuration.md``): ``tracer_provider``,
    ``meter_provider``, ``operations``, ``detail_spans``, ``capture_exception_message``,
    ``max_models``, ``max_class_labels``, ``output_sample_size``, ``queue_size``,
    ``flush_interval_ms``.
    """

    def __init__(self) -> None:
        if not hasattr(self, "_holder"):
            self._holder = Holder()
            self._patcher: _Patcher | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments_sklearn

    def _instrument(self, **kwargs: Any) -> None:
        settings = Settings.resolve(kwargs)
        self._holder.monitor = Monitor(
            _SklearnAdapter(), settings,
            tracer_provider=kwargs.get("tracer_provider"), meter_provider=kwargs.get("meter_provider"),
        )  # fmt: skip
        patcher = self._patcher = _Patcher(self._holder)
        patcher.active = True
        if "sklearn.base" in sys.modules:
            patcher.install(sys.modules["sklearn.base"])
        else:
            wrapt.register_post_import_hook(patcher.install, "sklearn.base")
        for module in EVALUATION_ENTRY_POINTS:
            if module in sys.modules:
                patcher.install_entry_points(sys.modules[module])
            else:
                wrapt.register_post_import_hook(patcher.install_entry_points, module)

    def _uninstrument(self, **kwargs: Any) -> None:
        monitor, self._holder.monitor = self._holder.monitor, None
        if self._patcher is not None:
            self._patcher.uninstall()
            self._patcher = None
        if monitor is not None:
            monitor.shutdown()

    def force_flush(self, timeout_millis: float = 30_000) -> bool:
        """End the spans queued so far (after judging their calls) and record everything queued
        into the metric instruments (including calls held for their prediction ids: from here
        on, ids read for earlier calls are not stored)."""
        monitor = self._holder.monitor
        return True if monitor is None else monitor.force_flush(timeout_millis)
