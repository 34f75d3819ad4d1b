"""Data drift and data quality of model inputs and outputs, against a reference profile.

::

    from otel_mlmon.drift import build_profile, attach_profile, DriftMonitor

    profile = build_profile(X_train, y_train, predictions=model.predict(X_train))
    attach_profile(model, profile)            # travels with pickle / joblib / torch.save
    monitor = DriftMonitor(profile)
    monitor.update(X_batch, predictions=y_pred)   # per inference call (worker thread)
    monitor.observations(); monitor.drain_counts()  # at metric collection

Drift statistics (one per module, all ``statistic(reference_counts, current_counts)``):
:class:`PSI`, :class:`JensenShannon`, :class:`KolmogorovSmirnov`, :class:`Wasserstein`,
:class:`ChiSquare`. Names are imported on first use, so ``import otel_mlmon.drift`` stays light;
nothing here needs more than numpy.
"""

from __future__ import annotations

from otel_mlmon._lazy import lazy_exports

_EXPORTS = {
    "DriftResult": "otel_mlmon.drift.base",
    "DriftStatistic": "otel_mlmon.drift.base",
    "PSI": "otel_mlmon.drift.psi",
    "JensenShannon": "otel_mlmon.drift.jensen_shannon",
    "KolmogorovSmirnov": "otel_mlmon.drift.kolmogorov_smirnov",
    "Wasserstein": "otel_mlmon.drift.wasserstein",
    "ChiSquare": "otel_mlmon.drift.chi_square",
    "ReferenceProfile": "otel_mlmon.drift.reference_profile",
    "FeatureProfile": "otel_mlmon.drift.feature_profile",
    "ProfileBuilder": "otel_mlmon.drift.reference_profile",
    "build_profile": "otel_mlmon.drift.reference_profile",
    "attach_profile": "otel_mlmon.drift.profile",
    "get_profile": "otel_mlmon.drift.profile",
    "load_profile": "otel_mlmon.drift.profile",
    "SlidingWindow": "otel_mlmon.drift.window",
    "DriftMonitor": "otel_mlmon.drift.monitor",
    "DriftObservations": "otel_mlmon.drift.observations",
    "DriftCounts": "otel_mlmon.drift.observations",
}

__all__, __getattr__, __dir__ = lazy_exports("otel_mlmon.drift", _EXPORTS, globals())
