"""One top-level call, from the caller's hand-off to the recording worker: the call's record and
its span, which by default the worker starts (after the call) as well as ends.

The caller keeps what the span needs (tracer, name, attributes, the caller's context and the
start reading of the one clock) and queues it with the call's measurements; no SDK span object
is made on the caller's thread. The worker then starts the span at the call's start time, under
the caller's context (same parent, same sampling input), with the detectors' verdict among its
attributes, and ends it at the call's end time. The span exported is the one an inline span
would have been, minus one thing: it is not the current span while the model runs, so a span
started *inside* the model's code would not be its child. That is why a model that can run code
of yours (see ``Adapter.may_start_spans``), and every model under ``OTEL_MLMON_DETAIL_SPANS``,
keeps a live span, current during the call (``span``; ``OTEL_MLMON_CURRENT_SPAN``).

One object per call, with slots: what waits in the queue is scanned by the garbage collector,
and one object costs it less than a record tuple, a span stand-in and a capture tuple.
:func:`close` ends the call's span, live or not started yet.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span

from otel_mlmon import semconv

_INTERNAL = SpanKind.INTERNAL


class Call:
    """A queued call: metric key, measurements, data capture, detectors, and its span to end."""

    __slots__ = (
        "key", "duration", "rows", "error", "output", "watch", "verdict",  # measurements, judgement
        "data", "sample", "ids", "now",  # data capture (DataPlane.capture), None data: none
        "span", "tracer", "name", "attributes", "parent", "start_ns", "end_ns",  # the span
        "exception", "capture_message",  # a failed call's span
    )  # fmt: skip

    def __init__(self, key: Any, watch: Any, tracer: Any, name: str, attributes: dict[str, Any],
                 parent: Context | None, span: Any = None) -> None:  # fmt: skip
        self.key = key
        self.watch = watch  # the SignalWatch that judges the call (None: no detectors)
        self.tracer = tracer
        self.name = name
        self.attributes = attributes  # this call's own copy
        self.parent = parent
        self.span = span  # a live span (current during the call), or None: started by the worker
        self.duration: Any = None
        self.rows: int | None = None
        self.error: str | None = None
        self.output: Any = None
        self.verdict: Any = None
        self.data: Any = None
        self.sample: Any = None
        self.ids: Any = None
        self.now = 0.0
        self.start_ns = 0
        self.end_ns = 0
        self.exception: BaseException | None = None
        self.capture_message = False

    def trace_id(self) -> int | None:
        """The trace this call's span joins, when known before it starts: a live span's, or the
        caller's span's (a root span's trace is chosen when it starts, and no other span of that
        trace exists before). None for a live span that does not record."""
        span = self.span
        if span is not None:
            return span.get_span_context().trace_id if span.is_recording() else None
        context = get_current_span(self.parent).get_span_context()
        return context.trace_id if context.is_valid else None

    def fail(self, error_type: str, exc: BaseException, capture_message: bool) -> None:
        """The call raised: its span gets ``error.type``, an exception event and an error status
        when it ends (:func:`close`)."""
        self.error = error_type
        self.exception = exc
        self.capture_message = capture_message


def close(call: Call, verdict: dict[str, Any] | None) -> Any:
    """End the call's span at ``call.end_ns`` with the verdict's attributes (if any) and a failed
    call's error details, starting it first when the worker makes it. Returns the span ended;
    the call then holds no span."""
    end_ns = call.end_ns
    error = call.error
    span = call.span
    if span is None:
        attributes = call.attributes
        if verdict:
            attributes.update(verdict)
        if error is not None:
            attributes[semconv.ERROR_TYPE] = error
        span = call.tracer.start_span(call.name, context=call.parent, kind=_INTERNAL, attributes=attributes,
                                      start_time=call.start_ns)  # fmt: skip
        call.parent = call.attributes = None
    else:
        call.span = None
        if span.is_recording():
            if verdict:
                span.set_attributes(verdict)
            if error is not None:
                span.set_attribute(semconv.ERROR_TYPE, error)
    exc = call.exception
    if exc is not None:
        call.exception = None  # its traceback holds the call's frames
        if span.is_recording():
            if call.capture_message:
                span.record_exception(exc, timestamp=end_ns)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            else:
                span.add_event("exception", {"exception.type": error}, timestamp=end_ns)
                span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=end_ns)
    return span
