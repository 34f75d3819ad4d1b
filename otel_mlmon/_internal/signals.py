"""Signals watched by the incident layer: per-call ones per queued call, worker-side ones once per second.

One :class:`SignalWatch` per model and operation. Per call it updates the latency and per-row
latency incident detectors (on log seconds, latency noise being multiplicative, as the median of
the call and the two before it) and the batch size one (O(1) each) and, every ``ERROR_WINDOW`` calls, the
error-rate one with the window's error rate. The recording worker feeds it the queued calls in
order and returns the strongest verdict, which it puts on the call's span before ending it (the
SDK freezes span attributes at ``end()``).

A verdict is ``(signal, detector name, score, alert)``: the value was anomalous (its point
score at or above the threshold) and, when ``alert`` is true, it opened an incident. Per-call
signals open an incident after ``PER_CALL_ONSET`` anomalous calls (one slow call, or the few
behind a garbage-collection pause, is flagged on its span but is not an incident); series of one
point per window or flush open one at the first anomalous point.
"""

from __future__ import annotations

import threading
from math import log, nan
from typing import Any, Callable

from otel_mlmon.anomaly.incident import IncidentDetector

ERROR_WINDOW = 50
PER_CALL_ONSET = 5  # anomalous calls that open an incident of a per-call signal

Verdict = tuple  # (signal, detector name, score, alert)


PER_CALL_CONFIRM = 1000  # anomalous calls in a row that make a new normal (a new latency level)
LOG_LATENCY_MIN_SIGMA = 0.1  # smallest spread of log latency: a 2x slower call is < 7 sigmas


def _incidents(make_detector: Callable[[], Any], onset: int, per_call: bool = False, min_sigma: float = 0.0,
               upper_only: bool = False):  # fmt: skip
    """An incident detector over a fresh point detector; per-call signals count in calls, so a
    new level is confirmed after ``PER_CALL_CONFIRM`` of them (a stall of seconds stays an
    incident; a lasting change becomes normal), not the point detector's 30 values, and until
    then a run of calls beyond the usual is scored as a run (``sustained``): on a busy machine
    the spread of ordinary calls can hide one 40x slower call, never hundreds in a row. Latency
    is judged on its upper side only: calls faster than usual (the end of a slow start) are no
    incident."""
    detector = make_detector()
    if per_call and hasattr(detector, "confirm"):
        detector.confirm = PER_CALL_CONFIRM
    if per_call and hasattr(detector, "sustained"):
        detector.sustained = True
    if min_sigma and hasattr(detector, "min_sigma"):
        detector.min_sigma = min_sigma
    if upper_only and hasattr(detector, "upper_only"):
        detector.upper_only = True
    return IncidentDetector(detector, onset=onset)


class SignalWatch:
    __slots__ = ("_lock", "_latency", "_row_latency", "_batch", "_errors", "_calls", "_failures", "_name",
                 "_recent", "_recent_rows")

    def __init__(self, signals: tuple[str, ...], make_detector: Callable[[], Any]) -> None:
        self._lock = threading.Lock()
        latency = (make_detector, PER_CALL_ONSET, True, LOG_LATENCY_MIN_SIGMA, True)
        self._latency = _incidents(*latency) if "latency" in signals else None
        self._row_latency = _incidents(*latency) if "row_latency" in signals else None
        self._batch = _incidents(make_detector, PER_CALL_ONSET, True) if "batch_size" in signals else None
        self._errors = _incidents(make_detector, 1) if "error_rate" in signals else None
        watched = self._latency or self._row_latency or self._batch or self._errors
        self._name = type(watched.detector).__name__ if watched is not None else ""
        self._calls = 0
        self._failures = 0
        self._recent = (nan, nan)  # log latency of the two calls before, and per row
        self._recent_rows = (nan, nan)

    def observe(self, duration: Any, rows: int | None, failed: bool, now: float) -> Verdict | None:
        """Update the detectors with one call made at ``now`` (epoch seconds); the strongest
        anomalous verdict (an incident onset first), or None."""
        best: Any = None
        best_signal = ""
        with self._lock:
            if type(duration) is float and duration > 0.0:
                # Latency is multiplicative: its detectors see log seconds, the median of this
                # call and the two before it, so that one preempted or GC-paused call is not a
                # verdict while a stall is one from its second call.
                log_duration = log(duration)
                incidents = self._latency
                if incidents is not None:
                    before, last = self._recent
                    self._recent = (last, log_duration)
                    verdict = incidents.update(_median3(before, last, log_duration), now)
                    if verdict.anomalous:
                        best, best_signal = verdict, "latency"
                incidents = self._row_latency
                if incidents is not None and rows:
                    per_row = log_duration - log(rows)
                    before, last = self._recent_rows
                    self._recent_rows = (last, per_row)
                    verdict = incidents.update(_median3(before, last, per_row), now)
                    if verdict.anomalous and _stronger(verdict, best):
                        best, best_signal = verdict, "row_latency"
            incidents = self._batch
            if incidents is not None and rows is not None:
                verdict = incidents.update(rows, now)
                if verdict.anomalous and _stronger(verdict, best):
                    best, best_signal = verdict, "batch_size"
            incidents = self._errors
            if incidents is not None:
                self._calls += 1
                self._failures += failed
                if self._calls == ERROR_WINDOW:
                    verdict = incidents.update(self._failures / ERROR_WINDOW, now)
                    self._calls = self._failures = 0
                    if verdict.anomalous and _stronger(verdict, best):
                        best, best_signal = verdict, "error_rate"
        if best is None:
            return None
        return best_signal, self._name, float(best.score), best.alert


def _median3(a: float, b: float, c: float) -> float:
    """The median of three values; NaN ones (no call yet) are ignored, ``c`` never is."""
    if a != a or b != b:
        return c if b != b else (b + c) / 2.0 if a != a else c
    if a > b:
        a, b = b, a
    return a if c < a else b if c > b else c


def _stronger(verdict: Any, best: Any) -> bool:
    """An onset beats a continuing anomaly; then the higher score wins."""
    if best is None:
        return True
    if verdict.alert != best.alert:
        return verdict.alert
    return verdict.score > best.score


class SeriesWatch:
    """Incident detectors over one model's worker-side signals (one point per model per second or per
    quality period): output, data quality, drift, realized and estimated quality. Thread-safe."""

    __slots__ = ("_lock", "_signals", "_make_detector", "_detectors")

    def __init__(self, signals: tuple[str, ...], make_detector: Callable[[], Any]) -> None:
        self._lock = threading.Lock()
        self._signals = frozenset(signals)
        self._make_detector = make_detector
        self._detectors: dict[str, IncidentDetector] = {}

    def observe(self, signal: str, value: float, timestamp: float) -> Verdict | None:
        if signal not in self._signals:
            return None
        with self._lock:
            incidents = self._detectors.get(signal)
            if incidents is None:
                incidents = self._detectors[signal] = _incidents(self._make_detector, 1)
            verdict = incidents.update(value, timestamp)
            if verdict.anomalous:
                return signal, type(incidents.detector).__name__, float(verdict.score), verdict.alert
        return None
