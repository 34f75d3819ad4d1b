"""The per-call hot path, shared by every framework.

A wrapped inference method does, per top-level call: three context-variable reads, one cached
state lookup, a copy of the cached span attributes, two ``perf_counter_ns`` reads (the one clock
of span and metric) and one ``deque.append`` of the call's record with its span, not started
yet (:class:`~otel_mlmon._internal.call.Call`). Everything else happens on the
recorder's worker: the per-call detectors, in call order, judge the call; the span is started
at the call's start time under the caller's context, with the verdict among its attributes,
and ended at the call's end time; then metric aggregation and output statistics. A model that
can start spans of its own (custom code in a scikit-learn pipeline), or any model under
``OTEL_MLMON_DETAIL_SPANS``, gets a live span, current during the call, which the worker ends
the same way (``OTEL_MLMON_CURRENT_SPAN``). Nested calls (a pipeline's steps, an ensemble's
members, ``super()`` calls) and calls made while fitting or evaluating (``score``, scorers,
cross-validation) pass straight through.

Guarantee: the wrapped method is called exactly once, with the same arguments, and its
result or exception reaches the caller unchanged. Failures inside otel-mlmon are caught,
counted in ``ml.monitor.error.count`` and logged once.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from contextvars import ContextVar
from time import perf_counter, perf_counter_ns
from typing import Any, Callable

import numpy as np
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, get_current, get_value
from opentelemetry.metrics import get_meter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from otel_mlmon import _lifecycle, semconv
from otel_mlmon._internal.config import Settings
from otel_mlmon._internal import clock, span_flush
from otel_mlmon._internal.call import Call, close
from otel_mlmon._internal.recorder import acquire_recorder, error_type_of, release_recorder
from otel_mlmon._internal.resources import register_resource_metrics
from otel_mlmon._internal.signals import SignalWatch
from otel_mlmon._internal.state import Adapter, OpInfo, forget, new_generation, state_of
from otel_mlmon.version import __version__

INFERENCE = "inference"
TRAINING = "training"
EVALUATION = "evaluation"

# What the current thread/task is inside of: None (top level), INFERENCE, TRAINING or EVALUATION.
# Shared by all frameworks, so a torch module called from a scikit-learn estimator is nested.
ACTIVE: ContextVar[str | None] = ContextVar("otel_mlmon_active", default=None)

_logger = logging.getLogger("otel_mlmon")
_INTERNAL = SpanKind.INTERNAL
_MAX_WATCHES = 1000  # detector sets kept per monitor (model x operation), least recently attached evicted
_SCOPE = "otel_mlmon"
# The anomaly processor installed on a tracer provider is shared by the instrumentors that use
# that provider (scikit-learn and PyTorch); the last one to leave removes it.
_PROCESSOR_USERS: dict[int, int] = {}
_PROCESSOR_LOCK = threading.Lock()

def shape_of_first_argument(args: tuple, kwargs: dict, attributes: dict[str, Any]) -> int | None:
    """Rows and columns of ``X`` without touching its values (never iterates it)."""
    X = args[0] if args else kwargs.get("X")
    shape = getattr(X, "shape", None)
    if isinstance(shape, tuple) and shape and isinstance(shape[0], int):
        rows = attributes[semconv.ML_BATCH_SIZE] = shape[0]
        if len(shape) == 2 and isinstance(shape[1], int):
            attributes[semconv.ML_INPUT_FEATURE_COUNT] = shape[1]
        return rows
    if isinstance(X, (list, tuple)):
        rows = attributes[semconv.ML_BATCH_SIZE] = len(X)
        first = X[0] if X else None
        if isinstance(first, (list, tuple)):
            attributes[semconv.ML_INPUT_FEATURE_COUNT] = len(first)
        return rows
    return None


class Monitor:
    """Tracer, recorder and settings of one instrumentor; ``adapter`` knows its framework."""

    def __init__(
        self,
        adapter: Adapter,
        settings: Settings,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: Any = None,
    ) -> None:
        new_generation()  # cached per-model state of earlier providers is rebuilt (issue 17)
        self.adapter = adapter
        self.settings = settings
        self._closed = False
        self.top_level = frozenset(settings.operations)
        self.detail_spans = settings.detail_spans
        self.capture_message = settings.capture_exception_message
        self.tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider)
        meter = get_meter(_SCOPE, __version__, meter_provider)
        self.recorder = acquire_recorder(meter, meter_provider, settings, adapter.name)
        self.anomaly_detection = settings.anomaly_detection
        self._watches: OrderedDict[Any, SignalWatch] = OrderedDict()  # LRU, <= _MAX_WATCHES
        self._watches_lock = threading.Lock()
        # The detectors' locks are taken on the callers' threads: held across fork, so a forked
        # child never finds one locked (otel_mlmon._lifecycle).
        _lifecycle.register(self, _lifecycle.LEAF,
                            lock=lambda m: [m._watches_lock, *[w._lock for w in list(m._watches.values())]])  # fmt: skip
        self._processor: Any = None
        if settings.anomaly_processor:
            try:
                from otel_mlmon.anomaly.processor import install  # noqa: PLC0415

                self._processor = install(tracer_provider, settings, meter_provider)
                if self._processor is not None:
                    self.recorder.alerter = self._processor
                    if self._processor.sampling_ratio < 1.0:
                        self.recorder.tail = self._processor
                    with _PROCESSOR_LOCK:
                        _PROCESSOR_USERS[id(self._processor)] = _PROCESSOR_USERS.get(id(self._processor), 0) + 1
            except Exception as exc:  # noqa: BLE001 - tracing goes on without it
                self.recorder.internal_error("anomaly_processor", exc)
        self._tracer_provider = tracer_provider
        self._flush_hook: Any = None
        try:
            self._flush_hook = span_flush.register(tracer_provider, self.recorder, self._processor)
        except Exception as exc:  # noqa: BLE001 - spans still end at the worker's next drain
            self.recorder.internal_error("span_flush", exc)
        self.resources = register_resource_metrics(meter, meter_provider, settings)

    def force_flush(self, timeout_millis: float = 30_000) -> bool:
        """Drain the queue into the instruments and hand held calls to the quality hub."""
        ok = self.recorder.flush()
        try:
            self.recorder.data.flush_held()
        except Exception as exc:  # noqa: BLE001
            self.recorder.internal_error("force_flush", exc)
            return False
        return ok

    def shutdown(self, timeout_millis: float = 30_000) -> bool:
        """Idempotent: the shared recorder stops when its last instrumentor leaves."""
        if self._closed:
            return True
        self._closed = True
        self.recorder.flush()  # end the queued spans while every processor is still in place
        try:
            span_flush.unregister(self._tracer_provider, self._flush_hook, self.recorder)
        except Exception as exc:  # noqa: BLE001
            self.recorder.internal_error("span_flush", exc)
        new_generation()
        processor, self._processor = self._processor, None
        if processor is not None:
            with _PROCESSOR_LOCK:
                users = _PROCESSOR_USERS.pop(id(processor), 1) - 1
                if users > 0:
                    _PROCESSOR_USERS[id(processor)] = users
            if users <= 0:
                try:
                    from otel_mlmon.anomaly.processor import uninstall  # noqa: PLC0415

                    uninstall(self._tracer_provider)
                except Exception as exc:  # noqa: BLE001
                    self.recorder.internal_error("anomaly_processor", exc)
        return release_recorder(self.recorder, timeout_millis)

    # ------------------------------------------------------------------ spans
    def start(self, model: Any, operation: str, args: tuple, kwargs: dict):
        """A live span of a nested call (``detail_spans``), started now."""
        info = state_of(model, self.adapter).op(operation, model)
        attributes = info.attributes.copy()
        rows = self.adapter.inputs(args, kwargs, attributes)
        span = self.tracer.start_span(info.span_name, kind=_INTERNAL, attributes=attributes)
        return span, info, rows

    def _prepare(self, info: OpInfo, model: Any) -> bool:
        """One-off, before the first call of a model operation is timed: its detectors, and
        whether its span is current while it runs (``OTEL_MLMON_CURRENT_SPAN``): always under
        ``detail_spans``; under ``auto``, when the model can run code that starts spans."""
        if info.watch is None and self.anomaly_detection:
            self._watch(info)
        mode = self.settings.current_span
        current = self.detail_spans or mode == "always"
        if not current and mode == "auto":
            try:
                current = bool(self.adapter.may_start_spans(model))
            except Exception as exc:  # noqa: BLE001 - unknown: the span is current, as always correct
                self.recorder.internal_error("current_span", exc)
                current = True
        info.current = current
        return current

    def traced_call(
        self, original: Callable, operation: str, model: Any, args: tuple, kwargs: dict, gpu: Any = None
    ) -> Any:
        """A top-level inference call: span, timing, record. Calls ``original`` exactly once.

        One clock serves span and metric: ``perf_counter_ns`` before and after the call, the
        span's start and end times are those readings on the wall clock (``clock.offset_ns``),
        so the span lasts exactly the duration recorded. By default no span object is made
        here: the call's :class:`Call` keeps the caller's context, the attributes and the start
        time, and the recording worker starts the span, puts the detectors' verdict on it and
        ends it (``_internal/judgement.py``). A model that can start spans of its own gets a live
        span, current during the call, that the worker ends the same way.
        ``gpu`` (PyTorch on CUDA only) times asynchronous GPU work, see ``CudaTiming``.
        """
        try:
            info = state_of(model, self.adapter).op(operation, model)
            current = info.current
            if current is None:
                current = self._prepare(info, model)
            attributes = info.attributes.copy()
            rows = self.adapter.inputs(args, kwargs, attributes)
            offset = clock.offset_ns  # one offset for both ends: the span lasts the duration
            if current:
                started = perf_counter_ns()
                span = self.tracer.start_span(info.span_name, kind=_INTERNAL, attributes=attributes,
                                              start_time=started + offset)  # fmt: skip
                call = Call(info.key, info.watch, None, "", None, None, span)
                context_token = attach(set_span_in_context(span))
            else:
                call = Call(info.key, info.watch, self.tracer, info.span_name, attributes, get_current())
                context_token = None
            call.rows = rows
        except Exception as exc:  # noqa: BLE001
            self.recorder.internal_error("start", exc)
            return original(model, *args, **kwargs)
        active_token = ACTIVE.set(INFERENCE)
        gpu_state = None if gpu is None else self._gpu_begin(gpu)
        if context_token is None:
            started = perf_counter_ns()
        call.start_ns = started + offset
        try:
            result = original(model, *args, **kwargs)
        except BaseException as exc:
            ended = perf_counter_ns()
            ACTIVE.reset(active_token)
            if context_token is not None:
                detach(context_token)
            call.end_ns = ended + offset
            self.fail(call, exc, ended - started)
            raise
        ended = perf_counter_ns()
        duration: Any = (ended - started) * 1e-9
        if gpu is not None:
            duration = self._gpu_end(gpu, gpu_state, duration, started * 1e-9)
        ACTIVE.reset(active_token)
        if context_token is not None:
            detach(context_token)
        call.end_ns = ended + offset
        call.duration = duration
        self.finish(call, info, result, model, args, kwargs)
        return result

    def _gpu_begin(self, gpu: Any) -> Any:
        try:
            return gpu.begin()
        except Exception as exc:  # noqa: BLE001
            self.recorder.internal_error("cuda_timing", exc)
            return None

    def _gpu_end(self, gpu: Any, state: Any, duration: float, started: float) -> Any:
        try:
            return gpu.end(state, duration, started, perf_counter)
        except Exception as exc:  # noqa: BLE001
            self.recorder.internal_error("cuda_timing", exc)
            return duration

    def _watch(self, info: OpInfo) -> SignalWatch | None:
        """The detectors of this model and operation (shared by instances of one name)."""
        watch = info.watch
        if watch is None and self.anomaly_detection:
            with self._watches_lock:
                watch = self._watches.get(info.key)
                if watch is None:
                    watch = self._watches[info.key] = SignalWatch(self.settings.anomaly_signals, self._make_detector)
                    if len(self._watches) > _MAX_WATCHES:  # a live model keeps its own (info.watch)
                        self._watches.popitem(last=False)
                else:
                    self._watches.move_to_end(info.key)
            info.watch = watch
        return watch

    def _data_state(self, info: OpInfo, model: Any) -> Any:
        """Drift and quality state of this model operation, once (False: nothing to do)."""
        settings = self.settings
        data: Any = False
        try:
            if info.key.output is not None or settings.data_monitoring:
                data = self.recorder.data.state_for(info, model)
                if data is not None and data.mode is None and not data.profile_inputs:
                    data = False
        except Exception as exc:  # noqa: BLE001
            self.recorder.internal_error("data_state", exc)
            data = False
        info.data = data if data is not None else False
        return info.data

    def after_fit(self, model: Any, args: tuple, kwargs: dict) -> None:
        """Attach a reference profile of the training data to a model just fitted (never raises)."""
        if not (self.settings.profile_on_fit and self.settings.data_monitoring) or not hasattr(model, "predict"):
            return
        try:
            from otel_mlmon._internal.model_profiles import capture_profile, limits_of  # noqa: PLC0415

            X = args[0] if args else kwargs.get("X")
            y = args[1] if len(args) > 1 else kwargs.get("y")
            tabular = (isinstance(X, np.ndarray) and X.ndim == 2) or (hasattr(X, "iloc") and hasattr(X, "columns"))
            if not tabular:
                return  # sparse matrices, lists, dicts ...: no profile (predict-time data quality still works)

            def run_predict(rows: Any) -> Any:
                token = ACTIVE.set(TRAINING)  # the instrumentation ignores it
                try:
                    return model.predict(rows)
                finally:
                    ACTIVE.reset(token)

            capture_profile(model, X, y, run_predict, limits_of(self.settings))
        except (TypeError, ValueError) as exc:  # data the profile does not take (e.g. nested objects)
            _logger.debug("otel-mlmon: no reference profile for %s: %s", type(model).__name__, exc)
        except Exception as exc:  # noqa: BLE001 - fitting goes on without a profile
            self.recorder.internal_error("profile_on_fit", exc)

    def _make_detector(self) -> Any:
        from otel_mlmon.anomaly import default_detector  # noqa: PLC0415 - loaded on first use

        detector = default_detector()
        if self.settings.anomaly_threshold is not None:
            detector.threshold = self.settings.anomaly_threshold
        return detector

    def finish(self, call: Call, info: OpInfo, result: Any, model: Any, args: tuple, kwargs: dict) -> None:
        """Hand the call to the recording worker, which judges it, ends its span and records it."""
        try:
            mode = info.key.output
            if mode is not None:
                call.output = self.adapter.snapshot(result, mode)
            data = info.data
            if data is None:
                data = self._data_state(info, model)
            if data is not False:
                self.recorder.data.capture(call, data, args, kwargs, call.rows, call.end_ns * 1e-9)
            self.recorder.submit(call)
        except Exception as exc:  # noqa: BLE001
            self.recorder.internal_error("finish", exc)
            _end_quietly(call)

    def fail(self, call: Call, exc: BaseException, elapsed_ns: int) -> None:
        try:
            call.fail(error_type_of(exc), exc, self.capture_message)
            call.duration = elapsed_ns * 1e-9
            self.recorder.submit(call)
        except Exception as internal:  # noqa: BLE001
            self.recorder.internal_error("fail", internal)
            _end_quietly(call)

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


def _end_quietly(call: Call) -> None:
    """End the span of a call that could not be handed to the worker (never raises)."""
    try:
        close(call, None)
    except Exception:  # noqa: BLE001, S110 - already counted by the caller
        pass


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
        return monitor.traced_call(original, operation, self, args, kwargs)

    setattr(wrapper, WRAPPED_MARK, True)
    return wrapper


def training_wrapper(original: Callable, holder: Holder) -> Callable:
    """Wrap a training method (``fit`` ...): inference calls made inside it are not traced.
    After a top-level ``fit``, the model gets a reference profile (``OTEL_MLMON_PROFILE_ON_FIT``)."""
    name = original.__name__

    @functools.wraps(original)
    def wrapper(self, *args, **kwargs):
        if holder.monitor is None:
            return original(self, *args, **kwargs)
        token = ACTIVE.set(TRAINING) if ACTIVE.get() is None else None
        try:
            result = original(self, *args, **kwargs)
        finally:
            if token is not None:
                ACTIVE.reset(token)
            forget(self)
        monitor = holder.monitor
        if token is not None and monitor is not None and name == "fit":
            monitor.after_fit(self, args, kwargs)
        return result

    setattr(wrapper, WRAPPED_MARK, True)
    return wrapper


def evaluation_wrapper(original: Callable, holder: Holder) -> Callable:
    """Wrap an evaluation entry point (an estimator's ``score``, a scorer, a cross-validation
    fold). Evaluation is not production traffic: the inference calls made inside it open no
    span, record no metric and feed no detector, and the models fitted inside it (the clones of
    cross-validation) get no reference profile. Works for functions and methods alike."""

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if holder.monitor is None or ACTIVE.get() is not None:
            return original(*args, **kwargs)
        token = ACTIVE.set(EVALUATION)
        try:
            return original(*args, **kwargs)
        finally:
            ACTIVE.reset(token)

    setattr(wrapper, WRAPPED_MARK, True)
    return wrapper


def is_wrapper(function: Any) -> bool:
    return getattr(function, WRAPPED_MARK, False) is True
