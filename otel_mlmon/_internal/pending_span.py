"""A call's span, started on the recording worker after the call (the default for models that
cannot start spans of their own).

The caller keeps what the span needs (tracer, name, attributes, the caller's context and the
start reading of the one clock) and queues it with the call's record; no SDK span object is made
on the caller's thread. The worker then starts the span at the call's start time, under the
caller's context (same parent, same sampling input), with the detectors' verdict among its
attributes, and ends it at the call's end time. The span exported is the one an inline span would
have been, minus one thing: it is not the current span while the model runs, so a span started
*inside* the model's code would not be its child. That is why a model that can run code of yours
(see ``Adapter.may_start_spans``), and every model under ``OTEL_MLMON_DETAIL_SPANS``, keeps a
live span made current during the call (``OTEL_MLMON_CURRENT_SPAN``).

:func:`close` ends either kind: a :class:`PendingSpan` or a live span started on the caller.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span

from otel_mlmon import semconv

_INTERNAL = SpanKind.INTERNAL


class PendingSpan:
    """What a span not started yet needs; the worker starts and ends it (:func:`close`)."""

    __slots__ = ("tracer", "name", "attributes", "parent", "start_ns", "error", "exception", "capture_message")

    def __init__(self, tracer: Any, name: str, attributes: dict[str, Any], parent: Context, start_ns: int) -> None:
        self.tracer = tracer
        self.name = name
        self.attributes = attributes  # this call's own copy
        self.parent = parent
        self.start_ns = start_ns
        self.error: str | None = None
        self.exception: BaseException | None = None
        self.capture_message = False

    def trace_id(self) -> int | None:
        """The trace this span will join, when its caller had a span (a root span's trace is
        chosen when it starts, and no other span of that trace exists before)."""
        context = get_current_span(self.parent).get_span_context()
        return context.trace_id if context.is_valid else None

    def fail(self, error_type: str, exc: BaseException, capture_message: bool) -> None:
        """The call raised: the span will carry ``error.type``, an exception event and an error status."""
        self.error = error_type
        self.exception = exc
        self.capture_message = capture_message


def trace_id_of(span: Any) -> int | None:
    """The trace id of a queued span (pending or live), None if it is unknown yet or not recorded."""
    if type(span) is PendingSpan:
        return span.trace_id()
    return span.get_span_context().trace_id if span.is_recording() else None


def close(span: Any, verdict: dict[str, Any] | None, end_ns: int) -> Any:
    """End ``span`` at ``end_ns`` with the verdict's attributes (if any); a pending span is
    started first. Returns the span ended."""
    if type(span) is not PendingSpan:
        if verdict and span.is_recording():
            span.set_attributes(verdict)
        span.end(end_time=end_ns)
        return span
    attributes = span.attributes
    if verdict:
        attributes.update(verdict)
    error = span.error
    if error is not None:
        attributes[semconv.ERROR_TYPE] = error
    live = span.tracer.start_span(span.name, context=span.parent, kind=_INTERNAL, attributes=attributes,
                                  start_time=span.start_ns)  # fmt: skip
    if error is not None and live.is_recording():
        exc = span.exception
        if span.capture_message:
            live.record_exception(exc, timestamp=end_ns)
            live.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        else:
            live.add_event("exception", {"exception.type": error}, timestamp=end_ns)
            live.set_status(Status(StatusCode.ERROR, error))
    span.exception = None  # its traceback holds the call's frames
    live.end(end_time=end_ns)
    return live
