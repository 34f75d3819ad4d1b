"""Output drift and schema-change signals for ``predict_proba`` with a profile made by the CLI
(``otel-mlmon profile --target``), and Wasserstein in one unit (issue 14)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import otel_mlmon
from otel_mlmon import semconv
from otel_mlmon.drift import DriftMonitor, Wasserstein, build_profile, get_profile

CLI = [sys.executable, "-m", "otel_mlmon.cli"]


@pytest.fixture
def cli_profiled(tmp_path, make_telemetry):
    frame = load_breast_cancer(as_frame=True)
    X, y = frame.data, frame.target
    X.assign(target=y).to_csv(tmp_path / "train.csv", index=False)
    out = subprocess.run(CLI + ["profile", "train.csv", "--target", "target", "--output", "profiles/cancer.json"],
                         capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    telemetry = make_telemetry(profile_on_fit=False, profile_dir=str(tmp_path / "profiles"), label_store="none")
    model = LogisticRegression(max_iter=10_000).fit(X, y)
    assert get_profile(model) is None  # trained elsewhere: the CLI's profile is the reference
    otel_mlmon.set_model_info(model, name="cancer")
    return telemetry, model, X


def _output_series(telemetry, spec):
    return [(a, p.value) for _, _, a, p in telemetry.points(spec.name)
            if a[semconv.ML_MODEL_NAME] == "cancer" and a[semconv.ML_FEATURE_NAME] == "_output"]  # fmt: skip


def test_predict_proba_outputs_drift_against_the_cli_profiles_target(cli_profiled):
    telemetry, model, X = cli_profiled
    rng = np.random.default_rng(1)
    for _ in range(20):  # a shift that moves the predicted class
        batch = X.iloc[rng.integers(0, len(X), 100)].copy()
        batch["mean radius"] += 3 * X["mean radius"].std()
        batch["worst radius"] += 3 * X["worst radius"].std()
        model.predict_proba(batch)
    telemetry.instrumentor.force_flush()
    bins = _output_series(telemetry, semconv.DRIFT_BIN_COUNT)
    assert sum(v for _, v in bins) == 2000, "every profiled row's predicted label is binned"
    scores = {a[semconv.ML_DRIFT_METHOD]: v for a, v in _output_series(telemetry, semconv.DRIFT_SCORE)}
    assert {"psi", "jensen_shannon", "chi_square"} <= set(scores) and scores["psi"] > 0.1
    p_values = {a[semconv.ML_DRIFT_METHOD]: v for a, v in _output_series(telemetry, semconv.DRIFT_P_VALUE)}
    assert p_values["chi_square"] < 1e-6


def test_predict_proba_schema_changes_are_counted(cli_profiled):
    telemetry, model, X = cli_profiled
    batch = X.iloc[:50].copy()
    batch["mean texture"] = batch["mean texture"].astype(str)  # scikit-learn converts it; the monitor sees text
    model.predict_proba(batch)
    telemetry.instrumentor.force_flush()
    issues = {(a[semconv.ML_FEATURE_NAME], a[semconv.ML_DATA_QUALITY_ISSUE]): p.value
              for _, _, a, p in telemetry.points(semconv.DATA_QUALITY_COUNT.name)
              if a[semconv.ML_MODEL_NAME] == "cancer"}  # fmt: skip
    assert issues.get(("mean texture", "schema_change")) == 50


def test_output_of_another_kind_than_the_reference_is_a_schema_change():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2000, 3))
    labels = np.where(X[:, 0] > 0, 1, 0)
    monitor = DriftMonitor(build_profile(X, predictions=labels), sample_rows=10**6, max_rows_per_second=None)
    monitor.update(X[:100], predictions=rng.uniform(size=100))  # scores against a reference of labels
    assert monitor.drain_counts().data_quality == {("_output", "schema_change"): 100}


def test_wasserstein_is_in_reference_standard_deviations_everywhere():
    """The monitor's score, the statistic and the metric's description agree: the W1 distance
    divided by the reference standard deviation, so the same shift scores the same in any unit."""
    rng = np.random.default_rng(3)
    base = rng.normal(10.0, 5.0, size=50_000)
    reference = np.column_stack([base, base * 100.0])  # the same feature in metres and centimetres
    profile = build_profile(reference)
    monitor = DriftMonitor(profile, window_rows=10_000, sample_rows=10**6, max_rows_per_second=None)
    shifted = rng.normal(10.0, 5.0, size=5000) + 2.5  # half a standard deviation
    monitor.update(np.column_stack([shifted, shifted * 100.0]))
    scores = monitor.observations().scores
    assert scores[("x0", "wasserstein")] == pytest.approx(scores[("x1", "wasserstein")], rel=1e-9)
    assert 0.3 < scores[("x0", "wasserstein")] < 0.8  # about half a standard deviation (binned)
    p = profile.feature("x1")
    counts = monitor.drain_counts().bins
    current = np.array([counts.get(("x1", b), 0) for b in range(p.n_bins)], dtype=float)
    current[0] += counts.get(("x1", "underflow"), 0)
    current[-1] += counts.get(("x1", "overflow"), 0)
    raw = Wasserstein(normalise=False)(p.counts, current, edges=p.edges, low=p.minimum, high=p.maximum).statistic
    assert scores[("x1", "wasserstein")] == pytest.approx(raw / p.std, rel=1e-9)
    assert "reference standard deviations" in semconv.DRIFT_SCORE.description
