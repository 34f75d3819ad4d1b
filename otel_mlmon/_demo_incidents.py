"""The demo's incidents: when and how each is injected (:func:`schedule`), and how
:class:`IncidentDetectors` find them again from the telemetry alone."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

from otel_mlmon._demo_config import (
    CONCEPT_FEATURE,
    CONCEPT_QUANTILE,
    DRIFT_FEATURE,
    DRIFT_SHIFT_SD,
    HOLD_S,
    LATENCY_DELAY_S,
    SCHEDULE,
)

__all__ = ["Incident", "IncidentDetectors", "Sustained", "View", "median", "ms", "quantile", "schedule"]


@dataclass(frozen=True)
class Incident:
    """An injected incident: what, when (seconds since the traffic started), how."""

    kind: str
    start_s: float
    end_s: float
    description: str
    details: dict = field(default_factory=dict)


def schedule(duration: float, feature_names: Sequence[str] = ()) -> list[Incident]:
    """The incidents of a run of ``duration`` seconds, at fixed fractions of it.

    >>> [(i.kind, i.start_s, i.end_s) for i in schedule(20)]
    [('data_drift', 4.0, 8.4), ('latency', 10.0, 12.4), ('quality_drop', 14.0, 20.0)]
    """

    def name(index: int) -> str:
        return f"x{index} ({feature_names[index]})" if len(feature_names) > index else f"x{index}"

    text = {
        "data_drift": (f"input feature {name(DRIFT_FEATURE)} shifted by +{DRIFT_SHIFT_SD:g} standard deviations",
                       {"feature": f"x{DRIFT_FEATURE}", "shift_sd": DRIFT_SHIFT_SD}),
        "latency": (f"predict_proba sleeps {LATENCY_DELAY_S * 1e3:g} ms per call",
                    {"added_delay_ms": LATENCY_DELAY_S * 1e3}),
        "quality_drop": (f"concept change: true label inverted for rows with {name(CONCEPT_FEATURE)} above its "
                         f"{CONCEPT_QUANTILE * 100:g}th training percentile",
                         {"feature": f"x{CONCEPT_FEATURE}", "quantile": CONCEPT_QUANTILE}),
    }  # fmt: skip
    return [Incident(kind, round(duration * a, 3), round(duration * b, 3), *text[kind]) for kind, a, b in SCHEDULE]


# ------------------------------------------------------------------------------ detection
class Sustained:
    """A condition confirmed after holding ``hold_s``; closed after its end condition held
    ``hold_s``. ``update`` returns ``"start"`` or ``"end"`` on a change, else ``None``."""

    def __init__(self, hold_s: float = HOLD_S) -> None:
        self.hold_s = hold_s
        self.active = False
        self.first_seen: float | None = None
        self._since: float | None = None

    def update(self, t: float, start: bool, end: bool) -> str | None:
        if not self.active:
            if not start:
                self._since = None
                return None
            if self._since is None:
                self._since = t
            if t - self._since >= self.hold_s:
                self.active, self.first_seen, self._since = True, self._since, None
                return "start"
            return None
        if not end:
            self._since = None
            return None
        if self._since is None:
            self._since = t
        if t - self._since >= self.hold_s:
            self.active, self._since = False, None
            return "end"
        return None


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class IncidentDetectors:
    """Turns what the telemetry says at each poll into detections; never sees the schedule.

    ``observe(t, view)`` takes a :class:`View` (numbers read from spans and metrics) and
    returns the detections started or ended at ``t``.
    """

    def __init__(self, quality_window: int) -> None:
        self.quality_window = quality_window
        self.drift = Sustained()
        self.latency = Sustained()
        self.quality = Sustained()
        self._latency_baseline: deque[float] = deque(maxlen=240)
        self._accuracy_baseline: deque[float] = deque(maxlen=240)
        self.open: dict[str, dict] = {}
        self.detections: list[dict] = []

    def latency_baseline(self) -> float | None:
        return median(self._latency_baseline) if len(self._latency_baseline) >= 4 else None

    def accuracy_baseline(self) -> float | None:
        return median(self._accuracy_baseline) if len(self._accuracy_baseline) >= 4 else None

    def observe(self, t: float, view: View) -> list[dict]:
        events = []
        # data drift: the drift monitor's own verdict, exported as ml.drift.share
        share = view.drift_share
        change = self.drift.update(t, share is not None and share > 0, share is not None and share == 0)
        if change:
            top = max(view.psi.items(), key=lambda item: item[1]) if view.psi else (None, None)
            events.append(self._change("data_drift", change, t, self.drift, {
                "metric": "ml.drift.share", "drift_share": share, "top_feature": top[0], "top_feature_psi": top[1],
                "top_feature_ks_p_value": view.ks_p.get(top[0]) if top[0] else None,
            }))  # fmt: skip
        # latency: window median far above its baseline, confirmed by ml.anomaly spans
        baseline = self.latency_baseline()
        p50 = view.p50_s
        slow = baseline is not None and p50 is not None and p50 >= 3 * baseline and view.latency_anomalies_2s > 0
        recovered = baseline is not None and p50 is not None and p50 < 2 * baseline
        change = self.latency.update(t, slow, recovered)
        if change:
            events.append(self._change("latency", change, t, self.latency, {
                "metric": "span duration (ml.inference.duration) and ml.anomaly spans",
                "p50_ms": ms(p50), "p95_ms": ms(view.p95_s), "baseline_p50_ms": ms(baseline),
                "anomalous_spans_last_2s": view.latency_anomalies_2s,
            }))  # fmt: skip
        if not self.latency.active and not slow and p50 is not None and view.window_calls >= 5:
            self._latency_baseline.append(p50)
        # quality: realized accuracy well below its baseline (labels arrive late)
        accuracy = view.accuracy_realized
        full = view.labels_joined >= self.quality_window and accuracy is not None
        base = self.accuracy_baseline()
        dropped = full and base is not None and accuracy <= base - 0.10
        back = full and base is not None and accuracy >= base - 0.05
        change = self.quality.update(t, dropped, back)
        if change:
            events.append(self._change("quality_drop", change, t, self.quality, {
                "metric": "ml.quality.score{ml.quality.metric=accuracy}", "accuracy_realized": accuracy,
                "accuracy_estimated": view.accuracy_estimated, "baseline_accuracy": base,
            }))  # fmt: skip
        if full and not self.quality.active and not dropped:
            self._accuracy_baseline.append(accuracy)
        return events

    def _change(self, kind: str, change: str, t: float, state: Sustained, evidence: dict) -> dict:
        if change == "start":
            detection = {"kind": kind, "detected_at_s": round(t, 3), "first_signal_at_s": round(state.first_seen, 3),
                         "ended_at_s": None, "evidence": evidence}  # fmt: skip
            self.open[kind] = detection
            self.detections.append(detection)
            return {"event": "detected", **detection}
        detection = self.open.pop(kind)
        detection["ended_at_s"] = round(t, 3)
        return {"event": "recovered", "kind": kind, "at_s": round(t, 3), "evidence": evidence}


def ms(seconds: float | None) -> float | None:
    return None if seconds is None or not math.isfinite(seconds) else round(seconds * 1e3, 3)


@dataclass
class View:
    """What one poll read from the telemetry."""

    t: float
    calls: int
    window_calls: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None
    latency_anomalies_2s: int
    drift_share: float | None
    psi: dict[str, float]
    ks_p: dict[str, float]
    accuracy_realized: float | None
    accuracy_estimated: float | None
    labels_joined: int
