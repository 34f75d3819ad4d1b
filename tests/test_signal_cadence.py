"""Worker-side signals make one point per model per second, however often the queue drains.

A service that records labels per request drains the recording queue before every join, so
after nearly every call. Judged per drain, the data-quality rate of one to eight rows is 0 most
of the time and 1/3 now and then: the demo raised a data-quality alert every quarter second
that way. Here, traffic with a few out-of-range values (held-out rows against the training
profile) and a label recorded after every call: the data-quality detector sees one point per
second, and ordinary traffic raises no alert.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import otel_mlmon
from otel_mlmon import semconv
from otel_mlmon._internal.cadence import SIGNAL_EVERY_S, SeriesCadence


def test_cadence_adds_up_across_drains_and_makes_one_point_per_second():
    cadence = SeriesCadence(max_keys=2)
    cadence.add("m", issues=1, rows=3)
    assert cadence.due("m", 100.0) == (1 / 3, None)  # the first point at once
    cadence.add("m", issues=0, rows=5, out_sum=1.5, out_n=2)
    assert cadence.due("m", 100.5) is None  # not a second yet: the sums go on
    cadence.add("m", issues=1, rows=2)
    assert cadence.due("m", 100.0 + SIGNAL_EVERY_S) == (1 / 7, 0.75)
    cadence.add("a")
    cadence.add("b")  # beyond max_keys: no worker-side points for it
    assert cadence.due("b", 200.0) is None and cadence.due("a", 200.0) == (None, None)


def test_labels_after_every_call_make_no_data_quality_noise(make_telemetry):
    session = make_telemetry(drift_max_rows_per_second=1e9)  # every row profiled
    X, y = load_breast_cancer(return_X_y=True)
    model = otel_mlmon.set_model_info(make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
                                      name="per-request-labels").fit(X[::2], y[::2])  # fmt: skip
    plane = session.instrumentor._holder.monitor.recorder.data
    points = []
    original = plane._observe

    def observe(key, signal, value, now):
        points.append((signal, now))
        return original(key, signal, value, now)

    plane._observe = observe
    rng = np.random.default_rng(3)
    held_out, labels = X[1::2], y[1::2]  # a few values beyond the training range: data-quality events
    started = time.monotonic()
    call = 0
    while time.monotonic() - started < 4.0:
        rows = rng.integers(0, len(held_out), int(rng.integers(1, 9)))
        ids = [f"r{call}-{i}" for i in range(len(rows))]
        with otel_mlmon.prediction_ids(ids):
            model.predict_proba(held_out[rows])
        otel_mlmon.record_ground_truth(ids, labels[rows])  # drains the queue before joining
        call += 1
    session.instrumentor.force_flush()
    elapsed = time.monotonic() - started
    quality_points = [t for signal, t in points if signal == "data_quality"]
    assert call > 100
    assert 2 <= len(quality_points) <= elapsed / SIGNAL_EVERY_S + 2, (len(quality_points), call)
    alerts = {a[semconv.ML_ANOMALY_SIGNAL]: p.value for _, _, a, p in session.points(semconv.ALERT_COUNT.name)
              if a.get(semconv.ML_MODEL_NAME) == "per-request-labels"}  # fmt: skip
    assert not alerts.get("data_quality") and not alerts.get("output"), alerts
    issues = sum(p.value for _, _, a, p in session.points(semconv.DATA_QUALITY_COUNT.name)
                 if a.get(semconv.ML_DATA_QUALITY_ISSUE) == "out_of_range")
    assert issues > 0, "the traffic has data-quality events, so a quiet result means something"
