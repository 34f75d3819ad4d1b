"""Self-test: OTel SDK -> OTLP (grpc / http) -> real rotel process -> Collector."""

import os
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

# pytest runs with --import-mode=importlib, which does not put tests/ on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from otlp_collector import Collector  # noqa: E402


def _exporters(protocol, col):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return (OTLPSpanExporter(endpoint=col.grpc_endpoint, insecure=True),
                OTLPMetricExporter(endpoint=col.grpc_endpoint, insecure=True))
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # The http exporters' endpoint= argument is the full URL (signal path included).
    return (OTLPSpanExporter(endpoint=col.http_endpoint + "/v1/traces"),
            OTLPMetricExporter(endpoint=col.http_endpoint + "/v1/metrics"))


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_spans_and_metrics_roundtrip(tmp_path, protocol):
    resource = Resource.create({"service.name": f"selftest-{protocol}"})
    with Collector(tmp_path) as col:
        span_exporter, metric_exporter = _exporters(protocol, col)

        tp = TracerProvider(resource=resource)
        tp.add_span_processor(SimpleSpanProcessor(span_exporter))
        with tp.get_tracer("selftest").start_as_current_span(
            "train", kind=SpanKind.SERVER, attributes={"model": "rf", "n_rows": 42}
        ) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
        tp.shutdown()

        reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
        mp = MeterProvider(resource=resource, metric_readers=[reader])
        meter = mp.get_meter("selftest")
        meter.create_counter("predictions", unit="1").add(3, {"model": "rf"})
        meter.create_histogram("latency", unit="ms").record(12.5, {"model": "rf"})
        mp.shutdown()  # final collect + export

        col.wait_for(lambda c: c.spans() and {"predictions", "latency"} <= {m["name"] for m in c.metrics()},
                     timeout=20)

        (span,) = col.spans()
        assert span["name"] == "train"
        assert span["kind"] == "SERVER"
        assert span["attributes"] == {"model": "rf", "n_rows": 42}
        assert isinstance(span["attributes"]["n_rows"], int)
        assert span["trace_id"] == trace_id and len(span["span_id"]) == 16
        assert span["status_code"] == "UNSET"
        assert span["resource"]["service.name"] == f"selftest-{protocol}"

        by_name = {m["name"]: m for m in col.metrics()}
        counter, hist = by_name["predictions"], by_name["latency"]
        assert (counter["type"], counter["unit"], counter["value"]) == ("sum", "1", 3)
        assert counter["attributes"] == {"model": "rf"}
        assert counter["temporality"] == "cumulative" and counter["is_monotonic"]
        assert (hist["type"], hist["unit"], hist["count"], hist["sum"]) == ("histogram", "ms", 1, 12.5)
        assert sum(hist["bucket_counts"]) == 1
        assert hist["attributes"] == {"model": "rf"}
        assert hist["resource"]["service.name"] == f"selftest-{protocol}"

        proc = col._proc
    assert proc.poll() is not None  # process killed on exit
    col.stop()  # idempotent
    assert col.spans()  # data still readable after stop


def test_wait_for_timeout_reports_summary(tmp_path):
    with Collector(tmp_path) as col:
        with pytest.raises(AssertionError, match=r"0 span\(s\)"):
            col.wait_for(lambda c: c.spans(), timeout=0.3)


def test_missing_binary_raises_in_ci(tmp_path, monkeypatch):
    monkeypatch.setenv("ROTEL_AGENT_BINARY", os.fspath(tmp_path / "does-not-exist"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(RuntimeError, match="rotel"):
        Collector(tmp_path).start()
