"""The demo's telemetry: real SDK providers (OTLP exporters too when the endpoint is set), a
span tap drained at every poll, and readers of the collected metric points."""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

from otel_mlmon import semconv
from otel_mlmon._demo_config import MODEL_NAME

__all__ = ["SpanTap", "Telemetry", "accuracy", "by_feature", "first_value"]


class SpanTap:
    """An in-memory span exporter that keeps what the demo reads, drained at every poll.

    (The SDK's ``InMemorySpanExporter`` has no atomic read-and-clear; this one swaps its list
    under a lock, so no span is lost between two polls. Bounded: beyond ``limit`` spans
    between two polls, spans are counted and dropped.)
    """

    def __init__(self, limit: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._rows: list[tuple] = []
        self._limit = limit
        self.exported = 0
        self.dropped = 0

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult  # noqa: PLC0415

        rows = []
        for span in spans:
            attributes = span.attributes or {}
            if attributes.get(semconv.ML_MODEL_NAME) != MODEL_NAME:
                continue
            rows.append((
                span.end_time / 1e9, (span.end_time - span.start_time) / 1e9,
                attributes.get(semconv.ML_ANOMALY) is True, attributes.get(semconv.ML_ANOMALY_SIGNAL),
            ))  # fmt: skip
        with self._lock:
            self.exported += len(rows)
            room = self._limit - len(self._rows)
            if room < len(rows):
                self.dropped += len(rows) - max(room, 0)
                rows = rows[: max(room, 0)]
            self._rows.extend(rows)
        return SpanExportResult.SUCCESS

    def drain(self) -> list[tuple]:
        with self._lock:
            rows, self._rows = self._rows, []
        return rows

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class Telemetry:
    """Real SDK providers for the demo; OTLP exporters too when the endpoint is set."""

    def __init__(self, on_alert: Callable[[Any], None], environ: dict[str, str]) -> None:
        from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: PLC0415
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor, TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter  # noqa: PLC0415

        from otel_mlmon.anomaly.processor import AnomalyDetectionSpanProcessor  # noqa: PLC0415

        class Tap(SpanTap, SpanExporter):
            pass

        self.resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or "otel-mlmon-demo"})
        self.tap = Tap()
        self.reader = InMemoryMetricReader()
        self.otlp = self._otlp(environ)
        readers = [self.reader] + ([self.otlp["metric_reader"]] if self.otlp else [])
        self.meter_provider = MeterProvider(resource=self.resource, metric_readers=readers)
        self.tracer_provider = TracerProvider(resource=self.resource)
        inner = SynchronousMultiSpanProcessor()
        inner.add_span_processor(SimpleSpanProcessor(self.tap))
        if self.otlp:
            inner.add_span_processor(self.otlp["span_processor"])
        self.processor = AnomalyDetectionSpanProcessor(
            inner, callbacks=[on_alert],  # the defaults of the processor instrument() installs
            log_alerts=bool(self.otlp), meter_provider=self.meter_provider,
            logger_provider=self.otlp["logger_provider"] if self.otlp else None,
        )  # fmt: skip
        self.tracer_provider.add_span_processor(self.processor)

    @staticmethod
    def _otlp(environ: dict[str, str]) -> dict[str, Any] | None:
        if not environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
            return None
        from opentelemetry.sdk._logs import LoggerProvider  # noqa: PLC0415
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor  # noqa: PLC0415
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

        protocol = environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc").strip().lower()
        if protocol.startswith("http"):
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # noqa: PLC0415
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter  # noqa: PLC0415
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
        else:
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter  # noqa: PLC0415
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter  # noqa: PLC0415
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
        interval = None if environ.get("OTEL_METRIC_EXPORT_INTERVAL") else 5000  # SDK default: 60 s
        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
        return {
            "protocol": "http/protobuf" if protocol.startswith("http") else "grpc",
            "endpoint": environ["OTEL_EXPORTER_OTLP_ENDPOINT"].strip(),
            "span_processor": BatchSpanProcessor(OTLPSpanExporter()),
            "metric_reader": PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=interval),
            "logger_provider": logger_provider,
        }

    def read(self) -> dict[str, list[tuple[dict, Any]]]:
        """Every data point collected now, by metric name (the demo's model only where named)."""
        data = self.reader.get_metrics_data()
        out: dict[str, list[tuple[dict, Any]]] = {}
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        attributes = dict(point.attributes)
                        if attributes.get(semconv.ML_MODEL_NAME, MODEL_NAME) == MODEL_NAME:
                            out.setdefault(metric.name, []).append((attributes, point))
        return out

    def shutdown(self) -> None:
        for close in (self.tracer_provider.shutdown, self.meter_provider.shutdown):
            try:
                close()
            except Exception:  # noqa: BLE001 - a failing exporter must not hide the report
                pass
        if self.otlp:
            try:
                self.otlp["logger_provider"].shutdown()
            except Exception:  # noqa: BLE001
                pass


# ------------------------------------------------------------------------------ metric points
def first_value(points: dict, name: str) -> float | None:
    values = [float(p.value) for _, p in points.get(name, ())]
    return values[0] if values else None


def by_feature(points: dict, name: str, method: str) -> dict[str, float]:
    return {str(a.get(semconv.ML_FEATURE_NAME)): float(p.value) for a, p in points.get(name, ())
            if a.get(semconv.ML_DRIFT_METHOD) == method and a.get(semconv.ML_FEATURE_NAME) != "_output"}  # fmt: skip


def accuracy(points: dict, source: str) -> float | None:
    for attributes, point in points.get(semconv.QUALITY_SCORE.name, ()):
        if attributes.get(semconv.ML_QUALITY_METRIC) == "accuracy" and attributes.get(semconv.ML_QUALITY_SOURCE) == source:
            return float(point.value)
    return None
