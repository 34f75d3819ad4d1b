"""The per-call hot path, shared by every framework.

A wrapped inference method does, per top-level call: two context-variable reads, one cached
state lookup, one span start/end with its attributes, two ``perf_counter`` reads and one
``deque.append``. Everything else (metric aggregation, output statistics) happens on the
recorder's worker. Nested calls (a pipeline's steps, an ensemble's members, ``super()``
calls) and calls made while fitting pass straight through.

Guarantee: the wrapped method is called exactly once, with the same arguments, and its
result or exception reaches the caller unchanged. Failures inside otel-mlmon are caught,
counted in ``ml.monitor.error.count`` and logged once.
"""

from __future__ import annotations

import functools
from contextvars import ContextVar
from time import perf_counter
from typing import Any, Callable

import numpy as np
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, get_value
from opentelemetry.metrics import get_meter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from otel_mlmon import semconv
from otel_mlmon._internal.config import Settings
from otel_mlmon._internal.recorder import COPY_LIMIT, Recorder, error_type_of
from otel_mlmon._internal.state import forget, state_of
from otel_mlmon.version import __version__

INFERENCE = "inference"
TRAINING = "training"

# What the current thread/task is inside of: None (top level), INFERENCE or TRAINING.
# Shared by all frameworks, so a torch module called from a scikit-learn estimator is nested.
ACTIVE: ContextVar[str | None] = ContextVar("otel_mlmon_active", default=None)

_INTERNAL = SpanKind.INTERNAL
_SCOPE = "otel_mlmon"

ShapeOf = Callable[[tuple, dict], "tuple[int | None, int | None]"]


def shape_of_first_argument(args: tuple, kwargs: dict) -> tuple[int | None, int | None]:
    """Rows and columns of ``X`` without touching its values (never iterates it)."""
    X = args[0] if args else kwargs.get("X")
    shape = getattr(X, "shape", None)
    if isinstance(shape, tuple) and shape and isinstance(shape[0], int):
        return shape[0], (shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None)
    if isinstance(X, (list, tuple)):
        first = X[0] if X else None
        return len(X), (len(first) if isinstance(first, (list, tuple)) else None)
    return None, None


class Monitor:
    """Tracer, recorder and settings of one instrumentor."""

    def __init__(
        self,
        framework: str,
        settings: Settings,
        kind_of: Callable[[Any], str | None],
        shape_of: ShapeOf = shape_of_first_argument,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: Any = None,
    ) -> None:
        self.framework = framework
        self.settings = settings
        self.kind_of = kind_of
        self.shape_of = shape_of
        self.top_level = frozenset(settings.operations)
        self.detail_spans = settings.detail_spans
        self.capture_message = settings.capture_exception_message
        self.tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider)
        self.recorder = Recorder(get_meter(_SCOPE, __version__, meter_provider), settings)

    def shutdown(self, timeout_millis: float = 30_000) -> bool:
        return self.recorder.shutdown(timeout_millis)

    # ------------------------------------------------------------------ spans
    def start(self, model: Any, operation: str, args: tuple, kwargs: dict):
        info = state_of(model, self.framework, self.kind_of).op(operation)
        rows, columns = self.shape_of(args, kwargs)
        attributes = info.attributes.copy()
        if rows is not None:
            attributes[semconv.ML_BATCH_SIZE] = rows
        if columns is not None:
            attributes[semconv.ML_INPUT_FEATURE_COUNT] = columns
        span = self.tracer.start_span(info.span_name, kind=_INTERNAL, attributes=attributes)
        return span, info, rows

    def finish(self, span, info, rows, result: Any, duration: float) -> None:
        try:
            span.end()
            output = None
            # Output statistics read plain arrays only: tuples (``return_std=True``) and lists
            # of per-output arrays (multi-output ``predict_proba``) are not predictions alone.
            if info.key.output is not None and type(result) is np.ndarray:
                output = result.copy() if result.size <= COPY_LIMIT else result
            self.recorder.submit((info.key, duration, rows, None, output))
        except Exception as exc:  # noqa: BLE001
            self.recorder.internal_error("finish", exc)

    def fail(self, span, info, rows, exc: BaseException, duration: float) -> None:
        try:
            etype = error_type_of(exc)
            span.set_attribute(semconv.ERROR_TYPE, etype)
            if self.capture_message:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            else:
                span.add_event("exception", {"exception.type": etype})
                span.set_status(Status(StatusCode.ERROR, etype))
            span.end()
            self.recorder.submit((info.key, duration, rows, etype, None))
        except Exception as internal:  # noqa: BLE001
            self.recorder.internal_error("fail", internal)

    def detail(self, original: Callable, operation: str, model: Any, args: tuple, kwargs: dict) -> Any:
        """A nested call under ``detail_spans``: a child span, no metrics."""
        try:
            span, _, _ = self.start(model, operation, args, kwargs)
            token = attach(set_span_in_context(span))
        except Exception as exc:  # noqa: BLE001
            self.recorder.internal_error("detail", exc)
            return original(model, *args, **kwargs)
        try:
            return original(model, *args, **kwargs)
        except BaseException as exc:
            try:
                span.set_attribute(semconv.ERROR_TYPE, error_type_of(exc))
                span.set_status(Status(StatusCode.ERROR, error_type_of(exc)))
            except Exception as internal:  # noqa: BLE001
                self.recorder.internal_error("detail", internal)
            raise
        finally:
            detach(token)
            span.end()


class Holder:
    """The instrumentor's current monitor; ``None`` turns every wrapper into a pass-through."""

    __slots__ = ("monitor",)

    def __init__(self) -> None:
        self.monitor: Monitor | None = None


WRAPPED_MARK = "__otel_mlmon_wrapper__"


def inference_wrapper(original: Callable, operation: str, holder: Holder) -> Callable:
    """Wrap one inference method (``predict`` ...) of one class."""

    @functools.wraps(original)
    def wrapper(self, *args, **kwargs):
        monitor = holder.monitor
        if monitor is None:
            return original(self, *args, **kwargs)
        active = ACTIVE.get()
        if active is not None:
            if active is INFERENCE and monitor.detail_spans:
                return monitor.detail(original, operation, self, args, kwargs)
            return original(self, *args, **kwargs)
        if operation not in monitor.top_level or get_value(_SUPPRESS_INSTRUMENTATION_KEY):
            return original(self, *args, **kwargs)
        try:
            span, info, rows = monitor.start(self, operation, args, kwargs)
            context_token = attach(set_span_in_context(span))
        except Exception as exc:  # noqa: BLE001
            monitor.recorder.internal_error("start", exc)
            return original(self, *args, **kwargs)
        active_token = ACTIVE.set(INFERENCE)
        started = perf_counter()
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            duration = perf_counter() - started
            ACTIVE.reset(active_token)
            detach(context_token)
            monitor.fail(span, info, rows, exc, duration)
            raise
        duration = perf_counter() - started
        ACTIVE.reset(active_token)
        detach(context_token)
        monitor.finish(span, info, rows, result, duration)
        return result

    setattr(wrapper, WRAPPED_MARK, True)
    return wrapper


def training_wrapper(original: Callable, holder: Holder) -> Callable:
    """Wrap a training method (``fit`` ...): inference calls made inside it are not traced."""

    @functools.wraps(original)
    def wrapper(self, *args, **kwargs):
        if holder.monitor is None:
            return original(self, *args, **kwargs)
        token = ACTIVE.set(TRAINING) if ACTIVE.get() is None else None
        try:
            return original(self, *args, **kwargs)
        finally:
            if token is not None:
                ACTIVE.reset(token)
            forget(self)

    setattr(wrapper, WRAPPED_MARK, True)
    return wrapper


def is_wrapper(function: Any) -> bool:
    return getattr(function, WRAPPED_MARK, False) is True
