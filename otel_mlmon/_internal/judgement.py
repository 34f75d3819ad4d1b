"""The recording worker's first step on a drained batch: judge each call, end its span.

The caller queued each call with its span still open, or not started yet (a
:class:`~otel_mlmon._internal.pending_span.PendingSpan`, the default). Here, in call order, the call's
:class:`~otel_mlmon._internal.signals.SignalWatch` judges it (the same detectors, fed the same
calls in the same order as if they ran inline, so the same verdicts); an anomalous verdict goes
on the span as ``ml.anomaly.*`` attributes (``ml.anomaly.alert`` when the call opened an
incident); then the span (started now at the call's start time, if pending) ends at the call's end time, so the anomaly span processor sees the
verdict. A failure here is counted and never leaves a span open.
"""

from __future__ import annotations

from typing import Any, Callable

from otel_mlmon import semconv
from otel_mlmon._internal.pending_span import close


def end_spans(records: list[tuple], tail: Any, internal_error: Callable[[str, BaseException], None]) -> None:
    """Judge and end the span of each record. ``records`` is rewritten in place: the watch
    becomes the verdict (or None), a CUDA timing becomes seconds (None if it failed), the span
    and its end time are dropped. ``tail`` is the sampling processor waiting for verdicts."""
    for index, (key, duration, rows, error, output, watch, data, span, end_ns) in enumerate(records):
        verdict = attributes = None
        try:
            if type(duration) is not float:  # CUDA event timing, resolved here, off the call
                try:
                    duration = float(duration.seconds())
                except Exception as exc:  # noqa: BLE001
                    internal_error("cuda_timing", exc)
                    duration = None
            if watch is not None:
                if error is None:
                    verdict = watch.observe(duration, rows, False, end_ns * 1e-9)
                else:  # a failed call counts for the error rate only
                    verdict = watch.observe(None, None, True, end_ns * 1e-9)
            if verdict is not None:
                signal, detector, score, alert = verdict
                attributes = {semconv.ML_ANOMALY: True, semconv.ML_ANOMALY_SCORE: score,
                              semconv.ML_ANOMALY_SIGNAL: signal, semconv.ML_ANOMALY_DETECTOR: detector}  # fmt: skip
                if alert:
                    attributes[semconv.ML_ANOMALY_ALERT] = True
        except Exception as exc:  # noqa: BLE001
            internal_error("anomaly_detection", exc)
        try:
            ended = close(span, attributes, end_ns)
            if tail is not None:
                tail.release_trace(ended.get_span_context().trace_id)
        except Exception as exc:  # noqa: BLE001
            internal_error("end_span", exc)
        records[index] = (key, duration, rows, error, output, verdict, data, None, None)
