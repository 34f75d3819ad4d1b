"""SDK providers for the examples: in-memory span exporter and metric reader (so the example can
print what it produced), plus OTLP exporters when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

An application run under ``opentelemetry-instrument`` needs none of this (see http_service.py).
"""

from __future__ import annotations

import os

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def providers(service_name: str):
    """``(tracer_provider, meter_provider, span_exporter, metric_reader)`` for ``service_name``."""
    resource = Resource.create({"service.name": service_name})
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    readers = [reader]
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    return tracer_provider, MeterProvider(resource=resource, metric_readers=readers), spans, reader
