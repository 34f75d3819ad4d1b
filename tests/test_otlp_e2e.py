"""End to end over OTLP: instrumented scikit-learn model -> OTel SDK (batch span processor,
periodic metric reader, gRPC exporters) -> a real collector process (rotel) -> the test's sink.

- what arrives is intact: span names, kinds, statuses, attribute values and types (model,
  operation, batch size, anomaly verdict), metric types, units, attributes and values;
- a collector outage does not slow ``predict`` (median latency with the collector down is
  compared with the median while it is up), the SDK's queue stays bounded and counts what it
  drops, and no call fails;
- when the collector comes back, export resumes: spans made after the restart arrive, and the
  cumulative metrics catch up with the calls made during the outage.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from otlp_collector import Collector  # noqa: E402

from otel_mlmon import SklearnInstrumentor, semconv, set_model_info  # noqa: E402
from otel_mlmon.anomaly import default_detector  # noqa: E402

SERVICE = "otlp-e2e"
QUEUE = 256  # BatchSpanProcessor queue: bounded, smaller than the outage's span count
BATCH = 64


class Pipeline:
    """The application side: SDK providers exporting over gRPC to the collector, plus an
    in-memory reader for the SDK's own metrics (drops, export failures)."""

    def __init__(self, collector: Collector):
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({"service.name": SERVICE})
        self.local = InMemoryMetricReader()
        exporter = OTLPMetricExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=2)
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[
            PeriodicExportingMetricReader(exporter, export_interval_millis=300, export_timeout_millis=3000),
            self.local,
        ])
        span_exporter = OTLPSpanExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=2,
                                         meter_provider=self.meter_provider)
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(
            span_exporter, max_queue_size=QUEUE, max_export_batch_size=BATCH, schedule_delay_millis=100,
            meter_provider=self.meter_provider))
        self.instrumentor = SklearnInstrumentor()
        self.instrumentor.instrument(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider,
                                     flush_interval_ms=200)

    def local_points(self, name: str) -> list[tuple[dict, object]]:
        data = self.local.get_metrics_data()
        return [(dict(point.attributes), point)
                for rm in (data.resource_metrics if data else ()) for sm in rm.scope_metrics
                for metric in sm.metrics if metric.name == name for point in metric.data.data_points]

    def close(self) -> None:
        self.instrumentor.uninstrument()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def pipeline(tmp_path, monkeypatch):
    # the SDK's own metrics: spans processed / dropped by the batch processor, exporter outcomes
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    collector = Collector(tmp_path).start()
    app = Pipeline(collector)
    try:
        yield collector, app
    finally:
        try:
            if not collector.running:
                collector.restart()  # so that shutdown's final export does not wait for timeouts
            app.close()
        finally:
            collector.stop()


def _model(name: str, version: str):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    return set_model_info(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), name=name, version=version), X


def _latest(points: list[dict], name: str, **attributes) -> dict:
    """The most recent exported point of a metric with exactly these attributes."""
    matching = [p for p in points if p["name"] == name and p["attributes"] == attributes]
    assert matching, f"no {name} point with {attributes}; have {sorted({str(p['attributes']) for p in points if p['name'] == name})}"
    return max(matching, key=lambda p: p["time_unix_nano"])


def test_spans_and_metrics_arrive_intact(pipeline):
    collector, app = pipeline
    model, X = _model("churn", "2024-11")
    for _ in range(100):  # normal calls; also the anomaly detectors' warm-up
        model.predict(X[:7])
    for _ in range(5):
        model.predict_proba(X[:3])
    huge = np.tile(X, (10, 1))  # 3000 rows where calls have 7: an anomalous batch size
    model.predict(huge)
    with pytest.raises(ValueError):
        model.predict(np.zeros((2, 5)))  # wrong feature count: raises, unchanged

    model_attrs = {semconv.ML_MODEL_NAME: "churn", semconv.ML_MODEL_VERSION: "2024-11",
                   semconv.ML_FRAMEWORK: "sklearn"}
    predict = {**model_attrs, semconv.ML_OPERATION: "predict"}

    def arrived(c):
        names = {m["name"] for m in c.metrics()}
        return (len([s for s in c.spans() if s["name"] == "predict churn"]) >= 102
                and {semconv.INFERENCE_DURATION.name, semconv.ANOMALY_COUNT.name} <= names
                and any(p["name"] == semconv.INFERENCE_DURATION.name and p["attributes"].get(semconv.ERROR_TYPE)
                        for p in c.metrics()))

    collector.wait_for(arrived, timeout=30)

    spans = collector.spans()
    normal = [s for s in spans if s["name"] == "predict churn" and s["attributes"][semconv.ML_BATCH_SIZE] == 7]
    assert len(normal) == 100
    span = normal[0]
    assert span["kind"] == "INTERNAL" and span["status_code"] == "UNSET"
    assert span["resource"]["service.name"] == SERVICE
    assert span["scope"] == "otel_mlmon"
    attributes = span["attributes"]
    assert {k: attributes[k] for k in predict} == predict
    assert attributes[semconv.ML_MODEL_CLASS] == "sklearn.linear_model._logistic.LogisticRegression"
    assert attributes[semconv.ML_INPUT_FEATURE_COUNT] == 4 and isinstance(attributes[semconv.ML_BATCH_SIZE], int)
    proba = [s for s in spans if s["name"] == "predict_proba churn"]
    assert len(proba) == 5 and proba[0]["attributes"][semconv.ML_BATCH_SIZE] == 3

    # the anomalous call: verdict attributes with their types, through the collector
    (spike,) = [s for s in spans if s["attributes"].get(semconv.ML_BATCH_SIZE) == len(huge)]
    verdict = spike["attributes"]
    assert verdict[semconv.ML_ANOMALY] is True
    assert verdict[semconv.ML_ANOMALY_SIGNAL] == "batch_size"
    assert isinstance(verdict[semconv.ML_ANOMALY_SCORE], float) and 0.0 <= verdict[semconv.ML_ANOMALY_SCORE] <= 1.0
    assert verdict[semconv.ML_ANOMALY_DETECTOR] == "DefaultDetector"
    warm_up = default_detector().warm_up  # the detectors' warm-up: never anomalous
    assert all(semconv.ML_ANOMALY not in s["attributes"] for s in normal[:warm_up])

    # the failed call: ERROR status, exception type, no message (privacy default)
    (failed,) = [s for s in spans if s["status_code"] == "ERROR"]
    assert failed["name"] == "predict churn"
    assert failed["attributes"][semconv.ERROR_TYPE] == "ValueError"
    assert failed["status_message"] == "ValueError"
    assert [e["name"] for e in failed["events"]] == ["exception"]
    assert failed["events"][0]["attributes"] == {"exception.type": "ValueError"}

    # metrics, cumulative; wait for the export that includes every call
    rows = 100 * 7 + len(huge)

    def complete(c):
        try:
            return _latest(c.metrics(), semconv.INFERENCE_ROW_COUNT.name, **predict)["value"] == rows
        except AssertionError:
            return False

    collector.wait_for(complete, timeout=30)
    points = collector.metrics()
    duration = _latest(points, semconv.INFERENCE_DURATION.name, **predict)
    assert (duration["type"], duration["unit"], duration["temporality"]) == ("histogram", "s", "cumulative")
    assert duration["count"] == 101 and duration["explicit_bounds"] == list(semconv.DURATION_BUCKETS)
    assert 0 < duration["min"] <= duration["max"] < 10
    errors = _latest(points, semconv.INFERENCE_DURATION.name, **predict, **{semconv.ERROR_TYPE: "ValueError"})
    assert errors["count"] == 1
    row_count = _latest(points, semconv.INFERENCE_ROW_COUNT.name, **predict)
    assert (row_count["type"], row_count["unit"], row_count["is_monotonic"]) == ("sum", "{row}", True)
    proba_rows = _latest(points, semconv.INFERENCE_ROW_COUNT.name, **model_attrs, **{semconv.ML_OPERATION: "predict_proba"})
    assert proba_rows["value"] == 15
    batch = _latest(points, semconv.INFERENCE_BATCH_SIZE.name, **predict)
    assert batch["count"] == 101 and batch["sum"] == rows
    anomalies = _latest(points, semconv.ANOMALY_COUNT.name, **predict,
                        **{semconv.ML_ANOMALY_SIGNAL: "batch_size", semconv.ML_ANOMALY_DETECTOR: "DefaultDetector"})
    assert anomalies["value"] >= 1 and anomalies["unit"] == "{anomaly}"
    assert duration["resource"]["service.name"] == SERVICE


def _timed_calls(model, X, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        model.predict(X)
        out.append(time.perf_counter() - started)
    return out


def _sdk_count(app: Pipeline, name: str, **attributes) -> int:
    return sum(point.value for attrs, point in app.local_points(name)
               if all(attrs.get(k) == v for k, v in attributes.items()))


def _failed_exports(app: Pipeline) -> int:
    return sum(point.value for attrs, point in app.local_points("otel.sdk.exporter.span.exported")
               if attrs.get("error.type"))


def test_collector_outage_does_not_slow_predict_and_export_resumes(pipeline):
    collector, app = pipeline
    model, X = _model("outage", "1")
    up_rows, down_rows, after_rows = X[:5], X[:6], X[:9]  # batch sizes tell the phases apart
    _timed_calls(model, up_rows, 200)  # warm-up (detectors, caches)
    up = _timed_calls(model, up_rows, 600)
    # a burst can overflow the small queue even with the collector up: every span is either
    # exported, or counted as dropped (queue full) or as failed by the exporter (a busy machine
    # can time an export out)
    queue_full = {"error.type": "queue_full"}

    def accounted(c):
        received = len([s for s in c.spans() if s["attributes"].get(semconv.ML_BATCH_SIZE) == 5])
        lost = _sdk_count(app, "otel.sdk.processor.span.processed", **queue_full) + _failed_exports(app)
        # >=: an export that timed out on the client may still have reached the collector
        return received <= 800 and received + lost >= 800

    collector.wait_for(accounted, timeout=30)
    dropped_up = _sdk_count(app, "otel.sdk.processor.span.processed", **queue_full)

    collector.kill()
    assert not collector.running
    outage_calls = 2000
    down = _timed_calls(model, down_rows, outage_calls)  # no call raises
    p50_up, p50_down = statistics.median(up), statistics.median(down)
    # predict is as fast with the collector down: export happens off the calling thread
    assert p50_down <= 1.5 * p50_up + 100e-6, f"p50 up {p50_up * 1e6:.0f} µs, down {p50_down * 1e6:.0f} µs"

    # bounded queue: the batch processor dropped what did not fit, and counted it
    dropped = _sdk_count(app, "otel.sdk.processor.span.processed", **queue_full) - dropped_up
    assert dropped >= outage_calls - QUEUE - 4 * BATCH, f"only {dropped} spans counted as dropped"
    # the exporter counts the spans it failed to export (after its retries, within its timeout)
    deadline = time.monotonic() + 15
    while not _failed_exports(app) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _failed_exports(app) > 0
    # otel-mlmon's own recording queue dropped nothing
    assert not app.local_points(semconv.MONITOR_DROPPED_COUNT.name)

    collector.restart()
    _timed_calls(model, after_rows, 50)
    # spans made after the restart arrive
    collector.wait_for(lambda c: len([s for s in c.spans() if s["attributes"].get(semconv.ML_BATCH_SIZE) == 9]) == 50,
                       timeout=30)
    # spans of the outage: at most what the bounded queue held
    during = [s for s in collector.spans() if s["attributes"].get(semconv.ML_BATCH_SIZE) == 6]
    assert len(during) <= QUEUE + BATCH and len(during) + dropped <= outage_calls + BATCH
    # cumulative metrics lose nothing: rows of the outage are in the next export
    total_rows = 800 * 5 + outage_calls * 6 + 50 * 9
    predict = {semconv.ML_MODEL_NAME: "outage", semconv.ML_MODEL_VERSION: "1", semconv.ML_FRAMEWORK: "sklearn",
               semconv.ML_OPERATION: "predict"}

    def caught_up(c):
        try:
            return _latest(c.metrics(), semconv.INFERENCE_ROW_COUNT.name, **predict)["value"] == total_rows
        except AssertionError:
            return False

    collector.wait_for(caught_up, timeout=30)
