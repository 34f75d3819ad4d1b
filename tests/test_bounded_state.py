"""Provider-tied state is rebuilt on re-instrument, and every structure keyed by something the
caller controls (model names, versions, class labels) stays under a documented bound
(issue 17, parts 4 and 5). Real SDK providers; sizes asserted on the internal structures."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import otel_mlmon
from otel_mlmon import semconv
from otel_mlmon.quality.tracker import hub

from conftest import Telemetry


def _by_model(telemetry, spec, name):
    return [p for _, _, attrs, p in telemetry.points(spec.name) if attrs.get(semconv.ML_MODEL_NAME) == name]


def test_reinstrumenting_rebuilds_provider_tied_state():
    """uninstrument() then instrument(new providers): a model called before keeps its drift and
    row counts, exactly like an identical model first called under the new providers."""
    X, y = load_breast_cancer(return_X_y=True)
    old = otel_mlmon.set_model_info(LogisticRegression(max_iter=5000), name="old")
    new = otel_mlmon.set_model_info(LogisticRegression(max_iter=5000), name="new")
    first = Telemetry(label_store="memory", drift_max_rows_per_second=1e9)
    try:
        old.fit(X, y)
        new.fit(X, y)
        old.predict(X[:100])  # builds the cached per-model state under the first providers
    finally:
        first.close()
    second = Telemetry(label_store="memory", drift_max_rows_per_second=1e9)
    try:
        rng = np.random.default_rng(0)
        for _ in range(30):
            rows = X[rng.integers(0, len(X), 200)]
            old.predict(rows)
            new.predict(rows)
        second.instrumentor.force_flush()
        for spec in (semconv.DATA_ROW_COUNT, semconv.DRIFT_SCORE, semconv.DRIFT_BIN_COUNT):
            got = {name: _by_model(second, spec, name) for name in ("old", "new")}
            assert got["new"], f"{spec.name}: the new model has points"
            assert len(got["old"]) == len(got["new"]), spec.name
        rows = {name: sum(p.value for p in _by_model(second, semconv.DATA_ROW_COUNT, name)) for name in ("old", "new")}
        assert rows == {"old": 6000, "new": 6000}
        assert len(second.spans()) == 60
    finally:
        second.close()
        hub().configure(store="memory")
