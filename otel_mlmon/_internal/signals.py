"""Per-call signals watched by streaming detectors, on the hot path, before the span ends.

One :class:`SignalWatch` per model and operation. Per call it updates the latency and batch
size detectors (O(1) each) and, every ``ERROR_WINDOW`` calls, the error-rate detector with the
window's error rate. The strongest verdict is returned so that the caller can annotate the span
before ending it (the SDK freezes span attributes at ``end()``).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

ERROR_WINDOW = 50

Verdict = tuple  # (signal, detector name, score)


class SignalWatch:
    __slots__ = ("_lock", "_latency", "_row_latency", "_batch", "_errors", "_calls", "_failures", "_names")

    def __init__(self, signals: tuple[str, ...], make_detector: Callable[[], Any]) -> None:
        self._lock = threading.Lock()
        self._latency = make_detector() if "latency" in signals else None
        self._row_latency = make_detector() if "row_latency" in signals else None
        self._batch = make_detector() if "batch_size" in signals else None
        self._errors = make_detector() if "error_rate" in signals else None
        self._calls = 0
        self._failures = 0
        self._names = {id(d): type(d).__name__
                       for d in (self._latency, self._row_latency, self._batch, self._errors) if d}  # fmt: skip

    def observe(self, duration: Any, rows: int | None, failed: bool, now: float) -> Verdict | None:
        """Update the detectors with one call made at ``now`` (epoch seconds); the strongest
        anomalous verdict, or None."""
        best: Verdict | None = None
        with self._lock:
            detector = self._latency
            if detector is not None and type(duration) is float:
                score = detector.update(duration, now)
                if detector.is_anomaly(score):
                    best = ("latency", detector, score)
            detector = self._row_latency
            if detector is not None and type(duration) is float and rows:
                score = detector.update(duration / rows, now)
                if detector.is_anomaly(score) and (best is None or score > best[2]):
                    best = ("row_latency", detector, score)
            detector = self._batch
            if detector is not None and rows is not None:
                score = detector.update(rows, now)
                if detector.is_anomaly(score) and (best is None or score > best[2]):
                    best = ("batch_size", detector, score)
            detector = self._errors
            if detector is not None:
                self._calls += 1
                self._failures += failed
                if self._calls == ERROR_WINDOW:
                    score = detector.update(self._failures / ERROR_WINDOW, now)
                    self._calls = self._failures = 0
                    if detector.is_anomaly(score) and (best is None or score > best[2]):
                        best = ("error_rate", detector, score)
        if best is None:
            return None
        return best[0], self._names[id(best[1])], float(best[2])


class SeriesWatch:
    """Detectors over one model's worker-side signals (one point per flush or per quality
    period): output, data quality, drift, realized and estimated quality. Thread-safe."""

    __slots__ = ("_lock", "_signals", "_make_detector", "_detectors")

    def __init__(self, signals: tuple[str, ...], make_detector: Callable[[], Any]) -> None:
        self._lock = threading.Lock()
        self._signals = frozenset(signals)
        self._make_detector = make_detector
        self._detectors: dict[str, Any] = {}

    def observe(self, signal: str, value: float, timestamp: float) -> Verdict | None:
        if signal not in self._signals:
            return None
        with self._lock:
            detector = self._detectors.get(signal)
            if detector is None:
                detector = self._detectors[signal] = self._make_detector()
            score = detector.update(value, timestamp)
            if detector.is_anomaly(score):
                return signal, type(detector).__name__, float(score)
        return None
