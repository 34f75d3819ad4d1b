"""One demo run: the model, the simulated traffic with its incidents and late labels, the
polls of the telemetry, and the summary (see :mod:`otel_mlmon.demo`)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import asdict
from typing import Any, TextIO

from otel_mlmon import semconv
from otel_mlmon._demo_config import (
    CONCEPT_FEATURE,
    CONCEPT_QUANTILE,
    DRIFT_FEATURE,
    DRIFT_SHIFT_SD,
    GRACE_S,
    HOLD_S,
    INSTRUMENT_SETTINGS,
    LATENCY_DELAY_S,
    LATENCY_WINDOW_S,
    MODEL_NAME,
    MODEL_VERSION,
    POLL_S,
    DemoConfig,
)
from otel_mlmon._demo_console import Console, fmt
from otel_mlmon._demo_incidents import Incident, IncidentDetectors, View, ms, quantile, schedule
from otel_mlmon._demo_telemetry import Telemetry, accuracy, by_feature, first_value
from otel_mlmon.version import __version__

__all__ = ["Run"]

# alert signal -> the injected incident that explains it
_ALERT_SIGNALS = {"latency": "latency", "drift": "data_drift", "accuracy": "quality_drop", "estimated_accuracy": "quality_drop"}
_MAX_ANOMALY_POINTS = 5000  # anomalous spans kept for the latency plot
_MAX_POLLS = 20_000
_MAX_ALERTS = 1000  # alerts listed in the summary (all are counted)
_RESERVOIR_SIZE = 20_000  # span durations kept for the run's percentiles


class Reservoir:
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


def finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def build_model(seed: int):
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
    with suppressed():
        holdout = float(np.mean(model.predict(X_test) == y_test))
    return {
        "model": model, "classifier": classifier, "X_train": X_train, "X_live": X_live, "y_live": y_live,
        "feature_names": [str(n) for n in data.feature_names], "holdout_accuracy": holdout,
        "drift_shift": DRIFT_SHIFT_SD * float(X_train[:, DRIFT_FEATURE].std()),
        "concept_cut": float(np.quantile(X_train[:, CONCEPT_FEATURE], CONCEPT_QUANTILE)),
    }  # fmt: skip


def suppressed():
    from opentelemetry.instrumentation.utils import suppress_instrumentation  # noqa: PLC0415

    return suppress_instrumentation()


class Run:
    """State of one demo run: traffic, labels in flight, polls, series for the report."""

    def __init__(self, config: DemoConfig, stream: TextIO, environ: dict[str, str]) -> None:
        self.config = config
        self.console = Console(stream, config.duration)
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
        self.durations = Reservoir(_RESERVOIR_SIZE, config.seed)  # span durations, for the final percentiles
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
        telemetry = Telemetry(self._on_alert, self.environ)
        instrumentor = otel_mlmon.SklearnInstrumentor()
        instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                                **INSTRUMENT_SETTINGS)  # fmt: skip
        try:
            data = build_model(config.seed)
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

    def _intro(self, telemetry: Telemetry, data: dict, incidents: list[Incident]) -> None:
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
                 telemetry: Telemetry) -> None:  # fmt: skip
        self.t0_wall = time.time()
        t0 = time.monotonic()
        try:
            self._serve(rng, data, incidents, detectors, telemetry, t0)
        except KeyboardInterrupt:
            self.interrupted = True
            self.console.event(time.monotonic() - t0, "interrupted: writing the report of what ran so far")
        self._poll(time.monotonic() - t0, detectors, telemetry)

    def _serve(self, rng: Any, data: dict, incidents: list[Incident], detectors: IncidentDetectors,
               telemetry: Telemetry, t0: float) -> None:  # fmt: skip
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
    def _poll(self, t: float, detectors: IncidentDetectors, telemetry: Telemetry) -> None:
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
        view = View(
            t=t, calls=self.calls, window_calls=len(window),
            p50_s=quantile(window, 0.5) if window else None, p95_s=quantile(window, 0.95) if window else None,
            max_s=max(window) if window else None, latency_anomalies_2s=len(self._anomaly_times),
            drift_share=first_value(points, semconv.DRIFT_SHARE.name),
            psi=by_feature(points, semconv.DRIFT_SCORE.name, "psi"), ks_p=by_feature(points, semconv.DRIFT_P_VALUE.name, "ks"),
            accuracy_realized=accuracy(points, "realized"), accuracy_estimated=accuracy(points, "estimated"),
            labels_joined=int(sum(p.value for a, p in points.get(semconv.LABEL_COUNT.name, ())
                                  if a.get(semconv.ML_LABEL_OUTCOME) == "joined")),
        )  # fmt: skip
        with self._alerts_lock:
            new_alerts, self._new_alerts = self._new_alerts, []
        for alert in new_alerts:
            entry = {"at_s": round(alert.timestamp - self.t0_wall, 3), "signal": alert.signal, "model": alert.model,
                     "detector": alert.detector, "score": finite(alert.score), "trace_id": alert.trace_id}  # fmt: skip
            self.alert_count += 1
            if len(self.alerts) < _MAX_ALERTS:
                self.alerts.append(entry)
            where = (f"span at {entry['at_s']:.2f}s, trace {alert.trace_id[:8]}..." if alert.trace_id
                     else f"at {entry['at_s']:.2f}s, from the recording worker: no span")
            self.console.event(t, f"alert     {alert.text} ({where})")
        for event in detectors.observe(t, view):
            self.log.append(event)
            self._announce(t, event)
        if len(self.polls) < _MAX_POLLS:
            self.polls.append({
                "t": round(t, 3), "calls": view.calls, "p50_ms": ms(view.p50_s), "p95_ms": ms(view.p95_s),
                "max_ms": ms(view.max_s), "drift_share": view.drift_share,
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
                    f" (estimated {fmt(evidence['accuracy_estimated'])})")  # fmt: skip
        label = "DETECTED " if event["event"] == "detected" else "recovered"
        self.console.event(t, f"{label} {kind}: {what}")

    # -------------------------------------------------------------- summary
    def _summary(self, started_wall: float, started: float, telemetry: Telemetry, data: dict,
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
            "latency_ms": {"p50": ms(quantile(durations, 0.5)), "p95": ms(quantile(durations, 0.95)),
                           "max": ms(self.durations.max)},  # fmt: skip
            "interrupted": self.interrupted,
            "final": {"drift_share": first_value(points, semconv.DRIFT_SHARE.name),
                      "accuracy_realized": accuracy(points, "realized"),
                      "accuracy_estimated": accuracy(points, "estimated")},  # fmt: skip
            "events": self.log,
        }
