"""Drift alerts at every default, through ``instrument()`` (issue 14).

breast_cancer (30 features), ``LogisticRegression`` fitted on it (its reference profile is taken
at fit), traffic of 100 rows every 50 ms drawn from the same rows. A shift of one standard
deviation in 'worst symmetry' raises one drift alert within 30 s, naming the feature in the
alert's attributes (the default alert sink: one OpenTelemetry log record); unshifted traffic
raises none.

The calm test covers the issue's 10 minutes of traffic on an accelerated clock: the wall clock
the instrumentation places its calls on (``otel_mlmon._internal.clock.offset_ns``, added to the
performance counter) advances by 50 ms per call, and the worker is flushed every 20 calls (one simulated second, the default
flush interval). Everything else is the real code at its defaults: the rate budget (2000 rows/s
of that clock), the row sample, the windows, the monitor's verdict and the incident layer. The
same harness then shifts the feature, so a quiet result cannot come from a harness that never
alerts.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import otel_mlmon
from otel_mlmon import semconv

FEATURE = "worst symmetry"
ROWS = 100
PERIOD_S = 0.05


@pytest.fixture
def alert_logs():
    """The records of the default alert sink (OpenTelemetry logs through the global provider)."""
    from opentelemetry._logs import get_logger_provider, set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    exporter = InMemoryLogRecordExporter()
    provider = get_logger_provider()
    if not isinstance(provider, LoggerProvider):
        provider = LoggerProvider()
        set_logger_provider(provider)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    yield exporter
    exporter.clear()


@pytest.fixture
def served():
    frame = load_breast_cancer(as_frame=True)
    X, y = frame.data, frame.target
    model = otel_mlmon.set_model_info(LogisticRegression(max_iter=10_000), name="cancer")
    return model, X, y


def _drift_alerts(telemetry) -> int:
    return sum(p.value for _, _, a, p in telemetry.points(semconv.ALERT_COUNT.name)
               if a[semconv.ML_ANOMALY_SIGNAL] == "drift")  # fmt: skip


def _drift_records(logs, model="cancer"):
    return [r.log_record for r in logs.get_finished_logs()
            if (r.log_record.attributes or {}).get(semconv.ML_ANOMALY_SIGNAL) == "drift"
            and r.log_record.attributes.get(semconv.ML_MODEL_NAME) == model]  # fmt: skip


def _batch(X, rng, shift: float):
    batch = X.iloc[rng.integers(0, len(X), ROWS)].copy()
    if shift:
        batch[FEATURE] += shift
    return batch


def test_one_sd_shift_alerts_within_30s_naming_the_feature(make_telemetry, served, alert_logs):
    model, X, y = served
    telemetry = make_telemetry()  # every setting at its default
    model.fit(X, y)
    rng = np.random.default_rng(14)
    sd = float(X[FEATURE].std())

    calm_until = time.monotonic() + 10.0  # 10 s of ordinary traffic in real time first
    while time.monotonic() < calm_until:
        model.predict(_batch(X, rng, 0.0))
        time.sleep(PERIOD_S)
    telemetry.instrumentor.force_flush()
    assert _drift_alerts(telemetry) == 0, "ordinary traffic raised a drift alert"

    start = time.monotonic()
    alerted_after = None
    next_check = start + 1.0
    while time.monotonic() - start < 40.0:
        model.predict(_batch(X, rng, sd))
        time.sleep(PERIOD_S)
        now = time.monotonic()
        if now >= next_check:
            next_check = now + 1.0
            if alerted_after is None and _drift_alerts(telemetry):
                alerted_after = now - start
            if alerted_after is not None and now - start > alerted_after + 10.0:
                break  # 10 s more of the shift: still one alert
    print(f"drift alert {alerted_after:.1f} s after the shift" if alerted_after else "no drift alert")
    assert alerted_after is not None and alerted_after <= 30.0, f"no drift alert within 30 s ({alerted_after})"
    assert _drift_alerts(telemetry) == 1, "one alert per drift episode"

    telemetry.instrumentor.force_flush()
    records = _drift_records(alert_logs)
    assert len(records) == 1
    attributes = dict(records[0].attributes)
    assert attributes[semconv.ML_FEATURE_NAME] == FEATURE
    assert tuple(attributes[semconv.ML_DRIFT_FEATURES])[0] == FEATURE
    assert attributes[semconv.ML_ANOMALY_DETECTOR] == "DriftMonitor"
    # names, never values: every attribute is a name, a label or the alert's score
    assert all(not isinstance(v, float) for k, v in attributes.items() if k != semconv.ML_ANOMALY_SCORE)


def test_ten_minutes_of_calm_traffic_raise_no_drift_alert(make_telemetry, served, alert_logs, monkeypatch):
    import otel_mlmon._internal.clock as clock

    model, X, y = served
    monkeypatch.setattr(clock, "refresh", lambda: None)  # the simulated clock is not reset to the real one
    monkeypatch.setattr(clock, "offset_ns", clock.offset_ns)  # restored after the test
    telemetry = make_telemetry()  # every setting at its default
    model.fit(X, y)
    rng = np.random.default_rng(140)
    calls_per_flush = round(1.0 / PERIOD_S)

    def traffic(seconds: float, shift: float, stop_at_alert: bool = False) -> float | None:
        for call in range(round(seconds / PERIOD_S)):
            model.predict(_batch(X, rng, shift))
            clock.offset_ns += round(PERIOD_S * 1e9)
            if (call + 1) % calls_per_flush == 0:
                telemetry.instrumentor.force_flush()
                if stop_at_alert and _drift_alerts(telemetry):
                    return (call + 1) * PERIOD_S
        return None

    traffic(600.0, 0.0)
    profiled = sum(p.value for _, _, a, p in telemetry.points(semconv.DATA_ROW_COUNT.name))
    assert profiled >= 0.9 * 600 * ROWS / PERIOD_S, f"the budget profiles about every row, {profiled}"
    assert _drift_alerts(telemetry) == 0, "calm traffic raised a drift alert"
    assert _drift_records(alert_logs) == []

    # the same harness sees a shift
    after = traffic(60.0, float(X[FEATURE].std()), stop_at_alert=True)
    assert after is not None and after <= 30.0, after


def test_one_row_calls_are_not_starved_and_alert(make_telemetry, alert_logs):
    """One-row NumPy calls, as fast as they come: the budget profiles about 2000 / 8 = 250 of
    them per second (their samples are profiled together on the worker), enough for a drift
    alert within 30 s of the shift (at the old 64-row charge: 31 rows per second)."""
    X, y = load_breast_cancer(return_X_y=True)
    telemetry = make_telemetry()  # every setting at its default
    model = otel_mlmon.set_model_info(LogisticRegression(max_iter=10_000), name="single").fit(X, y)
    rng = np.random.default_rng(15)
    column = list(load_breast_cancer().feature_names).index(FEATURE)
    shifted = X.copy()
    shifted[:, column] += X[:, column].std()

    def alerts() -> int:
        return sum(p.value for _, _, a, p in telemetry.points(semconv.ALERT_COUNT.name)
                   if a[semconv.ML_ANOMALY_SIGNAL] == "drift" and a[semconv.ML_MODEL_NAME] == "single")  # fmt: skip

    def traffic(data, seconds, stop_at_alert=False):
        start = time.monotonic()
        next_check = start + 1.0
        while time.monotonic() - start < seconds:
            i = int(rng.integers(0, len(data)))
            model.predict(data[i:i + 1])
            if stop_at_alert and time.monotonic() >= next_check:
                next_check += 1.0
                if alerts():
                    return time.monotonic() - start
        return None

    traffic(X, 8.0)
    telemetry.instrumentor.force_flush()
    rows = sum(p.value for _, _, a, p in telemetry.points(semconv.DATA_ROW_COUNT.name) if a[semconv.ML_MODEL_NAME] == "single")
    assert rows >= 0.5 * 8 * 2000 / 8, f"one-row calls starved: {rows} rows profiled in 8 s"
    assert alerts() == 0
    after = traffic(shifted, 30.0, stop_at_alert=True)
    assert after is not None and after <= 30.0, f"no drift alert within 30 s of the shift ({after})"
    telemetry.instrumentor.force_flush()
    records = _drift_records(alert_logs, model="single")
    assert len(records) == 1 and records[0].attributes[semconv.ML_FEATURE_NAME] == f"x{column}"
