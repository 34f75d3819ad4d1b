"""Internal failures are caught, counted and logged once; the model call is never affected."""

from __future__ import annotations

import logging

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from otel_mlmon import semconv


class BrokenShape:
    """An input whose ``shape`` raises: otel-mlmon's span set-up fails on it."""

    @property
    def shape(self):
        raise RuntimeError("no shape for you")


class AnyInput(ClassifierMixin, BaseEstimator):
    def fit(self, X=None, y=None):
        self.classes_ = np.array([0, 1])
        return self

    def predict(self, X):
        return np.array([1, "a"], dtype=object)  # labels that cannot be sorted together


def errors(session):
    return {
        (attrs[semconv.ML_MONITOR_STAGE], attrs[semconv.ERROR_TYPE]): point.value
        for name, _, attrs, point in session.points(semconv.MONITOR_ERROR_COUNT.name)
    }


def test_failure_in_span_setup_returns_the_real_result_and_is_counted_and_logged_once(telemetry, caplog):
    model = AnyInput().fit()
    with caplog.at_level(logging.WARNING, logger="otel_mlmon"):
        results = [model.predict(BrokenShape()) for _ in range(3)]
    for result in results:
        assert result.tolist() == [1, "a"]
    assert errors(telemetry)[("start", "RuntimeError")] == 3
    logged = [r for r in caplog.records if "internal error in start" in r.getMessage()]
    assert len(logged) == 1


def test_failure_in_output_statistics_keeps_other_metrics(telemetry):
    model = AnyInput().fit()
    assert model.predict([[0.0], [1.0]]).tolist() == [1, "a"]
    points = telemetry.points()
    assert errors(telemetry)[("output_statistics", "TypeError")] == 1
    rows = [p.value for name, _, _, p in points if name == semconv.INFERENCE_ROW_COUNT.name]
    assert rows == [2]
    assert len(telemetry.spans()) == 1
