"""Provider-tied state is rebuilt on re-instrument, and every structure keyed by something the
caller controls (model names, versions, class labels) stays under a documented bound
(issue 17, parts 4 and 5). Real SDK providers; sizes asserted on the internal structures."""

from __future__ import annotations

import pickle
import time
from collections import deque

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import otel_mlmon
from otel_mlmon import semconv
from otel_mlmon._internal import state
from otel_mlmon._internal.cardinality import MAX_CACHED_ATTRIBUTES
from otel_mlmon._internal.monitor import _MAX_WATCHES
from otel_mlmon.quality.tracker import hub

from conftest import Telemetry


@pytest.fixture(autouse=True)
def fresh_hub(monkeypatch):
    """A process-wide quality hub of its own: these tests fill its 100 model slots."""
    from otel_mlmon.quality import tracker  # noqa: PLC0415

    monkeypatch.setattr(tracker, "_HUB", tracker.QualityHub(store="memory"))


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


def _containers(obj) -> dict[str, int]:
    """Size of every dict, set, list and deque attribute of ``obj`` (whatever their names)."""
    out = {}
    for name in dir(obj):
        if name.startswith("__"):
            continue
        try:
            value = getattr(obj, name)
        except Exception:  # noqa: BLE001 - properties that need state
            continue
        if isinstance(value, (dict, set, list, deque)):
            out[f"{type(obj).__name__}.{name}"] = len(value)
    return out


def test_twenty_thousand_model_names_keep_every_structure_bounded(monkeypatch):
    """A service that deserialises a model per request, each with a new name: exported series
    stay at 100 names + _other, and no internal structure grows with the names (issue 17, 5)."""
    names, calls_per_name = 20_000, 1
    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[:, :4], y
    blob = pickle.dumps(LogisticRegression(max_iter=2000).fit(X, y))
    from otel_mlmon.anomaly import processor as processor_module  # noqa: PLC0415
    from otel_mlmon.anomaly.delivery import DropCounts  # noqa: PLC0415

    counts, drops = processor_module._Counts(), DropCounts()  # process-wide: fresh ones, measured alone
    monkeypatch.setattr(processor_module, "_COUNTS", counts)
    monkeypatch.setattr(processor_module, "DROPS", drops)
    telemetry = Telemetry(label_store="memory", anomaly_multivariate=True)
    monitor = telemetry.instrumentor._holder.monitor
    recorder = monitor.recorder
    started = time.monotonic()
    try:
        for i in range(names):
            model = otel_mlmon.set_model_info(pickle.loads(blob), name=f"model-{i}", version=f"v{i % 3}")
            with otel_mlmon.prediction_ids([f"{i}-{j}" for j in range(4)]):
                for _ in range(calls_per_name):
                    model.predict(X[:4])
            if i % 100 == 99:
                otel_mlmon.record_ground_truth([f"{k}-{j}" for k in range(i - 99, i + 1) for j in range(4)],
                                               np.tile(y[:4], 100))  # fmt: skip
            if i % 2000 == 1999:
                telemetry.points()  # collections in between, as a periodic reader would
        last = model
        telemetry.instrumentor.force_flush()
        elapsed = time.monotonic() - started
        points = telemetry.points()

        # Every internal structure, found by type rather than by name, stays under its bound.
        max_models = recorder._settings.max_models
        bounds = {
            "Recorder._forests": max_models,
            "SeriesAttributes.models": max_models,
            "SeriesAttributes.attrs": MAX_CACHED_ATTRIBUTES * (max_models + 1),
            "SeriesAttributes.labels": MAX_CACHED_ATTRIBUTES * (max_models + 1),
            "Monitor._watches": _MAX_WATCHES,
        }
        sizes = {}
        for obj in (recorder, recorder._series, monitor, recorder.data, hub(), counts, drops):
            sizes.update(_containers(obj))
        sizes["state._STATES"] = len(state._STATES)
        largest = max(bounds.values())
        for name, size in sizes.items():
            assert size <= bounds.get(name, max_models + 1), (name, size, sizes)
            assert size <= largest < names // 4, (name, size)

        # A model first seen after all the others still has its detectors (LRU, not "full").
        assert state.state_of(last, monitor.adapter).ops["predict"].watch is not None

        # Telemetry of the first 100 names is right; the rest is _other.
        rows: dict[str, int] = {}
        classes: dict[str, int] = {}
        for name, _, attrs, point in points:
            if name == semconv.INFERENCE_ROW_COUNT.name:
                rows[attrs[semconv.ML_MODEL_NAME]] = rows.get(attrs[semconv.ML_MODEL_NAME], 0) + point.value
            elif name == semconv.PREDICTION_CLASS_COUNT.name:
                model_name = attrs[semconv.ML_MODEL_NAME]
                classes[model_name] = classes.get(model_name, 0) + point.value
        expected_first = {f"model-{i}": 4 * calls_per_name for i in range(max_models)}
        assert rows == {**expected_first, semconv.OTHER: 4 * calls_per_name * (names - max_models)}
        assert classes == rows
        data_rows = {a[semconv.ML_MODEL_NAME]: p.value for n, _, a, p in points if n == semconv.DATA_ROW_COUNT.name}
        assert {k: v for k, v in data_rows.items() if k != semconv.OTHER} == expected_first
        assert elapsed < 60, elapsed
    finally:
        telemetry.close()


def test_alert_counts_and_labels_and_names_are_bounded():
    from otel_mlmon._internal.cardinality import MAX_LABEL_LENGTH, SeriesAttributes
    from otel_mlmon._internal.state import MAX_NAME_LENGTH, MetricKey, ModelState
    from otel_mlmon.anomaly.processor import _MAX_ALERT_SERIES, _Counts
    from otel_mlmon.instrumentation.sklearn import _SklearnAdapter
    from otel_mlmon.model_info import ATTR

    counts = _Counts()
    for i in range(3 * _MAX_ALERT_SERIES):
        counts.alert("provider", (f"model-{i}", "latency"))
    assert len(counts._alerts) == _MAX_ALERT_SERIES + 1
    assert counts._alerts[("provider", semconv.OTHER, "latency")] == 2 * _MAX_ALERT_SERIES

    series = SeriesAttributes(max_models=2)
    key = MetricKey("m", None, "sklearn", "predict", "labels")
    attrs = series.of(key)
    assert series.label(key, attrs, "x" * 10_000, cap=3) == "x" * MAX_LABEL_LENGTH
    assert [series.label(key, attrs, s, cap=3) for s in "abc"] == ["a", "b", semconv.OTHER]

    model = LogisticRegression()
    model.__dict__[ATTR] = {"name": "n" * 100_000, "version": 12}  # not through set_model_info
    described = ModelState(model, _SklearnAdapter())
    assert described.name == "n" * MAX_NAME_LENGTH and described.version == "12"
