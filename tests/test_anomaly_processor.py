"""AnomalyDetectionSpanProcessor on a real SDK pipeline: anomaly-aware sampling, decision
counts, one alert per incident (metric, OpenTelemetry log record, callbacks), isolation of
failing callbacks, and install()/uninstall() on a provider."""

from __future__ import annotations

import math
import random
import threading
import time

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import NoOpTracerProvider, Status, StatusCode

from helpers import metric_points
from otel_mlmon import semconv
from otel_mlmon._internal.config import Settings
from otel_mlmon.anomaly import Alert
from otel_mlmon.anomaly.processor import _TRACE_ID_MASK, AnomalyDetectionSpanProcessor, install, uninstall

try:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as InMemoryLogExporter
except ImportError:  # older SDKs
    from opentelemetry.sdk._logs.export import InMemoryLogExporter


class SeededIds(IdGenerator):
    """Reproducible trace and span ids (the SDK's default ones are random)."""

    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._random.getrandbits(128) or 1


class Pipeline:
    """A TracerProvider whose only processor is AnomalyDetectionSpanProcessor(SimpleSpanProcessor(
    InMemorySpanExporter())), with in-memory metrics and logs."""

    def __init__(self, seed: int = 0, **options) -> None:
        self.exporter = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.log_exporter = InMemoryLogExporter()
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.log_exporter))
        self.processor = AnomalyDetectionSpanProcessor(
            SimpleSpanProcessor(self.exporter), meter_provider=self.meter_provider,
            logger_provider=self.logger_provider, **options,
        )  # fmt: skip
        self.tracer_provider = TracerProvider(id_generator=SeededIds(seed))
        self.tracer_provider.add_span_processor(self.processor)
        self.tracer = self.tracer_provider.get_tracer("test")

    def span(self, kind: str = "normal", model: str = "churn", signal: str = "latency", score: float = 0.97,
             onset: bool = True, **extra):
        """``kind`` "anomaly": an anomalous span, by default the one that opened an incident
        (``onset``, as the instrumentation's incident layer marks it)."""
        attributes = {semconv.ML_MODEL_NAME: model, semconv.ML_OPERATION: "predict", **extra}
        if kind == "anomaly":
            attributes.update({
                semconv.ML_ANOMALY: True, semconv.ML_ANOMALY_SCORE: score,
                semconv.ML_ANOMALY_SIGNAL: signal, semconv.ML_ANOMALY_DETECTOR: "ZScoreDetector",
            })  # fmt: skip
            if onset:
                attributes[semconv.ML_ANOMALY_ALERT] = True
        span = self.tracer.start_span("predict churn", attributes=attributes)
        if kind == "error":
            span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end()
        return span

    def spans(self):
        return list(self.exporter.get_finished_spans())

    def decisions(self) -> dict:
        return {(a[semconv.ML_SAMPLING_DECISION], a[semconv.ML_SAMPLING_REASON]): p.value
                for _, a, p in self.points(semconv.SAMPLING_SPAN_COUNT.name)}  # fmt: skip

    def alert_counts(self) -> dict:
        return {(a[semconv.ML_MODEL_NAME], a[semconv.ML_ANOMALY_SIGNAL]): p.value
                for _, a, p in self.points(semconv.ALERT_COUNT.name)}  # fmt: skip

    def points(self, name):
        return [point[1:] for point in metric_points(self.reader, name)]

    def logs(self):
        assert self.processor.force_flush(5_000)
        return [entry.log_record for entry in self.log_exporter.get_finished_logs()]

    def close(self):
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        self.logger_provider.shutdown()


@pytest.fixture
def make_pipeline():
    pipelines = []

    def make(**options):
        pipeline = Pipeline(**options)
        pipelines.append(pipeline)
        return pipeline

    yield make
    for pipeline in pipelines:
        pipeline.close()


# ---------------------------------------------------------------------- sampling
def test_keeps_every_anomalous_and_error_span_and_samples_normal_ones(make_pipeline):
    pipeline = make_pipeline(sampling_ratio=0.1)
    kinds = ["anomaly" if i % 10 == 0 else "error" if i % 10 == 5 else "normal" for i in range(5000)]
    ended = [pipeline.span(kind, signal=f"s{i % 3}") for i, kind in enumerate(kinds)]
    exported = pipeline.spans()
    by_kind = {k: [s for s, kind in zip(ended, kinds) if kind == k] for k in ("anomaly", "error", "normal")}
    exported_ids = {s.context.span_id for s in exported}
    assert all(s.context.span_id in exported_ids for s in by_kind["anomaly"])  # 500 of 500
    assert all(s.context.span_id in exported_ids for s in by_kind["error"])  # 500 of 500
    kept_normal = [s for s in by_kind["normal"] if s.context.span_id in exported_ids]
    n, p = len(by_kind["normal"]), 0.1
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(len(kept_normal) - n * p) < 4.5 * sigma, len(kept_normal)  # 4000 normal traces: 400 +- 85
    # Decided by trace id, as TraceIdRatioBased does: the kept normal spans are exactly these.
    bound = round(0.1 * (_TRACE_ID_MASK + 1))
    assert all(((s.context.trace_id & _TRACE_ID_MASK) < bound) == (s.context.span_id in exported_ids)
               for s in by_kind["normal"])  # fmt: skip
    assert pipeline.decisions() == {
        ("kept", "anomaly"): 500, ("kept", "error"): 500,
        ("kept", "ratio"): len(kept_normal), ("dropped", "ratio"): n - len(kept_normal),
    }  # fmt: skip
    unit = {u for u, _, _ in pipeline.points(semconv.SAMPLING_SPAN_COUNT.name)}
    assert unit == {semconv.SAMPLING_SPAN_COUNT.unit}


def test_ratio_one_drops_nothing_and_ratio_zero_drops_every_normal_span(make_pipeline):
    everything = make_pipeline(sampling_ratio=1.0)
    for i in range(1000):
        everything.span("error" if i % 100 == 0 else "normal")
    assert len(everything.spans()) == 1000
    assert everything.decisions() == {("kept", "ratio"): 990, ("kept", "error"): 10}
    nothing = make_pipeline(sampling_ratio=0.0, seed=1)
    for i in range(300):
        nothing.span("anomaly" if i % 100 == 0 else "normal")
    assert len(nothing.spans()) == 3
    assert nothing.decisions() == {("kept", "anomaly"): 3, ("dropped", "ratio"): 297}


def test_traces_are_kept_or_dropped_whole(make_pipeline):
    pipeline = make_pipeline(sampling_ratio=0.3, seed=2)
    for _ in range(400):
        with pipeline.tracer.start_as_current_span("request"):
            with pipeline.tracer.start_as_current_span("features"):
                pass
            pipeline.span("normal")
    per_trace: dict[int, int] = {}
    for span in pipeline.spans():
        per_trace[span.context.trace_id] = per_trace.get(span.context.trace_id, 0) + 1
    assert per_trace and set(per_trace.values()) == {3}
    assert 0.2 < len(per_trace) / 400 < 0.4


def test_spans_ending_after_an_anomaly_in_their_trace_are_kept(make_pipeline):
    """The parents of an anomalous span (an HTTP server span around predict, say) end after it
    and are kept with it; spans that ended before it were decided already."""
    pipeline = make_pipeline(sampling_ratio=0.0, seed=3)
    for kind in ("anomaly", "error"):
        with pipeline.tracer.start_as_current_span("request") as request:
            with pipeline.tracer.start_as_current_span("before"):
                pass
            flagged = pipeline.span(kind)
        assert flagged.context.trace_id == request.context.trace_id
    names = sorted(s.name for s in pipeline.spans())
    assert names == ["predict churn", "predict churn", "request", "request"]
    assert pipeline.decisions() == {("kept", "anomaly"): 2, ("kept", "error"): 2, ("dropped", "ratio"): 2}


# ---------------------------------------------------------------------- alerts
def test_one_alert_per_incident_onset_and_none_for_its_continuation(make_pipeline):
    alerts: list[Alert] = []
    pipeline = make_pipeline(callbacks=[alerts.append])
    first = pipeline.span("anomaly", score=0.91)
    for _ in range(5):
        pipeline.span("anomaly", onset=False)  # the same incident goes on: kept, no new alert
    pipeline.span("anomaly", signal="batch_size")  # another signal: another incident
    pipeline.span("anomaly", model="fraud")  # another model: another incident
    pipeline.span("normal")
    pipeline.span("anomaly")  # a later, separate incident of the first: alerts again at once
    assert pipeline.processor.force_flush(5_000)
    incidents = [(a.model, a.signal) for a in alerts]
    assert incidents == [("churn", "latency"), ("churn", "batch_size"), ("fraud", "latency"), ("churn", "latency")]
    assert pipeline.alert_counts() == {("churn", "latency"): 2, ("churn", "batch_size"): 1, ("fraud", "latency"): 1}
    assert pipeline.decisions() == {("kept", "anomaly"): 9, ("kept", "ratio"): 1}

    alert = alerts[0]
    assert isinstance(alert, Alert)
    assert (alert.key, alert.model, alert.signal) == (("churn", "latency"), "churn", "latency")
    assert alert.detector == "ZScoreDetector"
    assert alert.score == 0.91
    assert alert.trace_id == format(first.context.trace_id, "032x") and len(alert.trace_id) == 32
    assert alert.span_id == format(first.context.span_id, "016x") and len(alert.span_id) == 16
    assert abs(alert.timestamp - time.time()) < 5
    assert alert.attributes == {semconv.ML_OPERATION: "predict"}


def test_an_optional_cooldown_spaces_alerts_of_one_model_and_signal(make_pipeline):
    alerts: list[Alert] = []
    pipeline = make_pipeline(cooldown_s=0.3, callbacks=[alerts.append])
    pipeline.span("anomaly")
    pipeline.span("anomaly")  # a second onset within the cooldown: not alerted
    pipeline.span("anomaly", signal="batch_size")  # another signal: alerted
    time.sleep(0.35)
    pipeline.span("anomaly")  # past the cooldown: alerted
    assert pipeline.processor.force_flush(5_000)
    assert [a.key for a in alerts] == [("churn", "latency"), ("churn", "batch_size"), ("churn", "latency")]


def test_one_warn_log_record_per_alert_with_the_span_ids(make_pipeline):
    pipeline = make_pipeline()
    first = pipeline.span("anomaly", score=0.8)
    pipeline.span("anomaly", onset=False)
    second = pipeline.span("anomaly", signal="error_rate", score=0.99)
    records = pipeline.logs()
    assert len(records) == 2
    for record, span, signal, score in ((records[0], first, "latency", 0.8), (records[1], second, "error_rate", 0.99)):
        assert record.severity_number == SeverityNumber.WARN and record.severity_text == "WARN"
        assert record.trace_id == span.context.trace_id and record.span_id == span.context.span_id
        assert record.attributes[semconv.ML_MODEL_NAME] == "churn"
        assert record.attributes[semconv.ML_ANOMALY_SIGNAL] == signal
        assert record.attributes[semconv.ML_ANOMALY_SCORE] == score
        assert record.attributes[semconv.ML_ANOMALY_DETECTOR] == "ZScoreDetector"
        assert signal in record.body and "churn" in record.body


def test_log_alerts_can_be_turned_off(make_pipeline):
    pipeline = make_pipeline(log_alerts=False)
    pipeline.span("anomaly")
    assert pipeline.logs() == []
    assert pipeline.alert_counts() == {("churn", "latency"): 1}  # still counted


def test_a_raising_callback_affects_neither_other_sinks_nor_spans(make_pipeline, caplog):
    received: list[Alert] = []

    def broken(alert):
        raise RuntimeError("callback bug")

    pipeline = make_pipeline(callbacks=[broken, received.append])
    for i in range(5):
        pipeline.span("anomaly", signal=f"signal{i}")
        pipeline.span("error")
    assert pipeline.processor.force_flush(5_000)
    assert len(pipeline.spans()) == 10
    assert [a.signal for a in received] == [f"signal{i}" for i in range(5)]
    assert len(pipeline.logs()) == 5
    dispatcher = pipeline.processor._dispatcher  # noqa: SLF001
    assert dispatcher.failed == 5 and dispatcher.sink_failures == [0, 5, 0]
    warnings = [r for r in caplog.records if "alert sink" in r.getMessage()]
    assert len(warnings) == 1  # logged once, then counted


def test_a_slow_callback_does_not_hold_up_span_ending(make_pipeline):
    release = threading.Event()
    pipeline = make_pipeline(callbacks=[lambda alert: release.wait(5)])
    durations = []
    for i in range(50):
        t0 = time.perf_counter()
        pipeline.span("anomaly", signal=f"s{i}")
        durations.append(time.perf_counter() - t0)
    release.set()
    assert pipeline.processor.force_flush(5_000)
    durations.sort()
    assert durations[25] < 0.001 and durations[-1] < 0.1, durations[-5:]


def test_unusual_attribute_values_never_raise(make_pipeline):
    alerts: list[Alert] = []
    pipeline = make_pipeline(callbacks=[alerts.append])
    pipeline.span("anomaly", score="high")  # not a number
    span = pipeline.tracer.start_span("bare", attributes={semconv.ML_ANOMALY: True, semconv.ML_ANOMALY_ALERT: True})
    # no model, no signal
    span.end()
    assert pipeline.processor.force_flush(5_000)
    assert len(pipeline.spans()) == 2
    assert math.isnan(alerts[0].score)
    assert alerts[1].key == ("", "")
    assert pipeline.decisions() == {("kept", "anomaly"): 2}


def test_shutdown_and_force_flush_reach_the_wrapped_processor(make_pipeline):
    class Recording(SpanProcessor):
        def __init__(self):
            self.calls = []

        def on_start(self, span, parent_context=None):
            self.calls.append("start")

        def _on_ending(self, span):
            self.calls.append("ending")

        def on_end(self, span):
            self.calls.append("end")

        def force_flush(self, timeout_millis=30000):
            self.calls.append("flush")
            return True

        def shutdown(self):
            self.calls.append("shutdown")

    inner = Recording()
    processor = AnomalyDetectionSpanProcessor(inner, meter_provider=MeterProvider(), log_alerts=False)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.get_tracer("t").start_span("x").end()
    assert processor.force_flush(1_000) is True
    provider.shutdown()
    assert inner.calls == ["start", "ending", "end", "flush", "shutdown"]


@pytest.mark.parametrize(
    "options",
    [
        {"sampling_ratio": -0.1}, {"sampling_ratio": 1.5}, {"sampling_ratio": float("nan")},
        {"sampling_ratio": True}, {"sampling_ratio": "0.5"}, {"cooldown_s": -1},
        {"cooldown_s": float("nan")}, {"cooldown_s": "60"}, {"callbacks": [42]},
        {"webhook_url": "ftp://example.com/hook"}, {"webhook_url": "not a url"},
    ],
)  # fmt: skip
def test_invalid_constructor_arguments_raise_value_error(options):
    with pytest.raises(ValueError):
        AnomalyDetectionSpanProcessor(
            SimpleSpanProcessor(InMemorySpanExporter()), meter_provider=MeterProvider(), **options
        )


def test_a_processor_is_required():
    with pytest.raises(ValueError):
        AnomalyDetectionSpanProcessor(None)


# ---------------------------------------------------------------------- install / uninstall
def _processors(provider):
    return provider._active_span_processor._span_processors  # noqa: SLF001


def test_install_wraps_and_uninstall_restores_exactly(make_pipeline):
    provider = TracerProvider()
    first, second = SimpleSpanProcessor(InMemorySpanExporter()), SimpleSpanProcessor(InMemorySpanExporter())
    provider.add_span_processor(first)
    provider.add_span_processor(second)
    original = _processors(provider)
    settings = Settings(sampling_ratio=0.5, alert_cooldown_s=60.0, alert_logs=False)
    wrapper = install(provider, settings, MeterProvider())
    assert _processors(provider) == (wrapper,)
    assert isinstance(wrapper.processor, SynchronousMultiSpanProcessor)
    assert wrapper.processor._span_processors == (first, second)  # noqa: SLF001
    assert (wrapper.sampling_ratio, wrapper.cooldown_s, wrapper._dispatcher) == (0.5, 60.0, None)  # noqa: SLF001
    assert install(provider, settings) is wrapper  # idempotent
    assert _processors(provider) == (wrapper,)
    uninstall(provider)
    restored = _processors(provider)
    assert restored == original and all(a is b for a, b in zip(restored, original))
    uninstall(provider)  # idempotent
    assert _processors(provider) == original
    provider.shutdown()


def test_install_single_processor_and_processors_added_later():
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    only = SimpleSpanProcessor(exporter)
    provider.add_span_processor(only)
    wrapper = install(provider, Settings(alert_logs=False), MeterProvider())
    assert wrapper.processor is only
    later = SimpleSpanProcessor(InMemorySpanExporter())
    provider.add_span_processor(later)  # added after install: stays after uninstall
    provider.get_tracer("t").start_span("x").end()
    assert len(exporter.get_finished_spans()) == 1
    uninstall(provider)
    assert _processors(provider) == (only, later)
    provider.shutdown()


def test_install_leaves_other_providers_alone():
    empty = TracerProvider()
    assert install(empty, Settings(), MeterProvider()) is None
    assert _processors(empty) == ()
    assert install(NoOpTracerProvider(), Settings(), MeterProvider()) is None
    uninstall(NoOpTracerProvider())  # never installed: nothing happens
    uninstall(empty)
    assert _processors(empty) == ()
