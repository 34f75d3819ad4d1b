"""Your own scikit-learn-API estimator is instrumented too, with no registration.

    python examples/custom_estimator.py

``instrument()`` covers every ``BaseEstimator`` subclass, including classes defined after it (a
hook on ``BaseEstimator.__init_subclass__``). Here a user-defined nearest-centroid classifier,
a subclass of it that overrides ``predict`` and calls ``super().predict()`` (still one span per
call), and the classifier inside a ``Pipeline`` (one span: the pipeline's). With
``OTEL_EXPORTER_OTLP_ENDPOINT`` set, the telemetry is also exported over OTLP.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

import otel_mlmon
from _providers import providers as make_providers
from otel_mlmon import semconv

tracer_provider, meter_provider, spans, reader = make_providers("otel-mlmon-custom-estimator")

# Instrument first: the classes below do not exist yet.
otel_mlmon.SklearnInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402
from sklearn.datasets import load_wine  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.validation import check_is_fitted, validate_data  # noqa: E402


class NearestCentroid(ClassifierMixin, BaseEstimator):
    """Predicts the class whose mean is closest; probabilities from a softmax of -distance."""

    def __init__(self, temperature: float = 1.0):
        self.temperature = temperature

    def fit(self, X, y):
        X, y = validate_data(self, X, y)
        self.classes_ = np.unique(y)
        self.centroids_ = np.stack([X[y == c].mean(axis=0) for c in self.classes_])
        return self

    def _distances(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return np.linalg.norm(X[:, None, :] - self.centroids_[None], axis=2)

    def predict_proba(self, X):
        scores = -self._distances(X) / self.temperature
        scores -= scores.max(axis=1, keepdims=True)
        p = np.exp(scores)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]  # nested call: no extra span


class AbstainingCentroid(NearestCentroid):
    """Overrides predict and calls super().predict(): still one span per call."""

    def predict(self, X):
        labels = super().predict(X).astype(object)
        labels[self.predict_proba(X).max(axis=1) < 0.6] = "abstain"
        return labels


X, y = load_wine(return_X_y=True)
y = np.array(["barolo", "grignolino", "barbera"])[y]
rng = np.random.default_rng(0)
order = rng.permutation(len(X))
train, live = order[:120], order[120:]

scaler = StandardScaler().fit(X[train])
centroid = otel_mlmon.set_model_info(NearestCentroid(), name="wine-centroid").fit(scaler.transform(X[train]), y[train])
cautious = otel_mlmon.set_model_info(AbstainingCentroid(temperature=0.3), name="wine-abstain")
cautious.fit(scaler.transform(X[train]), y[train])
pipeline = otel_mlmon.set_model_info(make_pipeline(StandardScaler(), NearestCentroid()), name="wine-pipeline")
pipeline.fit(X[train], y[train])

correct = Counter()
for start in range(0, len(live), 10):  # 6 batches to each model
    batch = live[start:start + 10]
    for name, model, inputs in (("wine-centroid", centroid, scaler.transform(X[batch])),
                                ("wine-abstain", cautious, scaler.transform(X[batch])),
                                ("wine-pipeline", pipeline, X[batch])):
        correct[name] += int(np.sum(model.predict(inputs) == y[batch]))

tracer_provider.force_flush()  # spans are ended by otel-mlmon's recording worker (within 1 s)
finished = spans.get_finished_spans()
print(f"{len(finished)} spans for {3 * len(range(0, len(live), 10))} top-level predict calls:")
for (span_name, cls), count in Counter((s.name, s.attributes[semconv.ML_MODEL_CLASS]) for s in finished).items():
    print(f"  {count} x {span_name:<24} ml.model.class={cls}")
print("\nhold-out accuracy: " + ", ".join(f"{name} {n / len(live):.3f}" for name, n in correct.items()))
print("predicted classes (ml.prediction.class.count):")
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for metric in sm.metrics:
            if metric.name == semconv.PREDICTION_CLASS_COUNT.name:
                for point in metric.data.data_points:
                    a = point.attributes
                    print(f"  {a[semconv.ML_MODEL_NAME]:<14} {a[semconv.ML_PREDICTION_CLASS]:<11} {point.value}")
tracer_provider.shutdown()
meter_provider.shutdown()
