"""Spans: one per top-level inference call, documented names and attributes, nothing in fit."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.datasets import load_iris, make_regression
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    StackingClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.metaestimators import available_if

import otel_mlmon
from otel_mlmon import semconv

X, y = load_iris(return_X_y=True)


def fitted_lr():
    return LogisticRegression(max_iter=500).fit(X, y)


def test_span_name_kind_and_attributes(telemetry):
    model = otel_mlmon.set_model_info(fitted_lr(), name="churn-model", version="7")
    telemetry.clear()
    model.predict(X[:3])
    (span,) = telemetry.spans()
    assert span.name == "predict churn-model"
    assert span.kind is SpanKind.INTERNAL
    assert dict(span.attributes) == {
        semconv.ML_MODEL_NAME: "churn-model",
        semconv.ML_MODEL_VERSION: "7",
        semconv.ML_MODEL_CLASS: "sklearn.linear_model._logistic.LogisticRegression",
        semconv.ML_FRAMEWORK: "sklearn",
        semconv.ML_OPERATION: "predict",
        semconv.ML_BATCH_SIZE: 3,
        semconv.ML_INPUT_FEATURE_COUNT: 4,
    }
    assert span.status.status_code is StatusCode.UNSET


def test_default_name_is_class_name_and_every_operation_traced(telemetry):
    model = fitted_lr()
    telemetry.clear()
    for op in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        getattr(model, op)(X[:2])
    names = [s.name for s in telemetry.spans()]
    assert names == [
        "predict LogisticRegression",
        "predict_proba LogisticRegression",
        "predict_log_proba LogisticRegression",
        "decision_function LogisticRegression",
    ]


@pytest.mark.parametrize(
    "build",
    [
        lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        lambda: GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.1, 1.0]}, cv=2),
        lambda: VotingClassifier([("lr", LogisticRegression(max_iter=500)), ("rf", RandomForestClassifier(5))],
                                 voting="soft"),  # fmt: skip
        lambda: StackingClassifier([("lr", LogisticRegression(max_iter=500)), ("rf", RandomForestClassifier(5))],
                                   cv=2),  # fmt: skip
    ],
    ids=["pipeline", "grid_search", "voting", "stacking"],
)
def test_meta_estimators_give_one_span_and_fit_gives_none(telemetry, build):
    model = build().fit(X, y)  # cross-validation and stacking predict inside fit: training
    assert telemetry.spans() == []
    model.predict(X[:4])
    model.predict_proba(X[:4])
    spans = telemetry.spans()
    assert [s.name.split()[0] for s in spans] == ["predict", "predict_proba"]
    assert all(s.parent is None for s in spans)


def test_no_inference_metrics_from_training(telemetry):
    HistGradientBoostingClassifier(early_stopping=True, max_iter=20, validation_fraction=0.2).fit(X, y)
    StackingClassifier([("lr", LogisticRegression(max_iter=500))], cv=2).fit(X, y)
    assert telemetry.spans() == []
    assert not [p for p in telemetry.points() if p[0].startswith("ml.inference")]


def test_evaluation_is_not_production_traffic(make_telemetry):
    """``score``, scorers and cross-validation make no span and no metric and feed no detector;
    the clones cross-validation fits get no reference profile. A later predict is traced."""
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import cross_val_predict, cross_val_score, cross_validate, learning_curve

    from otel_mlmon.drift import get_profile

    telemetry = make_telemetry(label_store="none")
    model = otel_mlmon.set_model_info(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), name="eval")
    model.fit(X, y)
    telemetry.points()  # what fitting recorded (nothing expected) is collected before evaluating

    assert 0.9 < model.score(X, y) <= 1.0
    assert len(cross_val_score(model, X, y, cv=3)) == 3
    folds = cross_validate(model, X, y, cv=3, scoring=["accuracy", "f1_macro"], return_estimator=True)
    assert cross_val_predict(model, X, y, cv=3, method="predict_proba").shape == (len(X), 3)
    learning_curve(model, X, y, cv=3, train_sizes=[0.5, 1.0])
    assert get_scorer("accuracy")(model, X, y) > 0.9

    assert telemetry.spans() == []
    production = ("ml.inference", "ml.prediction.", "ml.anomaly", "ml.drift", "ml.data_quality")
    recorded = {name for name, _, _, _ in telemetry.points() if name.startswith(production)}
    assert recorded <= {semconv.PREDICTION_PENDING.name}, recorded  # (0: no label store here)
    assert [get_profile(clone) for clone in folds["estimator"]] == [None] * 3
    assert get_profile(model) is not None  # fitted at top level: a reference profile

    model.predict(X[:4])
    assert [span.name for span in telemetry.spans()] == ["predict eval"]
    assert semconv.INFERENCE_DURATION.name in {name for name, _, _, _ in telemetry.points()}


def test_detail_spans_are_children_of_the_top_level_span(make_telemetry):
    session = make_telemetry(detail_spans=True)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    session.clear()
    pipe.predict(X[:2])
    spans = session.spans()
    top = [s for s in spans if s.parent is None]
    assert [s.name for s in top] == ["predict Pipeline"]
    children = [s for s in spans if s.parent is not None]
    assert {s.name for s in children} >= {"predict LogisticRegression"}
    ids = {s.context.span_id for s in spans}
    assert all(s.parent.span_id in ids and s.context.trace_id == top[0].context.trace_id for s in children)
    assert any(s.parent.span_id == top[0].context.span_id for s in children)
    # detail spans carry no metrics: one duration point, for the pipeline only
    durations = session.points(semconv.INFERENCE_DURATION.name)
    assert [p[2][semconv.ML_MODEL_NAME] for p in durations] == ["Pipeline"]


def test_suppress_instrumentation_is_respected(telemetry):
    model = fitted_lr()
    telemetry.clear()
    with suppress_instrumentation():
        model.predict(X[:2])
    assert telemetry.spans() == []


def test_exception_propagates_unchanged_and_span_records_error(telemetry):
    model = fitted_lr()
    telemetry.instrumentor.uninstrument()
    with pytest.raises(ValueError) as bare:
        model.predict(X[:, :2])
    telemetry.instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    with pytest.raises(ValueError) as instrumented:
        model.predict(X[:, :2])
    assert str(instrumented.value) == str(bare.value)
    (span,) = [s for s in telemetry.spans() if s.name.startswith("predict")]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[semconv.ERROR_TYPE] == "ValueError"
    # privacy: only the type by default, never the message (it can quote input values)
    assert all("features" not in str(v) for e in span.events for v in e.attributes.values())
    assert [e.attributes["exception.type"] for e in span.events] == ["ValueError"]


def test_exception_message_captured_when_opted_in(make_telemetry):
    session = make_telemetry(capture_exception_message=True)
    model = fitted_lr()
    session.clear()
    with pytest.raises(ValueError):
        model.predict(X[:, :2])
    (span,) = session.spans()
    (event,) = span.events
    assert "features" in event.attributes["exception.message"]


def test_no_raw_values_in_span_attributes(telemetry):
    rng = np.random.default_rng(3)
    Xr, yr = make_regression(n_samples=50, n_features=3, random_state=0)
    model = LinearRegression().fit(Xr, yr)
    telemetry.clear()
    row = rng.normal(size=(1, 3)) + 12345.678
    prediction = model.predict(row)
    texts = [str(v) for s in telemetry.spans() for v in s.attributes.values()]
    for value in list(row.ravel()) + list(prediction):
        assert all(f"{value:.3f}"[:6] not in t for t in texts)


class Centroid(ClassifierMixin, BaseEstimator):
    """A user-defined estimator defined after instrument() ran (module import time is earlier,
    so the test also defines one inside the test body)."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.centroids_ = np.array([X[y == c].mean(axis=0) for c in self.classes_])
        return self

    def predict(self, X):
        d = ((np.asarray(X)[:, None, :] - self.centroids_[None]) ** 2).sum(-1)
        return self.classes_[d.argmin(1)]


def test_classes_defined_after_instrument_are_covered(telemetry):
    class Late(RegressorMixin, BaseEstimator):
        def fit(self, X, y):
            self.mean_ = float(np.mean(y))
            return self

        def predict(self, X):
            return np.full(len(X), self.mean_)

    class LateChild(Late):
        def predict(self, X):  # super() call: still one span
            return super().predict(X) + 1

    Late().fit(X, y).predict(X[:2])
    LateChild().fit(X, y).predict(X[:2])
    Centroid().fit(X, y).predict(X[:2])
    assert [s.name for s in telemetry.spans()] == ["predict Late", "predict LateChild", "predict Centroid"]


def test_available_if_delegation_keeps_its_check(telemetry):
    class Delegating(BaseEstimator):
        def __init__(self, inner=None):
            self.inner = inner

        def fit(self, X, y):
            self.inner_ = self.inner.fit(X, y)
            return self

        @available_if(lambda self: hasattr(self.inner, "predict_proba"))
        def predict_proba(self, X):
            return self.inner_.predict_proba(X)

    with_proba = Delegating(LogisticRegression(max_iter=500)).fit(X, y)
    without = Delegating(LinearRegression()).fit(X, y)
    assert hasattr(with_proba, "predict_proba")
    assert not hasattr(without, "predict_proba")
    telemetry.clear()
    with_proba.predict_proba(X[:2])
    assert [s.name for s in telemetry.spans()] == ["predict_proba Delegating"]


def test_model_info_survives_pickle_and_joblib(telemetry, tmp_path):
    model = otel_mlmon.set_model_info(fitted_lr(), name="fraud", version="2024-11")
    restored = pickle.loads(pickle.dumps(model))
    joblib.dump(model, tmp_path / "m.joblib")
    loaded = joblib.load(tmp_path / "m.joblib")
    assert otel_mlmon.get_model_info(restored)[:2] == ("fraud", "2024-11")
    telemetry.clear()
    restored.predict(X[:1])
    loaded.predict(X[:1])
    assert [s.name for s in telemetry.spans()] == ["predict fraud", "predict fraud"]
    # the stored info is a plain dict: unpickling needs no otel-mlmon
    assert type(vars(model)["_otel_mlmon_model_info"]) is dict


def test_set_model_info_validates_and_renames_live_model(telemetry):
    model = fitted_lr()
    model.predict(X[:1])
    otel_mlmon.set_model_info(model, name="renamed")
    model.predict(X[:1])
    assert [s.name for s in telemetry.spans()][-1] == "predict renamed"
    with pytest.raises(ValueError):
        otel_mlmon.set_model_info(model, name="")
    with pytest.raises(ValueError):
        otel_mlmon.set_model_info(model, version=3)


def test_uninstrument_restores_original_functions_exactly():
    from sklearn.base import BaseEstimator as Base
    from sklearn.linear_model._base import LinearClassifierMixin
    from sklearn.pipeline import Pipeline

    before_predict = LinearClassifierMixin.__dict__["predict"]
    before_fit = LogisticRegression.__dict__["fit"]
    before_pipe = Pipeline.__dict__["predict_proba"].fn
    before_hook = Base.__dict__.get("__init_subclass__")
    from sklearn.base import ClassifierMixin as Classifier
    from sklearn.metrics import _scorer
    from sklearn.model_selection import _validation

    before_score = Classifier.__dict__["score"]
    before_scorer = _scorer._BaseScorer.__dict__["__call__"]
    before_fold = _validation._fit_and_score
    instrumentor = otel_mlmon.SklearnInstrumentor()
    instrumentor.instrument()
    assert LinearClassifierMixin.__dict__["predict"] is not before_predict
    assert Pipeline.__dict__["predict_proba"].fn is not before_pipe
    assert Classifier.__dict__["score"] is not before_score
    assert _scorer._BaseScorer.__dict__["__call__"] is not before_scorer
    assert _validation._fit_and_score is not before_fold
    instrumentor.uninstrument()
    assert Classifier.__dict__["score"] is before_score
    assert _scorer._BaseScorer.__dict__["__call__"] is before_scorer
    assert _validation._fit_and_score is before_fold
    assert LinearClassifierMixin.__dict__["predict"] is before_predict
    assert LogisticRegression.__dict__["fit"] is before_fit
    assert Pipeline.__dict__["predict_proba"].fn is before_pipe
    assert Base.__dict__.get("__init_subclass__") is before_hook


def test_instrument_is_idempotent(telemetry):
    telemetry.instrumentor.instrument(tracer_provider=telemetry.tracer_provider)  # warns, no double wrap
    model = fitted_lr()
    telemetry.clear()
    model.predict(X[:1])
    assert len(telemetry.spans()) == 1


def test_parent_span_from_caller_is_used(telemetry):
    tracer = telemetry.tracer_provider.get_tracer("app")
    model = fitted_lr()
    telemetry.clear()
    with tracer.start_as_current_span("request") as parent:
        model.predict(X[:1])
    child = next(s for s in telemetry.spans() if s.name.startswith("predict"))
    assert child.parent.span_id == parent.get_span_context().span_id
