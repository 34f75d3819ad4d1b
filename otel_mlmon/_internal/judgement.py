"""The recording worker's first step on a drained batch: judge each call, end its span.

The caller queued each call (:class:`~otel_mlmon._internal.call.Call`) with its span not
started yet (the default) or live and not ended. Here, in call order, the call's
:class:`~otel_mlmon._internal.signals.SignalWatch` judges it (the same detectors, fed the same
calls in the same order as if they ran inline, so the same verdicts); an anomalous verdict goes
on the span as ``ml.anomaly.*`` attributes (``ml.anomaly.alert`` when the call opened an
incident); then the span (started now at the call's start time, if the worker makes it) ends at
the call's end time, so the anomaly span processor sees the verdict. A failure here is counted
and never leaves a span open.
"""

from __future__ import annotations

from typing import Any, Callable

from otel_mlmon import semconv
from otel_mlmon._internal.call import Call, close


def end_spans(calls: list[Call], tail: Any, internal_error: Callable[[str, BaseException], None]) -> None:
    """Judge each call and end its span: ``call.verdict`` becomes the verdict (or None), a CUDA
    timing in ``call.duration`` becomes seconds (None if it failed). ``tail`` is the sampling
    processor waiting for verdicts."""
    for call in calls:
        attributes = None
        try:
            duration = call.duration
            if type(duration) is not float:  # CUDA event timing, resolved here, off the call
                try:
                    duration = call.duration = float(duration.seconds())
                except Exception as exc:  # noqa: BLE001
                    internal_error("cuda_timing", exc)
                    duration = call.duration = None
            watch = call.watch
            if watch is not None:
                if call.error is None:
                    verdict = watch.observe(duration, call.rows, False, call.end_ns * 1e-9)
                else:  # a failed call counts for the error rate only
                    verdict = watch.observe(None, None, True, call.end_ns * 1e-9)
                if verdict is not None:
                    call.verdict = verdict
                    signal, detector, score, alert = verdict
                    attributes = {semconv.ML_ANOMALY: True, semconv.ML_ANOMALY_SCORE: score,
                                  semconv.ML_ANOMALY_SIGNAL: signal, semconv.ML_ANOMALY_DETECTOR: detector}  # fmt: skip
                    if alert:
                        attributes[semconv.ML_ANOMALY_ALERT] = True
        except Exception as exc:  # noqa: BLE001
            internal_error("anomaly_detection", exc)
        try:
            ended = close(call, attributes)
            if tail is not None:
                tail.release_trace(ended.get_span_context().trace_id)
        except Exception as exc:  # noqa: BLE001
            internal_error("end_span", exc)
