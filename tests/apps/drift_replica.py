"""One replica of a scoring service, for ``tests/test_fleet_drift_e2e.py``: a separate process.

    python drift_replica.py MODEL_PICKLE METRICS_PORT OTLP_GRPC_ENDPOINT ROWS_OUT SHIFT SEED CALLS

Loads the pickled model (its reference profile travels with it), instruments it with every row
profiled (a test setting: ``drift_sample_rows`` and ``drift_max_rows_per_second`` far above the
traffic), serves ``/metrics`` (Python ``PrometheusMetricReader``) on METRICS_PORT and exports the
same metrics over OTLP/gRPC every second. Then it scores CALLS batches of 40 rows drawn from
breast_cancer, every 20 ms, with 'worst symmetry' shifted by SHIFT standard deviations, saves the
rows and predictions it served to ROWS_OUT (``.npz``), flushes, prints one JSON line and keeps
serving ``/metrics`` until its stdin closes.
"""

from __future__ import annotations

import json
import pickle
import sys
import time

import numpy as np
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, start_http_server
from sklearn.datasets import load_breast_cancer

from otel_mlmon import SklearnInstrumentor

FEATURE = "worst symmetry"
ROWS = 40


def main() -> None:
    model_path, port, endpoint, rows_out, shift, seed, calls = sys.argv[1:8]
    resource = Resource.create({"service.name": "fleet", "service.instance.id": f"replica-{port}"})
    registry = CollectorRegistry()
    otlp = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint, insecure=True), export_interval_millis=1000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[PrometheusMetricReader(registry=registry), otlp])
    tracer_provider = TracerProvider(resource=resource)
    instrumentor = SklearnInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, label_store="none",
                            drift_sample_rows=1_000_000, drift_max_rows_per_second=1e12)  # every row profiled
    httpd, _ = start_http_server(int(port), addr="127.0.0.1", registry=registry)

    with open(model_path, "rb") as f:
        model = pickle.load(f)  # noqa: S301 - the test's own file
    X = load_breast_cancer(as_frame=True).data
    rng = np.random.default_rng(int(seed))
    delta = float(shift) * float(X[FEATURE].std())
    served, predicted = [], []
    for _ in range(int(calls)):
        batch = X.iloc[rng.integers(0, len(X), ROWS)].copy()
        batch[FEATURE] += delta
        predicted.append(model.predict(batch))
        served.append(batch.to_numpy())
        time.sleep(0.02)
    instrumentor.force_flush()  # every call reached the counters
    meter_provider.force_flush()  # and was exported over OTLP
    rows = np.concatenate(served)
    np.savez(rows_out, rows=rows, predictions=np.concatenate(predicted), columns=np.array(X.columns))
    print(json.dumps({"rows": int(rows.shape[0]), "port": int(port)}), flush=True)

    sys.stdin.read()  # serve /metrics until the test closes stdin
    instrumentor.uninstrument()
    httpd.shutdown()
    meter_provider.shutdown()
    tracer_provider.shutdown()


if __name__ == "__main__":
    main()
