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


class Unprintable:
    """A label whose text form fails: class counting cannot name it."""

    def __str__(self):
        raise RuntimeError("no text")

    __repr__ = __str__


class AnyInput(ClassifierMixin, BaseEstimator):
    def fit(self, X=None, y=None):
        self.classes_ = np.array([0, 1])
        self.label_ = 1
        return self

    def predict(self, X):
        out = np.empty(2, dtype=object)
        out[:] = [self.label_, self.label_]
        return out


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
        assert result.tolist() == [1, 1]
    assert errors(telemetry)[("start", "RuntimeError")] == 3
    logged = [r for r in caplog.records if "internal error in start" in r.getMessage()]
    assert len(logged) == 1


def test_failure_in_output_statistics_keeps_other_metrics(telemetry):
    model = AnyInput().fit()
    model.label_ = label = Unprintable()
    result = model.predict([[0.0], [1.0]])
    assert result[0] is label and result[1] is label
    points = telemetry.points()
    assert errors(telemetry)[("output_statistics", "RuntimeError")] == 1
    rows = [p.value for name, _, _, p in points if name == semconv.INFERENCE_ROW_COUNT.name]
    assert rows == [2]
    assert len(telemetry.spans()) == 1
