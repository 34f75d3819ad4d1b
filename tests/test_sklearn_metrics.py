"""Metrics: names, units, bucket advice, exact counts, cardinality caps, thread safety."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from opentelemetry.sdk.metrics.export import HistogramDataPoint, NumberDataPoint
from sklearn.datasets import load_iris, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import otel_mlmon
from otel_mlmon import semconv

X, y = load_iris(return_X_y=True)
NAME = semconv.ML_MODEL_NAME


def by_name(points, name):
    return [(attrs, point) for metric, _, attrs, point in points if metric == name]


def test_core_metrics_names_units_and_values(telemetry):
    model = otel_mlmon.set_model_info(LogisticRegression(max_iter=500).fit(X, y), name="iris", version="1")
    model.predict(X[:5])
    model.predict(X[:10])
    model.predict_proba(X[:3])
    with pytest.raises(ValueError):
        model.predict(X[:, :2])
    points = telemetry.points()
    units = {metric: unit for metric, unit, _, _ in points}
    assert units[semconv.INFERENCE_DURATION.name] == "s"
    assert units[semconv.INFERENCE_ROW_COUNT.name] == "{row}"
    assert units[semconv.INFERENCE_BATCH_SIZE.name] == "{row}"
    assert all(not m.endswith("_total") for m in units)

    durations = by_name(points, semconv.INFERENCE_DURATION.name)
    ok = {(a[semconv.ML_OPERATION], a.get(semconv.ERROR_TYPE)): p.count for a, p in durations}
    assert ok == {("predict", None): 2, ("predict_proba", None): 1, ("predict", "ValueError"): 1}
    for attrs, point in durations:
        assert isinstance(point, HistogramDataPoint)
        assert tuple(point.explicit_bounds) == semconv.DURATION_BUCKETS
        assert attrs[NAME] == "iris" and attrs[semconv.ML_MODEL_VERSION] == "1"
        assert attrs[semconv.ML_FRAMEWORK] == "sklearn"
        assert 0 < point.sum < 5

    rows = {a[semconv.ML_OPERATION]: p.value for a, p in by_name(points, semconv.INFERENCE_ROW_COUNT.name)}
    assert rows == {"predict": 15, "predict_proba": 3}
    sizes = {a[semconv.ML_OPERATION]: (p.count, p.sum) for a, p in by_name(points, semconv.INFERENCE_BATCH_SIZE.name)}
    assert sizes == {"predict": (2, 15), "predict_proba": (1, 3)}

    classes = {a[semconv.ML_PREDICTION_CLASS]: p.value
               for a, p in by_name(points, semconv.PREDICTION_CLASS_COUNT.name)}  # fmt: skip
    expected = np.unique(np.concatenate([model.predict(X[:5]), model.predict(X[:10])]), return_counts=True)
    assert classes == {str(k): int(v) for k, v in zip(*expected)}

    (proba_attrs, proba), = by_name(points, semconv.PREDICTION_PROBABILITY.name)
    assert proba.count == 3
    assert proba.sum == pytest.approx(model.predict_proba(X[:3]).max(axis=1).sum())
    assert tuple(proba.explicit_bounds) == semconv.PROBABILITY_BUCKETS


def value_stats(session):
    return {a[semconv.ML_STATISTIC]: p.value for a, p in by_name(session.points(), semconv.PREDICTION_VALUE.name)}


def test_regressor_values_are_summarised_as_gauges(telemetry):
    # OpenTelemetry histograms reject negative values; regressor outputs are summarised instead.
    Xr, yr = make_regression(n_samples=300, n_features=4, random_state=0)
    model = LinearRegression().fit(Xr, yr)
    out = model.predict(Xr)
    assert out.min() < 0
    stats = value_stats(telemetry)
    assert set(stats) == set(semconv.VALUE_STATISTICS)
    assert stats["min"] == pytest.approx(out.min())
    assert stats["max"] == pytest.approx(out.max())
    assert stats["p50"] == pytest.approx(np.median(out))
    assert stats["mean"] == pytest.approx(out.mean())
    assert not by_name(telemetry.points(), semconv.PREDICTION_CLASS_COUNT.name)


def test_probability_histogram_is_a_bounded_sample(make_telemetry):
    session = make_telemetry(output_sample_size=50)
    model = LogisticRegression(max_iter=500).fit(X, y)
    model.predict_proba(X)
    (_, point), = by_name(session.points(), semconv.PREDICTION_PROBABILITY.name)
    assert point.count == 50
    assert 1 / 3 <= point.min <= point.max <= 1.0


def test_output_statistics_ignore_in_place_changes_after_return(telemetry):
    Xr, yr = make_regression(n_samples=30, n_features=2, random_state=1)
    model = LinearRegression().fit(Xr, yr)
    out = model.predict(Xr[:5])
    expected = out.mean()
    out[:] = 1e9  # the user reuses the buffer before the worker drained it
    assert value_stats(telemetry)["mean"] == pytest.approx(expected)


def test_class_label_cap(make_telemetry):
    session = make_telemetry(max_class_labels=3)
    rng = np.random.default_rng(0)
    Xc = rng.normal(size=(400, 3))
    yc = np.arange(400) % 8
    model = DecisionTreeClassifier(random_state=0).fit(Xc, yc)
    predicted = model.predict(Xc)
    counts = {a[semconv.ML_PREDICTION_CLASS]: p.value
              for a, p in by_name(session.points(), semconv.PREDICTION_CLASS_COUNT.name)}  # fmt: skip
    assert len(counts) == 4 and semconv.OTHER in counts
    assert sum(counts.values()) == len(predicted)


def test_model_cardinality_cap(make_telemetry):
    session = make_telemetry(max_models=2)
    for i in range(5):
        otel_mlmon.set_model_info(LogisticRegression(max_iter=300).fit(X, y), name=f"m{i}").predict(X[:1])
    names = {a[NAME] for a, _ in by_name(session.points(), semconv.INFERENCE_DURATION.name)}
    assert names == {"m0", "m1", semconv.OTHER}
    spans = {s.attributes[NAME] for s in session.spans()}
    assert spans == {f"m{i}" for i in range(5)}  # spans keep the real name


def test_threads_lose_no_counts(telemetry):
    model = LogisticRegression(max_iter=500).fit(X, y)
    threads_n, calls = 8, 1000
    barrier = threading.Barrier(threads_n)
    errors = []

    def work(seed):
        rows = X[seed % 10: seed % 10 + 2]
        barrier.wait()
        try:
            for _ in range(calls):
                model.predict(rows)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    points = telemetry.points()
    (_, duration), = by_name(points, semconv.INFERENCE_DURATION.name)
    (_, rows), = by_name(points, semconv.INFERENCE_ROW_COUNT.name)
    assert duration.count == threads_n * calls
    assert rows.value == threads_n * calls * 2
    assert sum(p.value for _, p in by_name(points, semconv.PREDICTION_CLASS_COUNT.name)) == threads_n * calls * 2
    assert len(telemetry.spans()) == threads_n * calls
    assert not by_name(points, semconv.MONITOR_DROPPED_COUNT.name)


def test_full_queue_drops_and_counts_without_blocking(make_telemetry):
    session = make_telemetry(queue_size=16, flush_interval_ms=60_000)
    model = LogisticRegression(max_iter=500).fit(X, y)
    recorder = session.instrumentor._holder.monitor.recorder
    with recorder._lock:  # hold the worker off so that the queue fills up
        for _ in range(40):
            model.predict(X[:1])
    points = session.points()
    (_, dropped), = by_name(points, semconv.MONITOR_DROPPED_COUNT.name)
    (_, duration), = by_name(points, semconv.INFERENCE_DURATION.name)
    assert dropped.value + duration.count == 40
    assert dropped.value >= 40 - 16
    assert len(session.spans()) == 40  # spans are not affected


def test_queue_size_gauge_and_flush_on_collect(make_telemetry):
    session = make_telemetry(flush_interval_ms=60_000)  # the worker will not run during the test
    model = LogisticRegression(max_iter=500).fit(X, y)
    model.predict(X[:4])
    points = session.points()  # collection drains the queue
    (_, rows), = by_name(points, semconv.INFERENCE_ROW_COUNT.name)
    assert rows.value == 4
    (_, queue), = by_name(points, semconv.MONITOR_QUEUE_SIZE.name)
    assert isinstance(queue, NumberDataPoint) and queue.value == 0


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_pending_predictions_are_exact_at_the_first_collection(make_telemetry, store, tmp_path):
    """A collection drains the queue before any observable reads the quality hub: right after
    traffic, the first collection's ``ml.prediction.pending`` already counts every row."""
    session = make_telemetry(label_store=store, label_store_path=str(tmp_path / "p.sqlite"), flush_interval_ms=60_000)
    model = otel_mlmon.set_model_info(LogisticRegression(max_iter=500).fit(X, y), name="pending")

    def pending():
        (_, point), = by_name(session.points(), semconv.PREDICTION_PENDING.name)
        return point.value

    before = pending()
    for i in range(2000):
        with otel_mlmon.prediction_ids([f"pending-{store}-{i}-a", f"pending-{store}-{i}-b"]):
            model.predict(X[:2])
    assert [pending() - before for _ in range(3)] == [4000, 4000, 4000]


def test_tuple_outputs_are_not_mistaken_for_predictions(telemetry):
    from sklearn.gaussian_process import GaussianProcessRegressor

    Xr, yr = make_regression(n_samples=30, n_features=2, random_state=1)
    model = GaussianProcessRegressor().fit(Xr, yr)
    mean, std = model.predict(Xr[:5], return_std=True)  # (mean, std): not summarised
    assert value_stats(telemetry) == {}
    expected = model.predict(Xr[:5])
    assert value_stats(telemetry)["mean"] == pytest.approx(expected.mean())
    assert not telemetry.points(semconv.MONITOR_ERROR_COUNT.name)
