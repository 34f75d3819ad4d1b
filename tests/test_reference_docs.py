"""The docs' reference tables are generated from the one module that defines the names."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_iris, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression

from otel_mlmon import semconv
from otel_mlmon._internal import reference

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted(reference.FILES))
def test_generated_docs_are_current(path):
    expected = reference.FILES[path]()
    actual = (ROOT / path).read_text(encoding="utf-8")
    assert actual == expected, f"{path} is stale: run python -m otel_mlmon._internal.reference"


def test_emitted_telemetry_matches_the_reference(telemetry):
    X, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    clf.predict(X[:3])
    clf.predict_proba(X[:3])
    Xr, yr = make_regression(n_samples=20, n_features=2, random_state=0)
    LinearRegression().fit(Xr, yr).predict(Xr)
    specs = {spec.name: spec for spec in semconv.METRICS}
    for name, unit, attrs, _ in telemetry.points():
        assert name in specs, name
        assert unit == specs[name].unit
        assert set(attrs) <= set(specs[name].attributes), (name, attrs)
    for span in telemetry.spans():
        assert set(span.attributes) <= set(semconv.SPAN_ATTRIBUTES)
