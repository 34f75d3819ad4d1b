"""Shared fixtures: real SDK providers with in-memory exporter and reader."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).parent))  # tests/ helpers such as otlp_collector

from otel_mlmon import SklearnInstrumentor  # noqa: E402
from helpers import metric_points  # noqa: E402

# The persistent label store of the instrumented sessions goes to a scratch file, never to the
# user's cache directory.
os.environ.setdefault("OTEL_MLMON_LABEL_STORE_PATH", str(Path(tempfile.mkdtemp(prefix="otel-mlmon-tests-")) / "predictions.sqlite"))

collect_ignore = ["apps"]  # scripts run as subprocesses by the tests, not test modules


class Telemetry:
    """An instrumented session: spans and metrics as plain Python data."""

    def __init__(self, **options):
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.instrumentor = SklearnInstrumentor()
        self.instrumentor.instrument(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options
        )

    def spans(self):
        """Finished spans; the provider's flush first lets the recording worker end the spans of
        the calls made so far (it ends them after judging each call)."""
        self.tracer_provider.force_flush()
        return list(self.exporter.get_finished_spans())

    def clear(self):
        self.exporter.clear()

    def points(self, name: str | None = None):
        """Every data point as (metric name, unit, attributes dict, point), collected now."""
        return metric_points(self.reader, name)

    def metric_names(self):
        return {name for name, _, _, _ in self.points()}

    def close(self):
        self.instrumentor.uninstrument()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def telemetry():
    session = Telemetry()
    yield session
    session.close()


@pytest.fixture
def make_telemetry():
    sessions = []

    def make(**options):
        session = Telemetry(**options)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()
