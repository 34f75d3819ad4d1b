"""Streaming anomaly detectors and the anomaly-aware span processor.

Every detector follows :class:`otel_mlmon.anomaly.base.Detector`: ``update(value, timestamp)``
returns a score in [0, 1] (higher = more anomalous) and ``is_anomaly(score)`` compares it with
the detector's ``threshold``. :func:`default_incident_detector` turns those scores into
incidents (one alert at the onset of each). Names are imported on first use, so ``import otel_mlmon.anomaly``
stays light.
"""

from __future__ import annotations

from otel_mlmon._lazy import lazy_exports

_EXPORTS = {
    "Detector": "otel_mlmon.anomaly.base",
    "MultivariateDetector": "otel_mlmon.anomaly.base",
    "StaticThresholdDetector": "otel_mlmon.anomaly.static_threshold",
    "ZScoreDetector": "otel_mlmon.anomaly.zscore",
    "EWMADetector": "otel_mlmon.anomaly.ewma",
    "MADDetector": "otel_mlmon.anomaly.mad",
    "DefaultDetector": "otel_mlmon.anomaly.default",
    "default_detector": "otel_mlmon.anomaly.default",
    "IncidentDetector": "otel_mlmon.anomaly.incident",
    "IncidentVerdict": "otel_mlmon.anomaly.incident",
    "default_incident_detector": "otel_mlmon.anomaly.incident",
    "IsolationForestDetector": "otel_mlmon.anomaly.isolation_forest",
    "AnomalyDetectionSpanProcessor": "otel_mlmon.anomaly.processor",
    "Alert": "otel_mlmon.anomaly.alert",
    "WebhookSink": "otel_mlmon.anomaly.webhook",
    "CallbackSink": "otel_mlmon.anomaly.callback_sink",
}

__all__, __getattr__, __dir__ = lazy_exports("otel_mlmon.anomaly", _EXPORTS, globals())
