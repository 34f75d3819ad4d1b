"""Model quality with delayed ground truth: prediction ids, the pending-prediction store,
realized metrics over a sliding window of labels, and label-free estimated accuracy (CBPE).

Public entry points (re-exported by ``otel_mlmon``)::

    with otel_mlmon.prediction_ids(request_ids):     # or: otel_mlmon.last_prediction_ids()
        model.predict(X)
    ...
    otel_mlmon.record_ground_truth(request_ids, y_true)   # minutes or days later

Names are imported on first use: ``prediction_ids`` loads only ``ids`` (numpy and the standard
library); the hub, the stores and ``sqlite3`` load when first used.
"""

from __future__ import annotations

from otel_mlmon._lazy import lazy_exports

_EXPORTS = {
    "IdBlock": "otel_mlmon.quality.ids",
    "prediction_ids": "otel_mlmon.quality.ids",
    "last_prediction_ids": "otel_mlmon.quality.ids",
    "PredictionStore": "otel_mlmon.quality.prediction_store",
    "MemoryStore": "otel_mlmon.quality.memory_store",
    "SQLiteStore": "otel_mlmon.quality.sqlite_store",
    "StoredPrediction": "otel_mlmon.quality.prediction_store",
    "ClassificationWindow": "otel_mlmon.quality.metrics",
    "RegressionWindow": "otel_mlmon.quality.metrics",
    "classification_metrics": "otel_mlmon.quality.metrics",
    "regression_metrics": "otel_mlmon.quality.metrics",
    "CBPE": "otel_mlmon.quality.cbpe",
    "QualityHub": "otel_mlmon.quality.tracker",
    "QualitySnapshot": "otel_mlmon.quality.outcomes",
    "LabelResult": "otel_mlmon.quality.outcomes",
    "hub": "otel_mlmon.quality.tracker",
    "record_ground_truth": "otel_mlmon.quality.tracker",
}

__all__, __getattr__, __dir__ = lazy_exports("otel_mlmon.quality", _EXPORTS, globals())
