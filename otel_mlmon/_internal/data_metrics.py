"""The data plane's metrics: drift bin counts, data-quality events, profiled rows and label
delays recorded by the worker; drift scores, p-values, shares, reference shares, model quality,
label outcomes and pending predictions observed at collection time.

:class:`DataMetrics` is the export half of :class:`~otel_mlmon._internal.data.DataPlane` (a
mixin): it reads the plane's drift monitors (``_drift``, under ``_lock``), its quality hub
(``_hub``) and reports failures through ``_internal_error``.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

import numpy as np
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_mlmon import semconv

_SNAPSHOT_TTL_S = 0.05  # one snapshot serves the three callbacks of one collection


class DataMetrics:
    """Instruments and collection callbacks of the data plane (see the module docstring)."""

    def _drain(self, key: tuple[str, str | None]) -> tuple[int, int] | None:
        """Export the counts profiled since the last drain; ``(data-quality events, rows)``."""
        entry = self._drift.get(key)
        if entry is None:
            return None
        attrs = model_attrs(key)
        counts = entry[0].drain_counts()
        if counts.rows:
            self._data_rows.add(counts.rows, attrs)
        for (feature, bin_index), n in counts.bins.items():
            self._bins.add(n, {**attrs, semconv.ML_FEATURE_NAME: feature, semconv.ML_DRIFT_BIN: str(bin_index)})
        issues = 0
        for (feature, issue), n in counts.data_quality.items():
            issues += n
            self._issues.add(n, {**attrs, semconv.ML_FEATURE_NAME: feature, semconv.ML_DATA_QUALITY_ISSUE: issue})
        return issues, counts.rows

    def _on_label_delays(self, key: tuple[str, str | None], delays: np.ndarray) -> None:
        attrs = model_attrs(tuple(key))
        record = self._label_delay.record
        for delay in delays[:10_000].tolist():
            if delay >= 0:
                record(delay, attrs)

    # ------------------------------------------------------------------ export
    def _create_instruments(self, meter: Meter) -> None:
        s = semconv
        self._bins = meter.create_counter(s.DRIFT_BIN_COUNT.name, unit=s.DRIFT_BIN_COUNT.unit,
                                          description=s.DRIFT_BIN_COUNT.description)  # fmt: skip
        self._issues = meter.create_counter(s.DATA_QUALITY_COUNT.name, unit=s.DATA_QUALITY_COUNT.unit,
                                            description=s.DATA_QUALITY_COUNT.description)  # fmt: skip
        self._data_rows = meter.create_counter(s.DATA_ROW_COUNT.name, unit=s.DATA_ROW_COUNT.unit,
                                               description=s.DATA_ROW_COUNT.description)  # fmt: skip
        self._label_delay = meter.create_histogram(
            s.LABEL_DELAY.name, unit=s.LABEL_DELAY.unit, description=s.LABEL_DELAY.description,
            explicit_bucket_boundaries_advisory=list(s.LABEL_DELAY_BUCKETS),
        )  # fmt: skip
        for spec, callback in ((s.DRIFT_SCORE, self._observe_drift_scores),
                               (s.DRIFT_P_VALUE, self._observe_drift_p_values),
                               (s.DRIFT_SHARE, self._observe_drift_share),
                               (s.DRIFT_REFERENCE_SHARE, self._observe_reference_shares),
                               (s.QUALITY_SCORE, self._observe_quality)):  # fmt: skip
            meter.create_observable_gauge(spec.name, [callback], unit=spec.unit, description=spec.description)
        meter.create_observable_counter(s.LABEL_COUNT.name, [self._observe_labels], unit=s.LABEL_COUNT.unit,
                                        description=s.LABEL_COUNT.description)  # fmt: skip
        meter.create_observable_up_down_counter(
            s.PREDICTION_PENDING.name, [self._observe_pending], unit=s.PREDICTION_PENDING.unit,
            description=s.PREDICTION_PENDING.description,
        )  # fmt: skip

    def _drift_observations(self) -> list[tuple[tuple[str, str | None], Any]]:
        with self._lock:
            monitors = [(key, entry[0]) for key, entry in self._drift.items()]
        out = []
        for key, monitor in monitors:
            try:
                out.append((key, monitor.observations()))
            except Exception as exc:  # noqa: BLE001
                self._internal_error("drift_observations", exc)
        return out

    def _observe_drift_scores(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._per_feature_and_method("scores")

    def _observe_drift_p_values(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._per_feature_and_method("p_values")

    def _per_feature_and_method(self, field: str) -> list[Observation]:
        """One observation per model, feature and method of the monitors' ``scores`` or
        ``p_values``."""
        out = []
        for key, obs in self._drift_observations():
            attrs = model_attrs(key)
            for (feature, method), value in getattr(obs, field).items():
                out.append(Observation(value, {**attrs, semconv.ML_FEATURE_NAME: feature, semconv.ML_DRIFT_METHOD: method}))
        return out

    def _observe_reference_shares(self, options: CallbackOptions) -> Iterable[Observation]:
        """Every bin's reference share, per model and exported feature (constant: computed once
        per monitor)."""
        with self._lock:
            monitors = [(key, entry[0]) for key, entry in self._drift.items()]
        out = []
        for key, monitor in monitors:
            try:
                cached = self._reference_shares.get(id(monitor))
                if cached is None or cached[0] is not monitor:
                    attrs = model_attrs(key)
                    cached = (monitor, [Observation(share, {**attrs, semconv.ML_FEATURE_NAME: feature,
                                                            semconv.ML_DRIFT_BIN: str(label)})
                                        for (feature, label), share in monitor.reference_shares().items()])  # fmt: skip
                    self._reference_shares[id(monitor)] = cached
                out.extend(cached[1])
            except Exception as exc:  # noqa: BLE001
                self._internal_error("drift_observations", exc)
        if len(self._reference_shares) > len(monitors):  # monitors replaced (a new profile)
            live = {id(m) for _, m in monitors}
            self._reference_shares = {k: v for k, v in self._reference_shares.items() if k in live}
        return out

    def _observe_drift_share(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(obs.share, model_attrs(key)) for key, obs in self._drift_observations()
                if obs.share is not None]  # fmt: skip

    def _quality_snapshot(self) -> Any:
        hub = self._hub
        if hub is None:
            return None
        now = time.monotonic()
        if self._snapshot is None or now - self._snapshot_at > _SNAPSHOT_TTL_S:
            self._snapshot = hub.snapshot()
            self._snapshot_at = now
        return self._snapshot

    def _observe_quality(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._quality_snapshot()
        if snapshot is None:
            return []
        return [Observation(value, {**model_attrs(key), semconv.ML_QUALITY_METRIC: metric,
                                    semconv.ML_QUALITY_SOURCE: source})
                for key, values in snapshot.quality.items() for (metric, source), value in values.items()]  # fmt: skip

    def _observe_labels(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._quality_snapshot()
        if snapshot is None:
            return []
        return [Observation(n, {**model_attrs(key), semconv.ML_LABEL_OUTCOME: outcome})
                for (key, outcome), n in snapshot.labels.items()]  # fmt: skip

    def _observe_pending(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._quality_snapshot()
        return [] if snapshot is None else [Observation(snapshot.pending)]


def model_attrs(key: tuple) -> dict[str, Any]:
    name, version = key[0], key[1] if len(key) > 1 else None
    attrs = {semconv.ML_MODEL_NAME: name}
    if version is not None:
        attrs[semconv.ML_MODEL_VERSION] = version
    return attrs
