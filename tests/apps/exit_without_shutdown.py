"""Issue 17, part 1: 500 predictions inside ``prediction_ids``, then a normal exit without
``uninstrument()``. Run as ``python exit_without_shutdown.py READER STORE_PATH``; READER is
``memory`` (InMemoryMetricReader), ``pull`` (PrometheusMetricReader: nobody scrapes it) or
``periodic`` (PeriodicExportingMetricReader whose interval never elapses before the exit)."""

import os
import sys

os.environ["OTEL_MLMON_LABEL_STORE"] = "sqlite"
os.environ["OTEL_MLMON_LABEL_STORE_PATH"] = sys.argv[2]

import numpy as np  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import (  # noqa: E402
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

import otel_mlmon  # noqa: E402
from otel_mlmon import SklearnInstrumentor, set_model_info  # noqa: E402


class _Discard(MetricExporter):
    def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs):
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        pass


kind = sys.argv[1]
if kind == "memory":
    reader = InMemoryMetricReader()
elif kind == "pull":
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    reader = PrometheusMetricReader()
else:
    reader = PeriodicExportingMetricReader(_Discard(), export_interval_millis=600_000)
SklearnInstrumentor().instrument(tracer_provider=TracerProvider(), meter_provider=MeterProvider(metric_readers=[reader]))
rng = np.random.default_rng(0)
X = rng.normal(size=(200, 4))
model = set_model_info(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), name="exit-model", version="1")
rows = rng.normal(size=(500, 4))
for i in range(500):
    with otel_mlmon.prediction_ids([f"req-{i}"]):
        model.predict(rows[i : i + 1])
np.save(sys.argv[2] + ".rows.npy", rows)
sys.exit(0)
