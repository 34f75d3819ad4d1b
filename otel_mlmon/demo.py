"""``otel-mlmon demo``: the main job end to end on an embedded default, with a report.

    otel-mlmon demo [--duration 30] [--rate 100] [--seed 0] [--label-delay 1] [--output ./otel-mlmon-demo]

Everything runs in this process, with no server and no download:

1. **Model.** ``SklearnInstrumentor().instrument()`` first (the wrappers and the fit-time reference
   profile are the ones ``opentelemetry-instrument`` installs), then a classifier
   (``StandardScaler`` + a ``LogisticRegression`` subclass whose ``predict_proba`` can be made
   slow) is trained on scikit-learn's bundled breast-cancer dataset.
2. **Telemetry.** Real SDK providers: spans go through an
   :class:`~otel_mlmon.anomaly.processor.AnomalyDetectionSpanProcessor` (its alerts reach a
   callback) to an in-memory span exporter; metrics are read with an ``InMemoryMetricReader``.
   With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, OTLP span, metric and log exporters are added (alerts
   are then exported as log records too).
3. **Traffic.** ``predict_proba`` on batches of 1-8 rows of the dataset at ``--rate`` calls per
   second (seeded), each call inside ``otel_mlmon.prediction_ids(request ids)``; the true outcome of each
   row is recorded with ``otel_mlmon.record_ground_truth`` ``--label-delay`` seconds later.
4. **Incidents**, injected at fixed fractions of the run (see :func:`schedule`): a data drift
   (feature ``x3``, *mean area*, shifted by 1.5 standard deviations), a latency incident (the
   model's ``predict_proba`` sleeps 8 ms per call) and a quality drop (concept change: the true
   label of rows with a large *worst texture* is inverted; labels keep arriving late).
5. **Detection from the telemetry only** (the detectors never see the schedule), every 0.25 s:

   * data drift: ``ml.drift.share > 0`` (the monitor's verdict: PSI and a significance test)
     held for 0.5 s; ends when the share is back to 0 for 0.5 s;
   * latency: the median span duration of the last 0.5 s at least 3x its baseline (median of
     earlier healthy polls) *and* spans flagged ``ml.anomaly`` (signal ``latency``) in the last
     2 s, held for 0.5 s; ends below 2x the baseline;
   * quality drop: realized ``ml.quality.score{ml.quality.metric=accuracy}`` at least 0.10 below
     its baseline (median of earlier healthy polls with a full label window), held for 0.5 s;
     ends within 0.05 of the baseline.

   A detection counts for an injected incident of its kind when it falls between the injection
   and the end of the incident plus a grace period (:data:`GRACE_S`); anything else is reported
   as a false positive.
6. **Output.** A live progress line (TTY) or periodic plain-text lines, then ``report.html``
   (plots drawn as inline SVG: latency with anomalies, drift per feature, realized vs estimated
   accuracy, alert timeline) and ``summary.json`` in ``--output``.

Timing: the run takes ``--duration`` seconds plus about a second for training and the report.
Batches, rows and labels are drawn from a generator seeded with ``--seed``; which call falls
into which incident depends on the wall clock, so two runs agree as far as timing allows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

from otel_mlmon import semconv
from otel_mlmon.version import __version__

__all__ = ["DemoConfig", "Incident", "add_demo_parser", "run_demo", "schedule"]

MODEL_NAME = "cancer-screen"
MODEL_VERSION = "demo-1"
DRIFT_FEATURE = 3  # "mean area"
DRIFT_SHIFT_SD = 1.5
CONCEPT_FEATURE = 21  # "worst texture": rows above its 60th percentile get inverted labels
CONCEPT_QUANTILE = 0.6
LATENCY_DELAY_S = 0.008
POLL_S = 0.25
LATENCY_WINDOW_S = 0.5  # span durations of the last 0.5 s: rolling p50 / p95
HOLD_S = 0.5
GRACE_S = 3.0
MIN_DURATION_S = 10.0
MAX_RATE = 2000.0
# Fractions of the run: (kind, start, end).
SCHEDULE = (("data_drift", 0.20, 0.42), ("latency", 0.50, 0.62), ("quality_drop", 0.70, 1.00))
# Instrumentation settings of the demo (windows scaled to a run of seconds, not hours).
INSTRUMENT_SETTINGS = {
    "anomaly_processor": False,  # the demo adds its own, with a callback
    "label_store": "memory",
    "quality_window": 200,
    # The demo compresses hours into seconds: every call is profiled so that the drift window
    # turns over as fast as the simulated traffic (a service keeps the default rate budget).
    "drift_max_rows_per_second": 1e9,
}
_ALERT_SIGNALS = {"latency": "latency"}  # alert signal -> the injected incident that explains it
_MAX_ANOMALY_POINTS = 5000  # anomalous spans kept for the latency plot
_MAX_POLLS = 20_000
_MAX_ALERTS = 1000  # alerts listed in the summary (all are counted)
_RESERVOIR_SIZE = 20_000  # span durations kept for the run's percentiles


# ------------------------------------------------------------------------------ configuration
@dataclass(frozen=True)
class DemoConfig:
    """Options of ``otel-mlmon demo`` (validated: a bad value raises ``ValueError``)."""

    duration: float = 30.0
    rate: float = 100.0
    seed: int = 0
    label_delay: float = 1.0
    output: str = "otel-mlmon-demo"

    def __post_init__(self) -> None:
        if not (isinstance(self.duration, (int, float)) and math.isfinite(self.duration)) or self.duration < MIN_DURATION_S:
            raise ValueError(f"duration must be at least {MIN_DURATION_S:g} seconds, got {self.duration!r}")
        if not (isinstance(self.rate, (int, float)) and 0 < self.rate <= MAX_RATE):
            raise ValueError(f"rate must be in (0, {MAX_RATE:g}] calls per second, got {self.rate!r}")
        if not (isinstance(self.label_delay, (int, float)) and 0 <= self.label_delay <= self.duration / 4):
            raise ValueError(f"label delay must be in [0, duration / 4], got {self.label_delay!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")


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


# ------------------------------------------------------------------------------ telemetry
class _SpanTap:
    """An in-memory span exporter that keeps what the demo reads, drained at every poll.

    (The SDK's ``InMemorySpanExporter`` has no atomic read-and-clear; this one swaps its list
    under a lock, so no span is lost between two polls. Bounded: beyond ``limit`` spans
    between two polls, spans are counted and dropped.)
    """

    def __init__(self, limit: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._rows: list[tuple] = []
        self._limit = limit
        self.exported = 0
        self.dropped = 0

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult  # noqa: PLC0415

        rows = []
        for span in spans:
            attributes = span.attributes or {}
            if attributes.get(semconv.ML_MODEL_NAME) != MODEL_NAME:
                continue
            rows.append((
                span.end_time / 1e9, (span.end_time - span.start_time) / 1e9,
                attributes.get(semconv.ML_ANOMALY) is True, attributes.get(semconv.ML_ANOMALY_SIGNAL),
            ))  # fmt: skip
        with self._lock:
            self.exported += len(rows)
            room = self._limit - len(self._rows)
            if room < len(rows):
                self.dropped += len(rows) - max(room, 0)
                rows = rows[: max(room, 0)]
            self._rows.extend(rows)
        return SpanExportResult.SUCCESS

    def drain(self) -> list[tuple]:
        with self._lock:
            rows, self._rows = self._rows, []
        return rows

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class _Telemetry:
    """Real SDK providers for the demo; OTLP exporters too when the endpoint is set."""

    def __init__(self, on_alert: Callable[[Any], None], environ: dict[str, str]) -> None:
        from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: PLC0415
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor, TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter  # noqa: PLC0415

        from otel_mlmon.anomaly.processor import AnomalyDetectionSpanProcessor  # noqa: PLC0415

        class Tap(_SpanTap, SpanExporter):
            pass

        self.resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or "otel-mlmon-demo"})
        self.tap = Tap()
        self.reader = InMemoryMetricReader()
        self.otlp = self._otlp(environ)
        readers = [self.reader] + ([self.otlp["metric_reader"]] if self.otlp else [])
        self.meter_provider = MeterProvider(resource=self.resource, metric_readers=readers)
        self.tracer_provider = TracerProvider(resource=self.resource)
        inner = SynchronousMultiSpanProcessor()
        inner.add_span_processor(SimpleSpanProcessor(self.tap))
        if self.otlp:
            inner.add_span_processor(self.otlp["span_processor"])
        self.processor = AnomalyDetectionSpanProcessor(
            inner, callbacks=[on_alert],  # the defaults of the processor instrument() installs
            log_alerts=bool(self.otlp), meter_provider=self.meter_provider,
            logger_provider=self.otlp["logger_provider"] if self.otlp else None,
        )  # fmt: skip
        self.tracer_provider.add_span_processor(self.processor)

    @staticmethod
    def _otlp(environ: dict[str, str]) -> dict[str, Any] | None:
        if not environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
            return None
        from opentelemetry.sdk._logs import LoggerProvider  # noqa: PLC0415
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor  # noqa: PLC0415
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

        protocol = environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc").strip().lower()
        if protocol.startswith("http"):
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # noqa: PLC0415
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter  # noqa: PLC0415
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
        else:
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter  # noqa: PLC0415
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter  # noqa: PLC0415
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
        interval = None if environ.get("OTEL_METRIC_EXPORT_INTERVAL") else 5000  # SDK default: 60 s
        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
        return {
            "protocol": "http/protobuf" if protocol.startswith("http") else "grpc",
            "endpoint": environ["OTEL_EXPORTER_OTLP_ENDPOINT"].strip(),
            "span_processor": BatchSpanProcessor(OTLPSpanExporter()),
            "metric_reader": PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=interval),
            "logger_provider": logger_provider,
        }

    def read(self) -> dict[str, list[tuple[dict, Any]]]:
        """Every data point collected now, by metric name (the demo's model only where named)."""
        data = self.reader.get_metrics_data()
        out: dict[str, list[tuple[dict, Any]]] = {}
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        attributes = dict(point.attributes)
                        if attributes.get(semconv.ML_MODEL_NAME, MODEL_NAME) == MODEL_NAME:
                            out.setdefault(metric.name, []).append((attributes, point))
        return out

    def shutdown(self) -> None:
        for close in (self.tracer_provider.shutdown, self.meter_provider.shutdown):
            try:
                close()
            except Exception:  # noqa: BLE001 - a failing exporter must not hide the report
                pass
        if self.otlp:
            try:
                self.otlp["logger_provider"].shutdown()
            except Exception:  # noqa: BLE001
                pass


# ------------------------------------------------------------------------------ detection
class _Sustained:
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


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class IncidentDetectors:
    """Turns what the telemetry says at each poll into detections; never sees the schedule.

    ``observe(t, view)`` takes a :class:`_View` (numbers read from spans and metrics) and
    returns the detections started or ended at ``t``.
    """

    def __init__(self, quality_window: int) -> None:
        self.quality_window = quality_window
        self.drift = _Sustained()
        self.latency = _Sustained()
        self.quality = _Sustained()
        self._latency_baseline: deque[float] = deque(maxlen=240)
        self._accuracy_baseline: deque[float] = deque(maxlen=240)
        self.open: dict[str, dict] = {}
        self.detections: list[dict] = []

    def latency_baseline(self) -> float | None:
        return _median(self._latency_baseline) if len(self._latency_baseline) >= 4 else None

    def accuracy_baseline(self) -> float | None:
        return _median(self._accuracy_baseline) if len(self._accuracy_baseline) >= 4 else None

    def observe(self, t: float, view: _View) -> list[dict]:
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
                "p50_ms": _ms(p50), "p95_ms": _ms(view.p95_s), "baseline_p50_ms": _ms(baseline),
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

    def _change(self, kind: str, change: str, t: float, state: _Sustained, evidence: dict) -> dict:
        if change == "start":
            detection = {"kind": kind, "detected_at_s": round(t, 3), "first_signal_at_s": round(state.first_seen, 3),
                         "ended_at_s": None, "evidence": evidence}  # fmt: skip
            self.open[kind] = detection
            self.detections.append(detection)
            return {"event": "detected", **detection}
        detection = self.open.pop(kind)
        detection["ended_at_s"] = round(t, 3)
        return {"event": "recovered", "kind": kind, "at_s": round(t, 3), "evidence": evidence}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None or not math.isfinite(seconds) else round(seconds * 1e3, 3)


@dataclass
class _View:
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


class _Reservoir:
    """A uniform sample of at most ``size`` values (Algorithm R, seeded) and the exact maximum."""

    def __init__(self, size: int, seed: int) -> None:
        import random  # noqa: PLC0415

        self.size = size
        self.values: list[float] = []
        self.max: float | None = None
        self._seen = 0
        self._random = random.Random(seed)

    def add(self, value: float) -> None:
        self._seen += 1
        self.max = value if self.max is None else max(self.max, value)
        if len(self.values) < self.size:
            self.values.append(value)
        else:
            slot = self._random.randrange(self._seen)
            if slot < self.size:
                self.values[slot] = value


# ------------------------------------------------------------------------------ console
class _Console:
    """Live progress on a terminal; plain lines (events, and a status line every 10 %) otherwise."""

    def __init__(self, stream: TextIO, duration: float) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.duration = duration
        self._status = ""
        self._next_plain = 0.1

    def event(self, t: float, text: str) -> None:
        line = f"[{t:6.2f}s] {text}"
        if self.tty:
            self.stream.write("\r\x1b[2K" + line + "\n" + self._status)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def status(self, t: float, view: _View, alerts: int) -> None:
        fraction = min(max(t / self.duration, 0.0), 1.0)
        p50 = "-" if view.p50_s is None else f"{view.p50_s * 1e3:.2f}"
        p95 = "-" if view.p95_s is None else f"{view.p95_s * 1e3:.2f}"
        drift = "-" if view.drift_share is None else f"{view.drift_share:.2f}"
        if view.psi:
            feature, psi = max(view.psi.items(), key=lambda item: item[1])
            drift += f" (max psi {feature} {psi:.2f})"
        real = "-" if view.accuracy_realized is None else f"{view.accuracy_realized:.3f}"
        est = "-" if view.accuracy_estimated is None else f"{view.accuracy_estimated:.3f}"
        fields = (f"{t:5.1f}/{self.duration:g}s  calls {view.calls} | p50 {p50} p95 {p95} ms | drift share {drift} | "
                  f"accuracy {real} est. {est} | alerts {alerts}")  # fmt: skip
        if self.tty:
            width = 24
            filled = int(round(fraction * width))
            columns = shutil.get_terminal_size((160, 24)).columns
            self._status = f"[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}%  {fields}"[: columns - 1]
            self.stream.write("\r\x1b[2K" + self._status)
            self.stream.flush()
        elif fraction >= self._next_plain - 1e-9:
            self._next_plain = math.floor(fraction * 10 + 1e-9) / 10 + 0.1
            self.stream.write(f"progress {fraction * 100:3.0f}%  {fields}\n")
            self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
        self._status = ""

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


# ------------------------------------------------------------------------------ the run
def _build_model(seed: int):
    """The data and the demo's classifier (defined after instrument(): the subclass hook covers it)."""
    import numpy as np  # noqa: PLC0415
    from sklearn.datasets import load_breast_cancer  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.model_selection import train_test_split  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    class SlowableLogisticRegression(LogisticRegression):
        """A logistic regression whose predict_proba can be made slow (the latency incident)."""

        def predict_proba(self, X):
            delay = self.__dict__.get("_demo_delay_s", 0.0)
            if delay:
                time.sleep(delay)
            return super().predict_proba(X)

    data = load_breast_cancer()
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.4, random_state=seed, stratify=data.target
    )
    # The traffic resamples the whole dataset: drawn from the 228 held-out rows alone, a window of
    # 1000 rows would look drifted against the training profile from sampling alone (the tests
    # assume independent rows, not a few hundred rows repeated).
    X_live, y_live = data.data, data.target
    classifier = SlowableLogisticRegression(max_iter=2000)
    model = make_pipeline(StandardScaler(), classifier)
    import otel_mlmon  # noqa: PLC0415

    otel_mlmon.set_model_info(model, name=MODEL_NAME, version=MODEL_VERSION)
    model.fit(X_train, y_train)  # instrumented fit: the reference profile is captured here
    with _suppressed():
        holdout = float(np.mean(model.predict(X_test) == y_test))
    return {
        "model": model, "classifier": classifier, "X_train": X_train, "X_live": X_live, "y_live": y_live,
        "feature_names": [str(n) for n in data.feature_names], "holdout_accuracy": holdout,
        "drift_shift": DRIFT_SHIFT_SD * float(X_train[:, DRIFT_FEATURE].std()),
        "concept_cut": float(np.quantile(X_train[:, CONCEPT_FEATURE], CONCEPT_QUANTILE)),
    }  # fmt: skip


def _suppressed():
    from opentelemetry.instrumentation.utils import suppress_instrumentation  # noqa: PLC0415

    return suppress_instrumentation()


class _Run:
    """State of one demo run: traffic, labels in flight, polls, series for the report."""

    def __init__(self, config: DemoConfig, stream: TextIO, environ: dict[str, str]) -> None:
        self.config = config
        self.console = _Console(stream, config.duration)
        self.environ = environ
        self._alerts_lock = threading.Lock()
        self._new_alerts: list[Any] = []
        self.alerts: list[dict] = []
        self.alert_count = 0
        self.polls: list[dict] = []
        self.anomaly_points: list[tuple[float, float, str]] = []
        self.anomalous_spans = 0
        self.calls = 0
        self.rows = 0
        self.labels_sent = 0
        self.label_results = {"joined": 0, "unknown_id": 0, "duplicate": 0, "invalid": 0}
        self.durations = _Reservoir(_RESERVOIR_SIZE, config.seed)  # span durations, for the final percentiles
        self.interrupted = False
        self._window: deque[tuple[float, float]] = deque()
        self._anomaly_times: deque[float] = deque()
        self.log: list[dict] = []

    def _on_alert(self, alert: Any) -> None:  # alert dispatcher thread
        with self._alerts_lock:
            self._new_alerts.append(alert)

    # -------------------------------------------------------------- main
    def run(self) -> dict:
        import numpy as np  # noqa: PLC0415

        import otel_mlmon  # noqa: PLC0415

        config = self.config
        started_wall = time.time()
        started = time.monotonic()
        telemetry = _Telemetry(self._on_alert, self.environ)
        instrumentor = otel_mlmon.SklearnInstrumentor()
        instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                                **INSTRUMENT_SETTINGS)  # fmt: skip
        try:
            data = _build_model(config.seed)
            self.data = data
            incidents = schedule(config.duration, data["feature_names"])
            self._intro(telemetry, data, incidents)
            detectors = IncidentDetectors(INSTRUMENT_SETTINGS["quality_window"])
            self._traffic(np.random.default_rng(config.seed), data, incidents, detectors, telemetry)
            instrumentor.force_flush()
            summary = self._summary(started_wall, started, telemetry, data, incidents, detectors)
        finally:
            instrumentor.uninstrument()
            telemetry.shutdown()
        summary["runtime_s"] = round(time.monotonic() - started, 3)
        return summary

    def _intro(self, telemetry: _Telemetry, data: dict, incidents: list[Incident]) -> None:
        c = self.config
        self.console.line(f"otel-mlmon {__version__} demo: model {MODEL_NAME} (StandardScaler + logistic regression, "
                          f"breast-cancer dataset, {len(data['feature_names'])} features), hold-out accuracy "
                          f"{data['holdout_accuracy']:.3f}")  # fmt: skip
        self.console.line(f"traffic: {c.duration:g} s at {c.rate:g} calls/s, batches of 1-8 rows, labels "
                          f"{c.label_delay:g} s late, seed {c.seed}")  # fmt: skip
        if telemetry.otlp:
            self.console.line(f"exporting over OTLP ({telemetry.otlp['protocol']}) to {telemetry.otlp['endpoint']}")
        self.console.line("injected incidents (the detectors read only the telemetry):")
        for incident in incidents:
            self.console.line(f"  {incident.start_s:6.2f}s - {incident.end_s:6.2f}s  {incident.kind:<13} {incident.description}")
        self.console.line()

    def _traffic(self, rng: Any, data: dict, incidents: list[Incident], detectors: IncidentDetectors,
                 telemetry: _Telemetry) -> None:  # fmt: skip
        self.t0_wall = time.time()
        t0 = time.monotonic()
        try:
            self._serve(rng, data, incidents, detectors, telemetry, t0)
        except KeyboardInterrupt:
            self.interrupted = True
            self.console.event(time.monotonic() - t0, "interrupted: writing the report of what ran so far")
        self._poll(time.monotonic() - t0, detectors, telemetry)

    def _serve(self, rng: Any, data: dict, incidents: list[Incident], detectors: IncidentDetectors,
               telemetry: _Telemetry, t0: float) -> None:  # fmt: skip
        import otel_mlmon  # noqa: PLC0415

        config = self.config
        model, classifier = data["model"], data["classifier"]
        X_live, y_live = data["X_live"], data["y_live"]
        interval = 1.0 / config.rate
        pending: deque[tuple[float, list[str], Any]] = deque()
        active: set[str] = set()
        next_call = 0.0
        next_poll = POLL_S
        step = 0
        while True:
            now = time.monotonic() - t0
            if now >= config.duration:
                break
            if now >= next_poll:
                self._poll(now, detectors, telemetry)
                next_poll += POLL_S * max(1, math.ceil((now - next_poll) / POLL_S + 1e-9))
                continue
            if now < next_call:
                time.sleep(min(next_call, next_poll, config.duration) - now)
                continue
            # incidents switch on and off by the clock
            for incident in incidents:
                on = incident.start_s <= now < incident.end_s
                if on and incident.kind not in active:
                    active.add(incident.kind)
                    self.log.append({"event": "injected", "kind": incident.kind, "at_s": round(now, 3)})
                    self.console.event(now, f"injected  {incident.kind}: {incident.description}")
                elif not on and incident.kind in active:
                    active.discard(incident.kind)
                    self.log.append({"event": "injection_ended", "kind": incident.kind, "at_s": round(now, 3)})
                    self.console.event(now, f"injection ended  {incident.kind}")
            classifier.__dict__["_demo_delay_s"] = LATENCY_DELAY_S if "latency" in active else 0.0
            # one call: seeded batch, the service's request ids, labels due later
            size = int(rng.integers(1, 9))
            rows = rng.integers(0, len(X_live), size)
            X = X_live[rows].copy()
            y_true = y_live[rows].copy()
            if "data_drift" in active:
                X[:, DRIFT_FEATURE] += data["drift_shift"]
            if "quality_drop" in active:
                flip = X_live[rows, CONCEPT_FEATURE] > data["concept_cut"]
                y_true[flip] = 1 - y_true[flip]
            ids = [f"req-{step}-{j}" for j in range(size)]
            with otel_mlmon.prediction_ids(ids):
                model.predict_proba(X)
            pending.append((now + config.label_delay, ids, y_true))
            self.calls += 1
            self.rows += size
            step += 1
            while pending and pending[0][0] <= now:
                _, label_ids, labels = pending.popleft()
                self._record_labels(label_ids, labels)
            next_call += interval
            if next_call < now - 0.25:  # far behind (slow calls): simulated clients do not queue up
                next_call = now

    def _record_labels(self, ids: list[str], labels: Any) -> None:
        import otel_mlmon  # noqa: PLC0415

        result = otel_mlmon.record_ground_truth(ids, labels)
        self.labels_sent += len(ids)
        for outcome in self.label_results:
            self.label_results[outcome] += getattr(result, outcome)

    # -------------------------------------------------------------- polling
    def _poll(self, t: float, detectors: IncidentDetectors, telemetry: _Telemetry) -> None:
        points = telemetry.read()  # collection also drains otel-mlmon's recording queue
        for end, duration, anomalous, signal in telemetry.tap.drain():
            ts = end - self.t0_wall
            self._window.append((ts, duration))
            self.durations.add(duration)
            if anomalous:
                self.anomalous_spans += 1
                if signal == "latency":
                    self._anomaly_times.append(ts)
                if len(self.anomaly_points) < _MAX_ANOMALY_POINTS:
                    self.anomaly_points.append((round(ts, 4), round(duration * 1e3, 4), str(signal)))
        while self._window and self._window[0][0] < t - LATENCY_WINDOW_S:
            self._window.popleft()
        while self._anomaly_times and self._anomaly_times[0] < t - 2.0:
            self._anomaly_times.popleft()
        window = [d for _, d in self._window]
        view = _View(
            t=t, calls=self.calls, window_calls=len(window),
            p50_s=_quantile(window, 0.5) if window else None, p95_s=_quantile(window, 0.95) if window else None,
            max_s=max(window) if window else None, latency_anomalies_2s=len(self._anomaly_times),
            drift_share=_first(points, semconv.DRIFT_SHARE.name),
            psi=_by_feature(points, semconv.DRIFT_SCORE.name, "psi"), ks_p=_by_feature(points, semconv.DRIFT_P_VALUE.name, "ks"),
            accuracy_realized=_quality(points, "realized"), accuracy_estimated=_quality(points, "estimated"),
            labels_joined=int(sum(p.value for a, p in points.get(semconv.LABEL_COUNT.name, ())
                                  if a.get(semconv.ML_LABEL_OUTCOME) == "joined")),
        )  # fmt: skip
        with self._alerts_lock:
            new_alerts, self._new_alerts = self._new_alerts, []
        for alert in new_alerts:
            entry = {"at_s": round(alert.timestamp - self.t0_wall, 3), "signal": alert.signal, "model": alert.model,
                     "detector": alert.detector, "score": _finite(alert.score), "trace_id": alert.trace_id}  # fmt: skip
            self.alert_count += 1
            if len(self.alerts) < _MAX_ALERTS:
                self.alerts.append(entry)
            self.console.event(t, f"alert     {alert.text} (span at {entry['at_s']:.2f}s, trace {alert.trace_id[:8]}...)")
        for event in detectors.observe(t, view):
            self.log.append(event)
            self._announce(t, event)
        if len(self.polls) < _MAX_POLLS:
            self.polls.append({
                "t": round(t, 3), "calls": view.calls, "p50_ms": _ms(view.p50_s), "p95_ms": _ms(view.p95_s),
                "max_ms": _ms(view.max_s), "drift_share": view.drift_share,
                "psi": {k: round(v, 4) for k, v in view.psi.items()},
                "accuracy_realized": view.accuracy_realized, "accuracy_estimated": view.accuracy_estimated,
                "labels_joined": view.labels_joined,
            })  # fmt: skip
        self.console.status(t, view, self.alert_count)

    def _announce(self, t: float, event: dict) -> None:
        kind, evidence = event["kind"], event["evidence"]
        if kind == "data_drift":
            what = (f"ml.drift.share={evidence['drift_share']:.3f}, top feature {evidence['top_feature']} "
                    f"PSI {evidence['top_feature_psi']:.2f}") if evidence["top_feature"] else f"ml.drift.share={evidence['drift_share']}"  # fmt: skip
        elif kind == "latency":
            what = f"p50 {evidence['p50_ms']} ms vs baseline {evidence['baseline_p50_ms']} ms, {evidence['anomalous_spans_last_2s']} ml.anomaly spans"
        else:
            what = (f"realized accuracy {evidence['accuracy_realized']:.3f} vs baseline {evidence['baseline_accuracy']:.3f}"
                    f" (estimated {_fmt(evidence['accuracy_estimated'])})")  # fmt: skip
        label = "DETECTED " if event["event"] == "detected" else "recovered"
        self.console.event(t, f"{label} {kind}: {what}")

    # -------------------------------------------------------------- summary
    def _summary(self, started_wall: float, started: float, telemetry: _Telemetry, data: dict,
                 incidents: list[Incident], detectors: IncidentDetectors) -> dict:  # fmt: skip
        self.console.done()
        points = telemetry.read()
        injected_at = {e["kind"]: e["at_s"] for e in self.log if e["event"] == "injected"}
        incident_rows = []
        for incident in incidents:
            row = asdict(incident)
            row["injected_at_s"] = injected_at.get(incident.kind)
            incident_rows.append(row)
        detections = []
        matched: dict[str, dict] = {}
        for detection in detectors.detections:
            row = dict(detection)
            incident = next((i for i in incident_rows if i["kind"] == row["kind"]), None)
            start = None if incident is None else (incident["injected_at_s"] if incident["injected_at_s"] is not None else incident["start_s"])
            hit = (incident is not None and row["kind"] not in matched
                   and start <= row["first_signal_at_s"] and row["detected_at_s"] <= incident["end_s"] + GRACE_S)  # fmt: skip
            row["matches_injected"] = bool(hit)
            row["delay_s"] = round(row["detected_at_s"] - start, 3) if hit else None
            if hit:
                matched[row["kind"]] = row
            detections.append(row)
        for row in incident_rows:
            hit = matched.get(row["kind"])
            row["detected"] = hit is not None
            row["detected_at_s"] = hit["detected_at_s"] if hit else None
            row["detection_delay_s"] = hit["delay_s"] if hit else None
            row["recovered_at_s"] = hit["ended_at_s"] if hit else None
        for alert in self.alerts:
            alert["during_incident"] = next(
                (row["kind"] for row in incident_rows if row["kind"] == _ALERT_SIGNALS.get(alert["signal"])
                 and (row["injected_at_s"] or row["start_s"]) <= alert["at_s"] <= row["end_s"] + GRACE_S), None)  # fmt: skip
        durations = self.durations.values
        anomaly_counts: dict[str, int] = {}
        for attributes, point in points.get(semconv.ANOMALY_COUNT.name, ()):
            signal = str(attributes.get(semconv.ML_ANOMALY_SIGNAL))
            anomaly_counts[signal] = anomaly_counts.get(signal, 0) + int(point.value)
        sampling = {f"{a.get(semconv.ML_SAMPLING_DECISION)}/{a.get(semconv.ML_SAMPLING_REASON)}": int(p.value)
                    for a, p in points.get(semconv.SAMPLING_SPAN_COUNT.name, ())}  # fmt: skip
        c = self.config
        return {
            "otel_mlmon_version": __version__,
            "command": "otel-mlmon demo " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in asdict(c).items()),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_wall)),
            "settings": {**asdict(c), "poll_s": POLL_S, "hold_s": HOLD_S, "grace_s": GRACE_S,
                         "alert_cooldown_s": 0.0, "instrument": dict(INSTRUMENT_SETTINGS)},  # fmt: skip
            "model": {"name": MODEL_NAME, "version": MODEL_VERSION, "dataset": "sklearn.datasets.load_breast_cancer",
                      "estimator": "Pipeline(StandardScaler, LogisticRegression subclass)", "operation": "predict_proba",
                      "features": len(data["feature_names"]), "train_rows": int(len(data["X_train"])),
                      "traffic_pool_rows": int(len(data["X_live"])), "holdout_accuracy": round(data["holdout_accuracy"], 4)},  # fmt: skip
            "otlp": None if not telemetry.otlp else {"endpoint": telemetry.otlp["endpoint"], "protocol": telemetry.otlp["protocol"]},
            "incidents": incident_rows,
            "detections": detections,
            "missed": [row["kind"] for row in incident_rows if row["injected_at_s"] is not None and not row["detected"]],
            "false_positives": sum(1 for d in detections if not d["matches_injected"]),
            "alerts": self.alerts,
            "counts": {
                "calls": self.calls, "rows": self.rows, "spans_exported": telemetry.tap.exported,
                "anomalous_spans": self.anomalous_spans, "anomalies_by_signal": anomaly_counts,
                "span_sampling": sampling, "alerts": self.alert_count, "labels_sent": self.labels_sent,
                "labels": dict(self.label_results), "polls": len(self.polls),
                "labels_in_flight_at_end": self.rows - self.labels_sent,
            },  # fmt: skip
            "latency_ms": {"p50": _ms(_quantile(durations, 0.5)), "p95": _ms(_quantile(durations, 0.95)),
                           "max": _ms(self.durations.max)},  # fmt: skip
            "interrupted": self.interrupted,
            "final": {"drift_share": _first(points, semconv.DRIFT_SHARE.name),
                      "accuracy_realized": _quality(points, "realized"),
                      "accuracy_estimated": _quality(points, "estimated")},  # fmt: skip
            "events": self.log,
        }


def _first(points: dict, name: str) -> float | None:
    values = [float(p.value) for _, p in points.get(name, ())]
    return values[0] if values else None


def _by_feature(points: dict, name: str, method: str) -> dict[str, float]:
    return {str(a.get(semconv.ML_FEATURE_NAME)): float(p.value) for a, p in points.get(name, ())
            if a.get(semconv.ML_DRIFT_METHOD) == method and a.get(semconv.ML_FEATURE_NAME) != "_output"}  # fmt: skip


def _quality(points: dict, source: str) -> float | None:
    for attributes, point in points.get(semconv.QUALITY_SCORE.name, ()):
        if attributes.get(semconv.ML_QUALITY_METRIC) == "accuracy" and attributes.get(semconv.ML_QUALITY_SOURCE) == source:
            return float(point.value)
    return None


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# ------------------------------------------------------------------------------ entry points
def run_demo(config: DemoConfig, stream: TextIO | None = None, environ: dict[str, str] | None = None) -> dict:
    """Run the demo; write ``report.html`` and ``summary.json`` into ``config.output``.

    Returns the summary (also written as ``summary.json``), with ``files`` naming the outputs.
    """
    from otel_mlmon._demo_report import render_report  # noqa: PLC0415

    stream = sys.stdout if stream is None else stream
    environ = dict(os.environ if environ is None else environ)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    run = _Run(config, stream, environ)
    summary = run.run()
    report = output / "report.html"
    summary_path = output / "summary.json"
    summary["files"] = {"report": str(report.resolve()), "summary": str(summary_path.resolve())}
    series = {"polls": run.polls, "anomalies": run.anomaly_points, "feature_names": run.data["feature_names"]}
    report.write_text(render_report(summary, series), encoding="utf-8")
    summary_path.write_text(json.dumps(summary, indent=2, allow_nan=False, default=_json_default) + "\n", encoding="utf-8")
    _print_outcome(run.console, summary)
    return summary


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _print_outcome(console: _Console, summary: dict) -> None:
    console.line()
    console.line("incident        injected   detected   delay   recovered")
    for row in summary["incidents"]:
        if row["injected_at_s"] is None:
            console.line(f"{row['kind']:<14}  not injected (the run was interrupted)")
            continue
        detected = f"{row['detected_at_s']:8.2f}s" if row["detected"] else "  MISSED "
        delay = f"{row['detection_delay_s']:5.2f}s" if row["detected"] else "    - "
        recovered = f"{row['recovered_at_s']:8.2f}s" if row.get("recovered_at_s") is not None else "       -"
        console.line(f"{row['kind']:<14} {row['injected_at_s']:8.2f}s {detected} {delay}  {recovered}")
    counts = summary["counts"]
    console.line(f"\n{counts['calls']} calls, {counts['rows']} rows, {counts['spans_exported']} spans "
                 f"({counts['anomalous_spans']} flagged ml.anomaly), {counts['alerts']} alerts, "
                 f"{counts['labels']['joined']} labels joined; false-positive detections: {summary['false_positives']}; "
                 f"run took {summary['runtime_s']:.1f} s")  # fmt: skip
    console.line(f"report:  {summary['files']['report']}")
    console.line(f"summary: {summary['files']['summary']}")


def _run_command(args: argparse.Namespace) -> int:
    try:
        config = DemoConfig(duration=args.duration, rate=args.rate, seed=args.seed, label_delay=args.label_delay,
                            output=args.output)  # fmt: skip
    except ValueError as exc:
        print(f"otel-mlmon demo: {exc}", file=sys.stderr)
        return 2
    try:
        import sklearn  # noqa: F401, PLC0415
    except ImportError:
        print("otel-mlmon demo needs scikit-learn: pip install 'otel-mlmon[sklearn]'", file=sys.stderr)
        return 2
    summary = run_demo(config)
    return 130 if summary["interrupted"] else 0


def add_demo_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``otel-mlmon demo`` on the CLI's subparsers."""
    defaults = DemoConfig()
    parser = subparsers.add_parser(
        "demo", help="the main job end to end on an embedded default, with an HTML report",
        description="Train a scikit-learn model on a bundled dataset, instrument it, serve simulated traffic, "
                    "inject a data drift, a latency incident and a quality drop (with delayed labels), detect "
                    "them from the telemetry, and write report.html and summary.json. No server needed; "
                    "set OTEL_EXPORTER_OTLP_ENDPOINT to also export over OTLP.",
    )  # fmt: skip
    parser.add_argument("--duration", type=float, default=defaults.duration,
                        help=f"seconds of traffic (default {defaults.duration:g}, at least {MIN_DURATION_S:g})")
    parser.add_argument("--rate", type=float, default=defaults.rate,
                        help=f"calls per second (default {defaults.rate:g})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed (default 0)")
    parser.add_argument("--label-delay", type=float, default=defaults.label_delay,
                        help=f"seconds between a prediction and its ground-truth label (default {defaults.label_delay:g})")
    parser.add_argument("--output", default=defaults.output,
                        help=f"directory for report.html and summary.json (default ./{defaults.output})")  # fmt: skip
    parser.set_defaults(run=_run_command)
    return parser
