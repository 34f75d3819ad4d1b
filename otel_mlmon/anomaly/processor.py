"""``AnomalyDetectionSpanProcessor``: anomaly-aware sampling and alerts, in the span pipeline.

It wraps the exporting processor (usually a ``BatchSpanProcessor``). Every span flagged
``ml.anomaly`` by the instrumentation and every span with ERROR status is passed on; normal
spans are passed on at ``sampling_ratio``, decided by trace id so that a normal trace is kept
or dropped whole. Spans that end after an anomalous or error span of the same trace (its
parents, typically) are kept too, counted under that span's reason; spans of the trace that
ended before it were already decided (the memory is bounded: the last 4096 such traces).
Decisions are counted in ``ml.sampling.span.count``. The span that opened an incident (marked
``ml.anomaly.alert`` by the instrumentation's incident layer, see
:class:`~otel_mlmon.anomaly.incident.IncidentDetector`) raises one alert, delivered off the
calling thread to the sinks: an OpenTelemetry log record (WARN, with the span's trace and span
ids), user callbacks, and a webhook. The incident layer decides what one incident is: there is
no cooldown in time unless ``cooldown_s`` sets one.

Contract (as for every SDK ``SpanProcessor``): ``on_end`` runs synchronously on the thread
that ends the span, so it neither blocks nor raises; it does O(1) work under a short lock.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import OrderedDict
from typing import Any, Callable, Iterable, Sequence

from opentelemetry import trace
from opentelemetry._logs import LogRecord, SeverityNumber, get_logger_provider
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation, get_meter
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, SynchronousMultiSpanProcessor
from opentelemetry.trace import StatusCode

from otel_mlmon import _lifecycle, semconv
from otel_mlmon.anomaly.delivery import DROPS
from otel_mlmon.anomaly.sinks import Alert, AlertDispatcher, CallbackSink, WebhookSink
from otel_mlmon.version import __version__

_logger = logging.getLogger("otel_mlmon")
_TRACE_ID_MASK = (1 << 64) - 1
_MAX_INCIDENTS = 10_000
_MAX_ALERT_SERIES = 1024  # (model, signal) series of ml.alert.count; later models count as _other
_MAX_FLAGGED_TRACES = 4096  # traces with an anomalous or error span, whose later spans are kept
_MAX_PENDING_TRACES = 65536  # traces with an instrumented span not yet judged (one per queued call at most)
_MAX_HELD_SPANS = 4096  # spans of such traces held until the judgement, when the ratio would drop them


class LogRecordSink:
    """Emits one OpenTelemetry log record per alert, correlated with the alerting span."""

    kind = "log"  # ml.alert.sink of its failures

    def __init__(self, logger_provider: Any = None) -> None:
        provider = logger_provider if logger_provider is not None else get_logger_provider()
        self._logger = provider.get_logger("otel_mlmon", __version__)

    def __call__(self, alert: Alert) -> None:
        attributes = {**alert.attributes, semconv.ML_MODEL_NAME: alert.model, semconv.ML_ANOMALY_SIGNAL: alert.signal,
                      semconv.ML_ANOMALY_DETECTOR: alert.detector, semconv.ML_ANOMALY_SCORE: alert.score}  # fmt: skip
        self._logger.emit(LogRecord(
            timestamp=int(alert.timestamp * 1e9),
            trace_id=int(alert.trace_id, 16) if alert.trace_id else None,
            span_id=int(alert.span_id, 16) if alert.span_id else None,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED) if alert.trace_id else None,
            severity_text="WARN",
            severity_number=SeverityNumber.WARN,
            body=f"ML anomaly: {alert.signal} of model {alert.model} (score {alert.score:.3f}, {alert.detector})",
            attributes=attributes,
        ))  # fmt: skip


class AnomalyDetectionSpanProcessor(SpanProcessor):
    """Anomaly-aware sampling in front of ``processor``, plus alerts.

    Args:
        processor: the processor that exports (e.g. ``BatchSpanProcessor(OTLPSpanExporter())``).
        sampling_ratio: share of normal spans passed on, in [0, 1]; anomalous and error spans
            are always passed on. 1.0 (default) drops nothing.
        cooldown_s: minimum seconds between two alerts of the same model and signal, on top of
            the incident layer; 0 (default) is off.
        callbacks: called with each :class:`~otel_mlmon.anomaly.sinks.Alert`, off the calling thread.
        webhook_url: POST each alert there as JSON (bounded retry, never blocking).
        log_alerts: emit one OpenTelemetry log record per alert.
        meter_provider, logger_provider: default to the global ones.
    """

    def __init__(
        self,
        processor: SpanProcessor,
        sampling_ratio: float = 1.0,
        cooldown_s: float = 0.0,
        callbacks: Sequence[Callable[[Alert], Any]] = (),
        webhook_url: str | None = None,
        log_alerts: bool = True,
        meter_provider: Any = None,
        logger_provider: Any = None,
    ) -> None:
        if not callable(getattr(processor, "on_end", None)):
            raise ValueError(f"processor must be a SpanProcessor, got {processor!r}")
        if not _is_number(sampling_ratio) or not 0.0 <= sampling_ratio <= 1.0:
            raise ValueError(f"sampling_ratio must be in [0, 1], got {sampling_ratio!r}")
        if not _is_number(cooldown_s) or not cooldown_s >= 0:
            raise ValueError(f"cooldown_s must be a number >= 0, got {cooldown_s!r}")
        callbacks = tuple(callbacks)
        for fn in callbacks:
            if not callable(fn):
                raise ValueError(f"callbacks must be callable, got {fn!r}")
        self.processor = processor
        self.sampling_ratio = float(sampling_ratio)
        self.cooldown_s = float(cooldown_s)
        self._bound = round(self.sampling_ratio * (_TRACE_ID_MASK + 1))
        self._lock = threading.Lock()  # taken on the threads ending spans: held across fork (_lifecycle)
        _lifecycle.register(self, _lifecycle.LEAF, lock="_lock")
        self._incidents: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._flagged: OrderedDict[int, str] = OrderedDict()  # trace id -> reason
        # Tail of the sampling decision (ratio < 1 only): the instrumentation judges a call on its
        # recording worker, after the call's parents (a request span) may have ended. Spans the
        # ratio would drop, of a trace with a call not judged yet, wait here for that judgement.
        self._pending: dict[int, int] = {}  # trace id -> calls not judged yet
        self._held: OrderedDict[int, list] = OrderedDict()  # trace id -> spans waiting
        self._held_count = 0
        sinks: list[Any] = []
        if log_alerts:
            sinks.append(LogRecordSink(logger_provider))
        sinks.extend(CallbackSink(fn) for fn in callbacks)
        if webhook_url:
            sinks.append(WebhookSink(webhook_url, cooldown_s=self.cooldown_s))
        self._dispatcher = AlertDispatcher(sinks) if sinks else None
        self._counts_key = _COUNTS.register(meter_provider)
        if self._dispatcher is not None:  # undelivered alerts: ml.alert.dropped.count
            self._dispatcher.on_dropped = report = DROPS.register(meter_provider)
            for sink in sinks:
                if isinstance(sink, WebhookSink):
                    sink.on_dropped = report
        # Called first by force_flush() and shutdown(): the instrumentation's recording worker
        # ends its spans, and a flush must first let it end those queued so far.
        self.before_flush: list[Callable[[], Any]] = []

    # ------------------------------------------------------------------ SpanProcessor
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.processor.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Span) -> None:
        on_ending = getattr(self.processor, "_on_ending", None)  # SDK >= 1.31
        if on_ending is not None:
            on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        keep, reason = True, "ratio"
        try:
            attributes = span.attributes or {}
            if attributes.get(semconv.ML_ANOMALY) is True:
                reason = "anomaly"
                self._flag(span.context.trace_id, reason)
                if attributes.get(semconv.ML_ANOMALY_ALERT) is True:
                    self._raise_alert(span, attributes)
            elif span.status.status_code is StatusCode.ERROR:
                reason = "error"
                self._flag(span.context.trace_id, reason)
            elif self._bound <= _TRACE_ID_MASK:
                trace_id = span.context.trace_id
                keep = (trace_id & _TRACE_ID_MASK) < self._bound
                if not keep and (self._flagged or self._pending):
                    with self._lock:
                        flagged = self._flagged.get(trace_id)
                        overflow = None
                        if flagged is None and trace_id in self._pending:
                            overflow = self._hold(trace_id, span)
                    if overflow is not None:
                        for oldest, spans in overflow:
                            self._settle(oldest, spans)
                        return  # decided when the trace's pending calls are judged
                    if flagged is not None:
                        keep, reason = True, flagged
            _COUNTS.span(self._counts_key, keep, reason)
        except Exception:  # noqa: BLE001 - never raise into the thread ending the span
            _logger.debug("AnomalyDetectionSpanProcessor failed on a span", exc_info=True)
        if keep:
            self.processor.on_end(span)

    def shutdown(self) -> None:
        self._before_flush()
        self._settle_held()
        if self._dispatcher is not None:
            self._dispatcher.shutdown()
        self.processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1e3
        self._before_flush()
        self._settle_held()
        ok = self._dispatcher.force_flush(timeout_millis) if self._dispatcher is not None else True
        remaining = max(deadline - time.monotonic(), 0.0) * 1e3
        return self.processor.force_flush(int(remaining)) and ok

    # ------------------------------------------------------------------ tail of the decision
    def hold_trace(self, trace_id: int | None) -> None:
        """The instrumentation queued a call of ``trace_id`` for judgement (its span not ended,
        or not started yet): until :meth:`release_trace`, spans of that trace that the ratio
        would drop wait (bounded). None (a root call: no other span of its trace exists yet)
        holds nothing."""
        if trace_id is None or self._bound > _TRACE_ID_MASK or (trace_id & _TRACE_ID_MASK) < self._bound:
            return  # kept by the ratio anyway
        held = None
        with self._lock:
            self._pending[trace_id] = self._pending.get(trace_id, 0) + 1
            if len(self._pending) > _MAX_PENDING_TRACES:  # the oldest stops waiting
                oldest = next(iter(self._pending))
                held = self._stop_waiting(oldest)
        if held:
            self._settle(oldest, held)

    def release_trace(self, trace_id: int) -> None:
        """A call of ``trace_id`` was judged and its span ended: the trace's held spans are kept
        if the trace was flagged (anomaly or error), dropped otherwise, once no call of it is
        pending."""
        if self._bound > _TRACE_ID_MASK or not self._pending:
            return
        with self._lock:
            pending = self._pending.get(trace_id)
            if pending is None:
                return
            if pending > 1:
                self._pending[trace_id] = pending - 1
                return
            held = self._stop_waiting(trace_id)
        if held:
            self._settle(trace_id, held)

    def _stop_waiting(self, trace_id: int) -> list | None:
        """Under ``self._lock``: no call of ``trace_id`` is pending any more; its held spans."""
        del self._pending[trace_id]
        held = self._held.pop(trace_id, None)
        if held:
            self._held_count -= len(held)
        return held

    def _hold(self, trace_id: int, span: ReadableSpan) -> list:
        """Under ``self._lock``: hold ``span``; returns the spans pushed out (the oldest
        trace's, decided without waiting), to settle once the lock is released."""
        self._held.setdefault(trace_id, []).append(span)
        self._held_count += 1
        overflow: list = []
        while self._held_count > _MAX_HELD_SPANS:
            oldest, spans = self._held.popitem(last=False)
            self._held_count -= len(spans)
            overflow.append((oldest, spans))
        return overflow

    def _settle_held(self) -> None:
        """Decide every held span now (flush, shutdown: the calls queued so far were judged)."""
        with self._lock:
            held, self._held, self._held_count = self._held, OrderedDict(), 0
            self._pending.clear()
        for trace_id, spans in held.items():
            self._settle(trace_id, spans)

    def _settle(self, trace_id: int, spans: list) -> None:
        with self._lock:
            reason = self._flagged.get(trace_id)
        for span in spans:
            _COUNTS.span(self._counts_key, reason is not None, reason or "ratio")
            if reason is not None:
                self.processor.on_end(span)

    def _before_flush(self) -> None:
        for hook in list(self.before_flush):
            try:
                hook()
            except Exception:  # noqa: BLE001 - flushing goes on
                _logger.debug("AnomalyDetectionSpanProcessor: a flush hook failed", exc_info=True)

    def _flag(self, trace_id: int, reason: str) -> None:
        """Remember that ``trace_id`` has an anomalous or error span (bounded)."""
        if self._bound > _TRACE_ID_MASK or (trace_id & _TRACE_ID_MASK) < self._bound:
            return  # kept by the ratio anyway
        with self._lock:
            self._flagged.setdefault(trace_id, reason)
            if len(self._flagged) > _MAX_FLAGGED_TRACES:
                self._flagged.popitem(last=False)

    # ------------------------------------------------------------------ alerts
    def _raise_alert(self, span: ReadableSpan, attributes: Any) -> None:
        context = span.context
        self.alert(
            model=str(attributes.get(semconv.ML_MODEL_NAME, "")),
            signal=str(attributes.get(semconv.ML_ANOMALY_SIGNAL, "")),
            detector=str(attributes.get(semconv.ML_ANOMALY_DETECTOR, "")),
            score=_as_float(attributes.get(semconv.ML_ANOMALY_SCORE)),
            attributes={k: attributes[k] for k in (semconv.ML_MODEL_VERSION, semconv.ML_OPERATION,
                                                   semconv.ML_FRAMEWORK) if k in attributes},
            trace_id=format(context.trace_id, "032x"), span_id=format(context.span_id, "016x"),
        )  # fmt: skip

    def alert(self, model: str, signal: str, detector: str, score: float, attributes: dict | None = None,
              trace_id: str | None = None, span_id: str | None = None) -> bool:
        """Raise an alert for the onset of an incident of ``(model, signal)``, unless
        ``cooldown_s`` (off by default) says the last alert of it was too recent.

        Used for the spans that opened an incident and by the instrumentation for signals
        computed off the call (drift, data quality, model quality), which have no span. Never
        blocks; returns whether the alert was raised."""
        now = time.time()
        key = (model, signal)
        with self._lock:
            last = self._incidents.pop(key, None)
            self._incidents[key] = now
            if len(self._incidents) > _MAX_INCIDENTS:
                self._incidents.popitem(last=False)
            if last is not None and now - last < self.cooldown_s:
                return False  # the same incident goes on
        _COUNTS.alert(self._counts_key, key)
        if self._dispatcher is not None:
            self._dispatcher.submit(Alert(key=key, model=model, signal=signal, detector=detector, score=score,
                                          timestamp=now, trace_id=trace_id, span_id=span_id,
                                          attributes=dict(attributes or {})))  # fmt: skip
        return True


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class _Counts:
    """Process-wide span-decision and alert counts, exported once per meter provider (the SDK
    keeps the first callback registered under an instrument name, so a per-processor callback
    would be lost when a second processor shares the provider)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        _lifecycle.register(self, _lifecycle.LEAF, lock="_lock")  # held across fork
        self._spans: dict[tuple, int] = {}
        self._alerts: dict[tuple, int] = {}
        self._registered: set[Any] = set()
        self._keys: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # provider -> key

    def span(self, provider_key: Any, keep: bool, reason: str) -> None:
        key = (provider_key, "kept" if keep else "dropped", reason)
        with self._lock:
            self._spans[key] = self._spans.get(key, 0) + 1

    def alert(self, provider_key: Any, key: tuple[str, str]) -> None:
        key = (provider_key, *key)
        with self._lock:
            if key not in self._alerts and len(self._alerts) >= _MAX_ALERT_SERIES:  # model names: caller's
                key = (provider_key, semconv.OTHER, key[2])
            self._alerts[key] = self._alerts.get(key, 0) + 1

    def register(self, meter_provider: Any) -> Any:
        """Export the counts of processors using ``meter_provider``; returns their key."""
        with self._lock:
            if meter_provider is None:
                provider_key: Any = "global"
                if provider_key in self._registered:
                    return provider_key
                self._registered.add(provider_key)
            else:
                provider_key = self._keys.get(meter_provider)
                if provider_key is not None:
                    return provider_key
                provider_key = self._keys[meter_provider] = object()
        meter = get_meter("otel_mlmon", __version__, meter_provider)

        def observe_spans(options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                spans = [(k, n) for k, n in self._spans.items() if k[0] == provider_key]
            return [Observation(n, {semconv.ML_SAMPLING_DECISION: d, semconv.ML_SAMPLING_REASON: r})
                    for (_, d, r), n in spans]  # fmt: skip

        def observe_alerts(options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                alerts = [(k, n) for k, n in self._alerts.items() if k[0] == provider_key]
            return [Observation(n, {semconv.ML_MODEL_NAME: m, semconv.ML_ANOMALY_SIGNAL: sig})
                    for (_, m, sig), n in alerts]  # fmt: skip

        meter.create_observable_counter(
            semconv.SAMPLING_SPAN_COUNT.name, [observe_spans], unit=semconv.SAMPLING_SPAN_COUNT.unit,
            description=semconv.SAMPLING_SPAN_COUNT.description,
        )  # fmt: skip
        meter.create_observable_counter(
            semconv.ALERT_COUNT.name, [observe_alerts], unit=semconv.ALERT_COUNT.unit,
            description=semconv.ALERT_COUNT.description,
        )  # fmt: skip
        return provider_key


_COUNTS = _Counts()


# ---------------------------------------------------------------------- installation
_installed: dict[int, tuple[Any, tuple, AnomalyDetectionSpanProcessor]] = {}
_install_lock = threading.Lock()


def install(tracer_provider: Any, settings: Any, meter_provider: Any = None) -> AnomalyDetectionSpanProcessor | None:
    """Put an ``AnomalyDetectionSpanProcessor`` in front of the SDK provider's processors.

    Used by the instrumentors (so it happens under ``opentelemetry-instrument`` too). The SDK
    has no public way to wrap processors already added, so this reaches into the provider's
    multi-processor; if that is not an SDK provider of the expected shape, nothing changes
    and a debug message says so. Idempotent per provider.
    """
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    active = getattr(provider, "_active_span_processor", None)
    processors = getattr(active, "_span_processors", None)
    lock = getattr(active, "_lock", None)
    if not isinstance(processors, tuple) or lock is None:
        _logger.debug("otel-mlmon: %r is not an SDK tracer provider; anomaly processor not installed", provider)
        return None
    with _install_lock, lock:
        processors = active._span_processors  # noqa: SLF001
        for existing in processors:
            if isinstance(existing, AnomalyDetectionSpanProcessor):
                return existing
        if not processors:
            return None
        if len(processors) == 1:
            inner = processors[0]
        else:
            inner = SynchronousMultiSpanProcessor()
            for processor in processors:
                inner.add_span_processor(processor)
        wrapper = AnomalyDetectionSpanProcessor(
            inner, sampling_ratio=settings.sampling_ratio, cooldown_s=settings.alert_cooldown_s,
            webhook_url=settings.alert_webhook_url, log_alerts=settings.alert_logs,
            meter_provider=meter_provider,
        )  # fmt: skip
        active._span_processors = (wrapper,)  # noqa: SLF001
        _installed[id(provider)] = (provider, processors, wrapper)
        return wrapper


def uninstall(tracer_provider: Any) -> None:
    """Undo :func:`install` for this provider: the processors it wrapped take the wrapper's
    place again (processors added since stay, after them). Idempotent."""
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    with _install_lock:
        entry = _installed.get(id(provider))
        if entry is None or entry[0] is not provider:
            return
        del _installed[id(provider)]
        _, processors, wrapper = entry
        active = provider._active_span_processor  # noqa: SLF001
        with active._lock:  # noqa: SLF001
            current = active._span_processors  # noqa: SLF001
            if wrapper in current:
                index = current.index(wrapper)
                active._span_processors = current[:index] + processors + current[index + 1 :]  # noqa: SLF001
    if wrapper._dispatcher is not None:  # noqa: SLF001
        wrapper._dispatcher.shutdown(timeout_millis=5_000)  # noqa: SLF001
