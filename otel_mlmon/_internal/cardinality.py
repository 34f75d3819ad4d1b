"""Bounded per-model bookkeeping of the recorder: metric attributes and class labels.

Model names, versions and predicted labels are chosen by the caller (a service that
deserialises a model per request can bring a new name with every call), so nothing here grows
with them:

* the first ``max_models`` distinct (name, version) pairs get their own metric attributes;
  later ones are recorded as ``ml.model.name = _other`` (no version);
* the attribute dicts are cached per exported series only (a tracked model's key, or one per
  framework x operation x output for ``_other``), at most :data:`MAX_CACHED_ATTRIBUTES` per
  tracked model slot; past that bound they are built per flush, uncached;
* class labels are tracked per exported series (so all ``_other`` models share one set), at
  most ``max_class_labels`` each (later labels count as ``_other``), each label at most
  :data:`MAX_LABEL_LENGTH` characters.

Sizes are asserted with 20,000 distinct model names in ``tests/test_bounded_state.py``.
"""

from __future__ import annotations

from typing import Any

from otel_mlmon import semconv
from otel_mlmon._internal.state import MetricKey

MAX_CACHED_ATTRIBUTES = 32  # attribute dicts cached per model slot (framework x operation x output)
MAX_LABEL_LENGTH = 256  # characters of a class label kept in ml.prediction.class


class SeriesAttributes:
    """Metric attributes and class-label sets, bounded by ``max_models`` (not thread-safe: the
    recorder calls it under its lock, from the worker)."""

    def __init__(self, max_models: int) -> None:
        self.max_models = max_models
        self.models: set[tuple[str, str | None]] = set()  # <= max_models
        self.attrs: dict[MetricKey, dict[str, Any]] = {}  # <= MAX_CACHED_ATTRIBUTES * (max_models + 1)
        self.labels: dict[tuple, set[str]] = {}  # <= as many as attrs, each <= max_class_labels

    def bound(self) -> int:
        return MAX_CACHED_ATTRIBUTES * (self.max_models + 1)

    def of(self, key: MetricKey) -> dict[str, Any]:
        """The metric attributes of ``key`` (a dict shared by its calls: do not modify)."""
        attrs = self.attrs.get(key)
        if attrs is not None:
            return attrs
        model = (key.name, key.version)
        if model not in self.models:
            if len(self.models) >= self.max_models:
                other = MetricKey(semconv.OTHER, None, key.framework, key.operation, key.output)
                attrs = self.attrs.get(other)
                if attrs is None:
                    attrs = self._build(other)
                    if len(self.attrs) < self.bound():
                        self.attrs[other] = attrs
                return attrs
            self.models.add(model)
        attrs = self._build(key)
        if len(self.attrs) < self.bound():
            self.attrs[key] = attrs
        return attrs

    @staticmethod
    def _build(key: MetricKey) -> dict[str, Any]:
        attrs = {semconv.ML_MODEL_NAME: key.name, semconv.ML_FRAMEWORK: key.framework,
                 semconv.ML_OPERATION: key.operation}  # fmt: skip
        if key.version is not None:
            attrs[semconv.ML_MODEL_VERSION] = key.version
        return attrs

    def label(self, key: MetricKey, attrs: dict[str, Any], label: str, cap: int) -> str:
        """``label`` as recorded in the series of ``attrs``: itself while its series has fewer
        than ``cap`` labels, else ``_other``; cut to :data:`MAX_LABEL_LENGTH` characters."""
        series = (attrs[semconv.ML_MODEL_NAME], attrs.get(semconv.ML_MODEL_VERSION), key.framework,
                  key.operation, key.output)  # fmt: skip
        seen = self.labels.get(series)
        if seen is None:
            if len(self.labels) >= self.bound():
                return semconv.OTHER
            seen = self.labels[series] = set()
        if len(label) > MAX_LABEL_LENGTH:
            label = label[:MAX_LABEL_LENGTH]
        if label not in seen:
            if len(seen) >= cap:
                return semconv.OTHER
            seen.add(label)
        return label
