"""Alerts at every default, through ``instrument()``: ordinary traffic of three models raises none;
a real stall of one model raises exactly one latency alert, early, and none at its recovery.

This is the scenario of issue 13 as a user runs it: nothing is configured, the anomaly processor
that ``instrument()`` installs raises the alerts (``ml.alert.count``, and ``ml.anomaly.alert`` on
the span that opened the incident)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from helpers import stallable_classifier
from otel_mlmon import semconv

STALL = 0.02  # +20 ms on every call of the stalled model
STALL_CALLS = 150


Stallable = stallable_classifier()


@pytest.fixture
def models():
    X, y = load_breast_cancer(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y)
    pipeline = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))]).fit(X, y)
    stallable = Stallable(max_iter=5000).fit(StandardScaler().fit_transform(X), y)
    yield [forest, pipeline, stallable], X
    Stallable.delay = 0.0


def _traffic(models, X, rounds, rng, spans_of_stalled=None):
    """``rounds`` calls per model, interleaved, batches of 1-64 rows, small random pauses."""
    for _ in range(rounds):
        for model in models:
            start = int(rng.integers(0, len(X) - 64))
            model.predict(X[start:start + int(rng.integers(1, 65))])
        if rng.random() < 0.2:
            time.sleep(float(rng.uniform(0.0, 0.003)))


def _alerts(telemetry) -> dict:
    return {(a[semconv.ML_MODEL_NAME], a[semconv.ML_ANOMALY_SIGNAL]): p.value
            for _, _, a, p in telemetry.points(semconv.ALERT_COUNT.name)}  # fmt: skip


def test_ordinary_traffic_is_quiet_and_a_stall_alerts_once(make_telemetry, models):
    models, X = models
    telemetry = make_telemetry()  # every setting at its default
    rng = np.random.default_rng(0)
    _traffic(models, X, 1500, rng)
    assert _alerts(telemetry) == {}, "ordinary traffic raised alerts"
    telemetry.clear()

    Stallable.delay = STALL
    _traffic(models[2:], X, STALL_CALLS, rng)
    Stallable.delay = 0.0
    stall = [s for s in telemetry.spans() if s.name.startswith("predict")]
    _traffic(models, X, 300, rng)  # recovery, and the other models as before

    assert _alerts(telemetry) == {(models[2].__class__.__name__, "latency"): 1}
    onsets = [i for i, s in enumerate(stall) if s.attributes.get(semconv.ML_ANOMALY_ALERT)]
    assert len(onsets) == 1 and onsets[0] < 50, onsets  # within 50 calls of the stall's start
    assert stall[onsets[0]].attributes[semconv.ML_ANOMALY_SIGNAL] == "latency"
