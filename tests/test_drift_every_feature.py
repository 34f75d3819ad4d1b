"""Every feature of a wide model is exported, bounded (issue 14): bin counts, reference shares and
data-quality series for all 30 features of breast_cancer through ``instrument()`` at defaults,
with under/overflow bins, and the documented cardinality per model."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import otel_mlmon
from otel_mlmon import semconv

BINS = 10  # the profile's default quantile bins per numeric feature


@pytest.fixture
def served(make_telemetry):
    telemetry = make_telemetry()  # every setting at its default
    frame = load_breast_cancer(as_frame=True)
    X, y = frame.data, frame.target
    model = otel_mlmon.set_model_info(LogisticRegression(max_iter=10_000), name="wide").fit(X, y)
    rng = np.random.default_rng(3)
    for _ in range(15):  # 1500 rows: within the budget's burst (2000 rows), so every row is profiled
        model.predict(X.iloc[rng.integers(0, len(X), 100)])
    tails = X.iloc[:20].copy()
    tails.iloc[:10] = X.min().to_numpy() - X.std().to_numpy()  # every feature below its reference range
    tails.iloc[10:] = X.max().to_numpy() + X.std().to_numpy()  # and above it
    model.predict(tails)
    telemetry.instrumentor.force_flush()
    return telemetry, X


def _points(telemetry, spec):
    return [(a, p) for _, _, a, p in telemetry.points(spec.name) if a.get(semconv.ML_MODEL_NAME) == "wide"]


def test_all_30_features_have_bin_counts_with_tails(served):
    telemetry, X = served
    bins = _points(telemetry, semconv.DRIFT_BIN_COUNT)
    features = {a[semconv.ML_FEATURE_NAME] for a, _ in bins} - {"_output"}
    assert features == set(X.columns), "30 of 30 features exported"
    rows = sum(p.value for _, p in _points(telemetry, semconv.DATA_ROW_COUNT))
    assert rows == 15 * 100 + 20
    labels = {"underflow", "overflow", *map(str, range(BINS))}
    for feature in X.columns:
        counts = {a[semconv.ML_DRIFT_BIN]: p.value for a, p in bins if a[semconv.ML_FEATURE_NAME] == feature}
        assert set(counts) <= labels
        assert counts["underflow"] == 10 and counts["overflow"] == 10, feature
        assert sum(counts.values()) == rows, feature


def test_reference_shares_one_point_per_model_feature_and_bin(served):
    telemetry, X = served
    points = _points(telemetry, semconv.DRIFT_REFERENCE_SHARE)
    shares = {(a[semconv.ML_FEATURE_NAME], a[semconv.ML_DRIFT_BIN]): p.value for a, p in points}
    assert len(shares) == len(points) == 30 * (BINS + 2) + 3, "every bin, once"
    assert {f for f, _ in shares} - {"_output"} == set(X.columns)
    for feature in X.columns:
        values = [v for (f, _), v in shares.items() if f == feature]
        assert sum(values) == pytest.approx(1.0, abs=1e-12)
        assert shares[(feature, "underflow")] == 0.0 == shares[(feature, "overflow")]
    # the same bins as ml.drift.bin.count, and constant
    bins = {(a[semconv.ML_FEATURE_NAME], a[semconv.ML_DRIFT_BIN]) for a, _ in _points(telemetry, semconv.DRIFT_BIN_COUNT)}
    assert bins <= set(shares)
    again = {(a[semconv.ML_FEATURE_NAME], a[semconv.ML_DRIFT_BIN]): p.value for a, p in _points(telemetry, semconv.DRIFT_REFERENCE_SHARE)}
    assert again == shares


def test_all_30_features_have_data_quality_series(served):
    telemetry, X = served
    issues = {(a[semconv.ML_FEATURE_NAME], a[semconv.ML_DATA_QUALITY_ISSUE]): p.value
              for a, p in _points(telemetry, semconv.DATA_QUALITY_COUNT)}  # fmt: skip
    assert {f for f, issue in issues if issue == "out_of_range"} == set(X.columns)
    assert all(issues[(f, "out_of_range")] == 20 for f in X.columns)
    assert not any(f == semconv.OTHER for f, _ in issues), "no feature beyond the cap"


def test_cardinality_per_model(served):
    """Documented bound (docs/drift.md, section 3): bin-count series per model <= the sum over the
    exported features of their bins (numeric: bins + 2, categorical: top-K + 1) plus the output's:
    for breast_cancer 30 x 12 + 3 (two classes + other) = 363."""
    telemetry, X = served
    series = {(a[semconv.ML_FEATURE_NAME], a[semconv.ML_DRIFT_BIN]) for a, _ in _points(telemetry, semconv.DRIFT_BIN_COUNT)}
    bound = 30 * (BINS + 2) + 3
    assert len(series) <= bound
    quality = {(a[semconv.ML_FEATURE_NAME], a[semconv.ML_DATA_QUALITY_ISSUE])
               for a, _ in _points(telemetry, semconv.DATA_QUALITY_COUNT)}  # fmt: skip
    assert len(quality) <= (30 + 3) * 6


def test_drift_scores_for_every_feature_in_stable_series(served):
    """ml.drift.score covers every exported feature and the output, whatever drifts now, so a
    feature's series has no gaps (it used to cover the 10 most drifted ones: series came and
    went as the ranking changed); at most (30 + 1) x 4 methods series per model."""
    telemetry, X = served
    points = _points(telemetry, semconv.DRIFT_SCORE)
    features = {a[semconv.ML_FEATURE_NAME] for a, _ in points}
    assert features == set(X.columns) | {"_output"}
    assert len({(a[semconv.ML_FEATURE_NAME], a[semconv.ML_DRIFT_METHOD]) for a, _ in points}) <= (30 + 1) * 4
