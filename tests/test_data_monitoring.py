"""Drift, data quality and delayed ground truth through the real instrumentation: a profile is
captured at fit, production inputs are profiled on the worker, labels join hours later, and
everything is exported as OTel metrics (asserted through InMemoryMetricReader)."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, mean_absolute_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import otel_mlmon
from otel_mlmon import semconv
from otel_mlmon.drift import get_profile
from otel_mlmon._internal.data import MIN_CHARGE_ROWS, MIN_CHARGE_ROWS_BATCHED
from otel_mlmon.quality.tracker import hub


@pytest.fixture
def data():
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    return X[order], y[order]


@pytest.fixture
def session(make_telemetry):
    telemetry = make_telemetry(label_store="memory", drift_max_rows_per_second=1e9)  # profile every call
    yield telemetry
    hub().configure(store="memory")


def _values(telemetry, spec, **match):
    return [(attrs, point) for _, _, attrs, point in telemetry.points(spec.name)
            if all(attrs.get(k) == v for k, v in match.items())]  # fmt: skip


def test_fit_attaches_a_profile_that_travels_with_pickle(session, data):
    X, y = data
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X[:400], y[:400])
    profile = get_profile(model)
    assert profile is not None
    assert len(profile.features) == X.shape[1]
    assert get_profile(pickle.loads(pickle.dumps(model))).to_json() == profile.to_json()
    assert get_profile(model.steps[1][1]) is None, "inner steps of a pipeline are not profiled"
    assert not session.spans(), "the predictions made for the profile are training, not traced"


def test_shifted_feature_drifts_and_unshifted_does_not(session, data):
    X, y = data
    otel_mlmon.set_model_info(model := LogisticRegression(max_iter=5000), name="cancer")
    model.fit(X, y)
    rng = np.random.default_rng(1)
    for _ in range(40):  # 1,000 rows from the training distribution
        model.predict(X[rng.integers(0, len(X), 25)])
    session.instrumentor.force_flush()
    rows = sum(p.value for _, p in _values(session, semconv.DATA_ROW_COUNT, **{semconv.ML_MODEL_NAME: "cancer"}))
    assert rows == 1000
    share = [p.value for _, p in _values(session, semconv.DRIFT_SHARE, **{semconv.ML_MODEL_NAME: "cancer"})]
    assert share and share[0] <= 0.1
    shifted = X.copy()
    shifted[:, 3] += 1.5 * X[:, 3].std()  # feature x3 shifts by 1.5 standard deviations
    for _ in range(40):
        model.predict(shifted[rng.integers(0, len(X), 25)])
    session.instrumentor.force_flush()
    psi = {a[semconv.ML_FEATURE_NAME]: p.value
           for a, p in _values(session, semconv.DRIFT_SCORE, **{semconv.ML_DRIFT_METHOD: "psi"})}
    assert max(psi, key=psi.get) == "x3" and psi["x3"] > 0.25
    bins = _values(session, semconv.DRIFT_BIN_COUNT, **{semconv.ML_FEATURE_NAME: "x3"})
    assert sum(p.value for _, p in bins) == 2000, "raw bin counts add up to the rows profiled"


def test_data_quality_events_are_counted_and_predict_is_unchanged(session, data):
    X, y = data
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)
    bad = X[:10].copy()
    bad[0, 0] = np.nan
    bad[1, 2] = np.inf
    bad[2, 5] = X[:, 5].max() * 10
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():  # the wrapper passes straight through
        expected = model.predict(bad)
    assert np.array_equal(model.predict(bad), expected)
    session.instrumentor.force_flush()
    issues = {(a[semconv.ML_FEATURE_NAME], a[semconv.ML_DATA_QUALITY_ISSUE]): p.value
              for a, p in _values(session, semconv.DATA_QUALITY_COUNT)}
    assert issues[("x0", "nan")] == 1
    assert issues[("x2", "inf")] == 1
    assert issues[("x5", "out_of_range")] >= 1
    schema = X[:5, :10]
    with pytest.raises(ValueError):
        model.predict(schema)  # the estimator's own error, unchanged


def test_delayed_labels_join_and_quality_equals_sklearn(session, data):
    X, y = data
    model = LogisticRegression(max_iter=5000).fit(X[:300], y[:300])
    otel_mlmon.set_model_info(model, name="churn", version="7")
    ids = [f"req-{i}" for i in range(300, len(X))]
    with otel_mlmon.prediction_ids(ids):
        predicted = model.predict(X[300:])
    session.instrumentor.force_flush()
    result = otel_mlmon.record_ground_truth(ids, y[300:])
    assert result.joined == len(ids) and result.unknown_id == 0
    again = otel_mlmon.record_ground_truth(ids[:5], y[300:305])
    assert again.duplicate == 5
    with pytest.raises(ValueError):
        otel_mlmon.record_ground_truth(ids[:3], y[:2])
    quality = {(a[semconv.ML_QUALITY_METRIC], a[semconv.ML_QUALITY_SOURCE]): p.value
               for a, p in _values(session, semconv.QUALITY_SCORE, **{semconv.ML_MODEL_NAME: "churn"})}
    assert quality[("accuracy", "realized")] == accuracy_score(y[300:], predicted)
    labels = {a[semconv.ML_LABEL_OUTCOME]: p.value
              for a, p in _values(session, semconv.LABEL_COUNT, **{semconv.ML_MODEL_NAME: "churn"})}
    assert labels["joined"] == len(ids) and labels["duplicate"] == 5
    delays = _values(session, semconv.LABEL_DELAY, **{semconv.ML_MODEL_NAME: "churn"})
    assert delays and delays[0][1].count == len(ids)


def test_generated_ids_and_estimated_quality_before_labels(session, data):
    X, y = data
    model = LogisticRegression(max_iter=5000).fit(X[:300], y[:300])
    otel_mlmon.set_model_info(model, name="scored")
    model.predict_proba(X[300:])
    ids = otel_mlmon.last_prediction_ids()
    assert ids is not None and len(ids) == len(X) - 300 and len(set(ids)) == len(ids)
    session.instrumentor.force_flush()
    estimated = {a[semconv.ML_QUALITY_METRIC]: p.value
                 for a, p in _values(session, semconv.QUALITY_SCORE, **{semconv.ML_MODEL_NAME: "scored",
                                                                         semconv.ML_QUALITY_SOURCE: "estimated"})}  # fmt: skip
    assert 0.8 <= estimated["accuracy"] <= 1.0


def test_regressor_quality(session):
    X, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(X[:300], y[:300])
    otel_mlmon.set_model_info(model, name="reg")
    predicted = model.predict(X[300:])
    ids = list(otel_mlmon.last_prediction_ids())
    session.instrumentor.force_flush()
    otel_mlmon.record_ground_truth(ids, y[300:])
    quality = {a[semconv.ML_QUALITY_METRIC]: p.value
               for a, p in _values(session, semconv.QUALITY_SCORE, **{semconv.ML_MODEL_NAME: "reg"})}
    assert quality["mae"] == pytest.approx(mean_absolute_error(y[300:], predicted), rel=1e-12)


def test_rate_budget_bounds_profiling_of_many_small_calls(make_telemetry, data):
    X, y = data
    telemetry = make_telemetry(label_store="none", drift_max_rows_per_second=1000)
    model = otel_mlmon.set_model_info(LogisticRegression(max_iter=5000), name="budget").fit(X, y)
    started = time.monotonic()
    for i in range(3000):  # one-row NumPy calls: each profiled call is charged 8 rows (its fixed cost)
        model.predict(X[i % len(X):i % len(X) + 1])
    elapsed = time.monotonic() - started
    telemetry.instrumentor.force_flush()
    rows = sum(p.value for _, p in _values(telemetry, semconv.DATA_ROW_COUNT, **{semconv.ML_MODEL_NAME: "budget"}))
    allowed = (1000 + 1000 * elapsed) / MIN_CHARGE_ROWS_BATCHED  # burst of one second's worth, then the rate
    assert rows <= allowed + 1, (rows, allowed)
    # not starved: the burst alone pays for 125 of them (profiled together on the worker)
    assert rows >= 0.9 * 1000 / MIN_CHARGE_ROWS_BATCHED, rows


def test_small_dataframe_calls_are_charged_their_per_call_cost(make_telemetry, data):
    import pandas as pd  # the test extra

    X, y = data
    telemetry = make_telemetry(label_store="none", drift_max_rows_per_second=1000)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    model = otel_mlmon.set_model_info(LogisticRegression(max_iter=5000), name="frames").fit(frame, y)
    started = time.monotonic()
    for i in range(600):  # one-row DataFrames are profiled call by call: charged 64 rows each
        model.predict(frame.iloc[i % len(X):i % len(X) + 1])
    elapsed = time.monotonic() - started
    telemetry.instrumentor.force_flush()
    rows = sum(p.value for _, p in _values(telemetry, semconv.DATA_ROW_COUNT, **{semconv.ML_MODEL_NAME: "frames"}))
    assert 1 <= rows <= (1000 + 1000 * elapsed) / MIN_CHARGE_ROWS + 1, (rows, elapsed)


def test_drift_and_rows_are_current_at_the_first_collection_after_traffic(make_telemetry):
    """No lag: a collection right after the calls (no sleep, no flush) already reads the drift
    and the rows those calls caused (the worker drains before the observables are read)."""
    telemetry = make_telemetry()
    X, y = load_breast_cancer(return_X_y=True)
    model = otel_mlmon.set_model_info(LogisticRegression(max_iter=5000), name="current").fit(X, y)
    shifted = X.copy()
    shifted[:, 3] += 3 * X[:, 3].std()
    rng = np.random.default_rng(0)
    for _ in range(12):
        model.predict(shifted[rng.integers(0, len(X), 100)])
    points: dict[str, list] = {}
    for name, _, a, p in telemetry.points():  # one collection
        if a.get(semconv.ML_MODEL_NAME) == "current" and name in (semconv.DRIFT_SHARE.name, semconv.DATA_ROW_COUNT.name):
            points.setdefault(name, []).append(p.value)
    assert points[semconv.DATA_ROW_COUNT.name] == [1200]
    assert points[semconv.DRIFT_SHARE.name] and points[semconv.DRIFT_SHARE.name][0] > 0
