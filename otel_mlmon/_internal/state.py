"""Per-model cached state, so that the per-call hot path does no repeated introspection.

A model's state is computed on its first instrumented call and dropped when the model is
garbage collected, refitted, or renamed with :func:`otel_mlmon.set_model_info`, and it is
rebuilt after an instrumentor starts or stops (:func:`new_generation`): a model's cached detectors
and drift state belong to the providers it was first called under, so a model called before
``uninstrument()`` then ``instrument(new providers)`` gets state of the new providers. The cache is
keyed by ``id(model)`` and guarded by a weak reference, so it never keeps a model alive and it
never writes into the model (scikit-learn checks that ``predict`` leaves ``__dict__`` alone).
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple, Protocol

from otel_mlmon import semconv
from otel_mlmon._internal.model_info import get_model_info

# What the recorder does with a call's output.
OUT_LABELS = "labels"  # classifier predict: class counts
OUT_PROBA = "proba"  # predict_proba: probability of the predicted class
OUT_VALUES = "values"  # regressor predict: value summary
OUT_LOGITS = "logits"  # (batch, classes) scores of a classification module: argmax + confidence


class Adapter(Protocol):
    """What the shared hot path needs to know about one framework. Every method is O(1)."""

    name: str

    def describe(self, model: Any, operation: str) -> tuple[str | None, dict[str, Any]]:
        """Once per model and operation: the output mode and extra static span attributes."""

    def inputs(self, args: tuple, kwargs: dict, attributes: dict[str, Any]) -> int | None:
        """Per call: add input attributes (batch size ...) and return the row count."""

    def snapshot(self, result: Any, mode: str) -> Any:
        """Per call: what the recorder reads for output statistics, or None."""

    def may_start_spans(self, model: Any) -> bool:
        """Once per model and operation: can the model run code that starts spans (code outside
        the known ML libraries)? Then its span is current while it runs."""


class MetricKey(NamedTuple):
    """Identifies one model and operation in the recorder; hashable, cheap to compare."""

    name: str
    version: str | None
    framework: str
    operation: str
    output: str | None


class OpInfo:
    """What a model's operation needs per call, computed once."""

    __slots__ = ("span_name", "attributes", "key", "watch", "data", "current")

    def __init__(self, span_name: str, attributes: dict[str, Any], key: MetricKey) -> None:
        self.span_name = span_name
        self.attributes = attributes  # static span attributes; copied per call
        self.key = key
        self.watch: Any = None  # the SignalWatch of this key, attached on first use
        self.data: Any = None  # DataState (drift, quality) on first use; False when there is none
        self.current: bool | None = None  # span current during the call (decided on first use)


class ModelState:
    __slots__ = ("ref", "name", "version", "class_name", "task", "adapter", "ops", "generation")

    def __init__(self, model: Any, adapter: Adapter) -> None:
        # A torch.compile wrapper (OptimizedModule) is named after the module it compiled.
        target = getattr(model, "_orig_mod", model)
        info = get_model_info(target)
        cls = type(target)
        self.ref: weakref.ref | None = None
        self.generation = _GENERATION
        # set_model_info validates; a model unpickled from elsewhere may carry anything
        self.name = _text(info.name) or cls.__name__
        self.version = _text(info.version)
        self.task = info.task
        self.class_name = f"{cls.__module__}.{cls.__qualname__}"
        self.adapter = adapter
        self.ops: dict[str, OpInfo] = {}

    def op(self, operation: str, model: Any) -> OpInfo:
        info = self.ops.get(operation)
        if info is None:
            info = self.ops[operation] = self._build(operation, model)
        return info

    def _build(self, operation: str, model: Any) -> OpInfo:
        attributes: dict[str, Any] = {
            semconv.ML_MODEL_NAME: self.name,
            semconv.ML_MODEL_CLASS: self.class_name,
            semconv.ML_FRAMEWORK: self.adapter.name,
            semconv.ML_OPERATION: operation,
        }
        if self.version is not None:
            attributes[semconv.ML_MODEL_VERSION] = self.version
        try:
            output, extra = self.adapter.describe(model, operation)
        except Exception:  # noqa: BLE001 - a model's tag machinery may fail; all of this is optional
            output, extra = None, {}
        attributes.update(extra)
        key = MetricKey(self.name, self.version, self.adapter.name, operation, output)
        return OpInfo(f"{operation} {self.name}", attributes, key)


MAX_NAME_LENGTH = 256  # characters of a model name or version (as set_model_info enforces)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return (value if isinstance(value, str) else str(value))[:MAX_NAME_LENGTH] or None
    except Exception:  # noqa: BLE001 - an object whose __str__ fails: the class name is used
        return None


_STATES: dict[int, ModelState] = {}
_GENERATION = 0  # bumped when an instrumentor starts or stops: cached states older than it are rebuilt


def new_generation() -> None:
    """Invalidate every cached state (their OpInfo hold detectors and data-plane state of the
    providers they were built under); each is rebuilt at its model's next call."""
    global _GENERATION
    _GENERATION += 1


def state_of(model: Any, adapter: Adapter) -> ModelState:
    """The cached state of ``model``, built on first use (and again after :func:`new_generation`)."""
    state = _STATES.get(id(model))
    if state is not None and state.ref is not None and state.ref() is model and state.generation == _GENERATION:
        return state
    state = ModelState(model, adapter)
    key = id(model)

    def _evict(ref: weakref.ref, key: int = key) -> None:
        current = _STATES.get(key)
        if current is not None and current.ref is ref:
            _STATES.pop(key, None)

    try:
        state.ref = weakref.ref(model, _evict)
    except TypeError:  # not weak-referenceable (__slots__ without __weakref__): not cached
        return state
    _STATES[key] = state
    return state


def forget(model: Any) -> None:
    """Drop the cached state of ``model`` (after fit or renaming)."""
    state = _STATES.get(id(model))
    if state is not None and state.ref is not None and state.ref() is model:
        _STATES.pop(id(model), None)
