"""Alert sinks end to end: a real HTTP receiver on 127.0.0.1, the AlertDispatcher's bounded
queue and isolation of failing sinks, the webhook's de-duplication, retries, bounds and
shutdown, and the dispatcher's worker after fork."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import FrozenInstanceError
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_mlmon import semconv
from otel_mlmon.anomaly import Alert, CallbackSink, WebhookSink
from otel_mlmon.anomaly.processor import AnomalyDetectionSpanProcessor
from otel_mlmon.anomaly.sinks import AlertDispatcher


class Receiver:
    """A webhook receiver on 127.0.0.1: records every POST; answers ``statuses`` in turn (then 200)."""

    def __init__(self, port: int = 0, statuses=()):
        self.posts: list[dict] = []
        self.statuses = list(statuses)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.posts.append({"path": self.path, "headers": dict(self.headers),
                                           "body": json.loads(body), "status": status})  # fmt: skip
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/ml"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def bodies(self):
        with self.lock:
            return [p["body"] for p in self.posts]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    started: list[Receiver] = []

    def start(port: int = 0, statuses=()):
        receiver = Receiver(port, statuses)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.close()


def free_port() -> int:
    """A loopback port with nothing listening (the receiver is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Silent:
    """Accepts connections on 127.0.0.1 and never answers (a hung receiver)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"

    def close(self):
        self.sock.close()


def make_alert(i: int = 0, signal: str = "latency", timestamp: float | None = None, **extra) -> Alert:
    return Alert(
        key=("churn", signal), model="churn", signal=signal, detector="EWMADetector", score=0.9 + i / 1000,
        timestamp=time.time() if timestamp is None else timestamp,
        trace_id=f"{i + 1:032x}", span_id=f"{i + 1:016x}", attributes={"ml.model.version": "3"}, **extra,
    )  # fmt: skip


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def anomaly_pipeline(webhook_url, cooldown_s=300.0):
    exporter = InMemorySpanExporter()
    processor = AnomalyDetectionSpanProcessor(
        SimpleSpanProcessor(exporter), cooldown_s=cooldown_s, webhook_url=webhook_url, log_alerts=False,
        meter_provider=MeterProvider(),
    )  # fmt: skip
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")

    def end_anomalous_span(signal="latency"):
        span = tracer.start_span("predict churn", attributes={
            semconv.ML_MODEL_NAME: "churn", semconv.ML_MODEL_VERSION: "3", semconv.ML_ANOMALY: True,
            semconv.ML_ANOMALY_SCORE: 0.93, semconv.ML_ANOMALY_SIGNAL: signal,
            semconv.ML_ANOMALY_DETECTOR: "EWMADetector", semconv.ML_ANOMALY_ALERT: True,
        })  # fmt: skip
        t0 = time.perf_counter()
        span.end()
        return span, time.perf_counter() - t0

    webhook = processor._dispatcher.sinks[-1]  # noqa: SLF001
    return provider, processor, webhook, exporter, end_anomalous_span


# ---------------------------------------------------------------------- end to end
def test_webhook_gets_one_post_per_incident(receivers):
    receiver = receivers()
    provider, processor, webhook, exporter, end = anomaly_pipeline(receiver.url, cooldown_s=0.3)
    first, _ = end()
    for _ in range(4):
        end()  # same incident
    assert processor.force_flush(5_000)
    assert len(receiver.posts) == 1
    time.sleep(0.35)  # incident over
    second, _ = end()
    end()
    assert processor.force_flush(5_000)
    assert len(exporter.get_finished_spans()) == 7
    assert len(receiver.posts) == 2 and webhook.sent == 2 and webhook.failed == 0
    post = receiver.posts[0]
    assert post["path"] == "/hooks/ml"
    assert post["headers"]["Content-Type"] == "application/json"
    assert post["headers"]["User-Agent"].startswith("otel-mlmon/")
    body = post["body"]
    assert body["key"] == ["churn", "latency"] and body["model"] == "churn" and body["signal"] == "latency"
    assert body["detector"] == "EWMADetector" and body["score"] == 0.93
    assert body["trace_id"] == format(first.context.trace_id, "032x")
    assert body["span_id"] == format(first.context.span_id, "016x")
    assert abs(body["timestamp"] - time.time()) < 10 and body["time"].endswith("Z")
    assert body["attributes"] == {"ml.model.version": "3"}
    assert "churn" in body["text"] and "latency" in body["text"]
    assert receiver.posts[1]["body"]["span_id"] == format(second.context.span_id, "016x")
    provider.shutdown()


def test_span_ending_never_waits_for_a_hung_receiver():
    silent = Silent()
    provider, processor, webhook, exporter, end = anomaly_pipeline(silent.url)
    webhook.timeout_s = 2.0  # a synchronous POST would take 2 s per alert
    durations = sorted(end(signal=f"signal{i}")[1] for i in range(30))  # 30 incidents, 30 alerts
    assert durations[15] < 0.001, durations  # median well under 1 ms
    assert durations[-1] < 0.1, durations  # no on_end waited for the network
    assert len(exporter.get_finished_spans()) == 30
    assert wait_for(lambda: webhook.attempts >= 1)
    assert wait_for(lambda: webhook.pending == 30)  # the dispatcher handed every alert over
    assert webhook.sent == 0  # the first POST hangs, the rest wait
    silent.close()  # the hung connection is reset
    t0 = time.monotonic()
    processor.shutdown()
    assert time.monotonic() - t0 < 5
    assert webhook.failed == 30 and webhook.pending == 0


def test_receiver_down_then_back_gets_the_pending_alerts(receivers):
    port = free_port()
    provider, processor, webhook, exporter, end = anomaly_pipeline(f"http://127.0.0.1:{port}/hooks/ml")
    webhook.backoff_s, webhook.max_backoff_s, webhook.max_retries = 0.05, 0.2, 100
    spans, durations = [], []
    for signal in ("latency", "batch_size", "error_rate"):
        span, took = end(signal=signal)
        spans.append(span)
        durations.append(took)
    assert max(durations) < 0.1, durations  # never blocks: the receiver is down
    assert wait_for(lambda: webhook.attempts >= 3)  # failed attempts while it is down
    assert webhook.sent == 0 and webhook.pending == 3
    receiver = receivers(port)  # the receiver comes back on the same port
    started = time.monotonic()
    assert processor.force_flush(5_000)
    assert time.monotonic() - started < 1.0  # within the (capped) backoff
    assert [b["signal"] for b in receiver.bodies()] == ["latency", "batch_size", "error_rate"]
    assert [b["span_id"] for b in receiver.bodies()] == [format(s.context.span_id, "016x") for s in spans]
    assert (webhook.sent, webhook.failed, webhook.dropped, webhook.pending) == (3, 0, 0, 0)
    provider.shutdown()


# ---------------------------------------------------------------------- webhook sink
def test_deduplicates_per_incident_key_by_alert_time(receivers):
    receiver = receivers()
    sink = WebhookSink(receiver.url, cooldown_s=60)
    t = time.time()
    sink(make_alert(0, timestamp=t))
    sink(make_alert(1, timestamp=t + 30))  # same key within the cooldown
    sink(make_alert(2, signal="batch_size", timestamp=t + 30))  # another key
    sink(make_alert(3, timestamp=t + 60))  # cooldown over
    assert sink.force_flush(5_000)
    sent = [(b["signal"], b["trace_id"][-1]) for b in receiver.bodies()]
    assert sent == [("latency", "1"), ("batch_size", "3"), ("latency", "4")]
    assert (sink.sent, sink.deduplicated) == (3, 1)
    assert sink.shutdown(1_000) and sink.shutdown(1_000)


def test_retries_server_errors_but_not_client_errors(receivers):
    receiver = receivers(statuses=[503, 429, 400])
    sink = WebhookSink(receiver.url, cooldown_s=0, backoff_s=0.01, max_backoff_s=0.02)
    sink(make_alert(0))  # 503, 429, then 400: given up
    assert sink.force_flush(5_000)
    assert (sink.attempts, sink.sent, sink.failed) == (3, 0, 1)
    sink(make_alert(1))  # 200
    assert sink.force_flush(5_000)
    assert (sink.attempts, sink.sent, sink.failed) == (4, 1, 1)
    assert [p["status"] for p in receiver.posts] == [503, 429, 400, 200]
    sink.shutdown()


def test_gives_up_after_the_retry_bound():
    url = f"http://127.0.0.1:{free_port()}/"
    sink = WebhookSink(url, cooldown_s=0, max_retries=2, backoff_s=0.01, max_backoff_s=0.02)
    for i in range(3):
        sink(make_alert(i, signal=f"s{i}"))
    assert sink.force_flush(5_000)  # everything settled: given up
    assert (sink.attempts, sink.failed, sink.sent, sink.pending) == (9, 3, 0, 0)  # 1 + 2 retries each
    sink.shutdown()


def test_pending_alerts_are_bounded_and_the_oldest_dropped(receivers):
    port = free_port()
    sink = WebhookSink(f"http://127.0.0.1:{port}/", cooldown_s=0, max_pending=5, backoff_s=0.2, max_backoff_s=0.2)
    t0 = time.perf_counter()
    for i in range(20):
        sink(make_alert(i, signal=f"s{i}"))
    assert time.perf_counter() - t0 < 0.05
    assert sink.pending <= 6
    assert wait_for(lambda: sink.attempts >= 1 and sink.pending == 5)
    receiver = receivers(port)
    assert sink.force_flush(5_000)
    assert [b["signal"] for b in receiver.bodies()] == [f"s{i}" for i in range(15, 20)]
    assert (sink.sent, sink.dropped, sink.failed) == (5, 15, 0)
    sink.shutdown()


def test_shutdown_is_bounded_when_the_receiver_is_down():
    sink = WebhookSink(f"http://127.0.0.1:{free_port()}/", cooldown_s=0, backoff_s=30, max_backoff_s=30)
    for i in range(10):
        sink(make_alert(i, signal=f"s{i}"))
    assert wait_for(lambda: sink.attempts >= 1)
    t0 = time.monotonic()
    assert sink.shutdown(2_000) is True  # one more attempt fails fast: the rest are given up
    assert time.monotonic() - t0 < 1.0
    assert sink.failed == 10 and sink.pending == 0 and sink.sent == 0
    assert sink.shutdown(2_000) is True  # idempotent
    sink(make_alert(99))
    assert sink.dropped == 1  # after shutdown: dropped, counted


def test_shutdown_delivers_what_is_queued(receivers):
    receiver = receivers()
    sink = WebhookSink(receiver.url, cooldown_s=0)
    for i in range(5):
        sink(make_alert(i, signal=f"s{i}"))
    assert sink.shutdown(5_000) is True
    assert len(receiver.posts) == 5 and sink.sent == 5


@pytest.mark.parametrize(
    "options",
    [
        {"url": "ftp://x/"}, {"url": "http://"}, {"url": 42}, {"cooldown_s": -1}, {"cooldown_s": float("nan")},
        {"timeout_s": 0}, {"max_retries": -1}, {"max_retries": 1.5}, {"backoff_s": 0},
        {"backoff_s": 2, "max_backoff_s": 1}, {"max_pending": 0}, {"headers": {"X-Token": 1}},
    ],
)  # fmt: skip
def test_webhook_invalid_arguments_raise_value_error(options):
    options = {"url": "http://127.0.0.1:9/", **options}
    with pytest.raises(ValueError):
        WebhookSink(**options)


def test_custom_headers_are_sent(receivers):
    receiver = receivers()
    sink = WebhookSink(receiver.url, headers={"Authorization": "Bearer t0ken"})
    sink(make_alert())
    assert sink.force_flush(5_000)
    assert receiver.posts[0]["headers"]["Authorization"] == "Bearer t0ken"
    sink.shutdown()


# ---------------------------------------------------------------------- dispatcher
def test_failing_sinks_are_isolated_and_logged_once(receivers, caplog):
    receiver = receivers()
    got: list[Alert] = []

    def broken(alert):
        raise ValueError("bug in a user sink")

    webhook = WebhookSink(receiver.url, cooldown_s=0)
    dispatcher = AlertDispatcher([broken, webhook, CallbackSink(got.append)])
    with caplog.at_level(logging.WARNING, logger="otel_mlmon"):
        for i in range(4):
            assert dispatcher.submit(make_alert(i, signal=f"s{i}"))
        assert dispatcher.force_flush(5_000)
    assert len(got) == 4 and len(receiver.posts) == 4
    assert (dispatcher.delivered, dispatcher.failed, dispatcher.sink_failures) == (4, 4, [4, 0, 0])
    assert len([r for r in caplog.records if "alert sink" in r.getMessage()]) == 1
    assert dispatcher.shutdown(5_000) is True


def test_full_queue_drops_and_counts_without_blocking():
    entered, release = threading.Event(), threading.Event()
    delivered: list[Alert] = []

    def slow(alert):
        entered.set()
        release.wait(5)
        delivered.append(alert)

    dispatcher = AlertDispatcher([slow], max_queue=3)
    assert dispatcher.submit(make_alert(0))
    assert entered.wait(5)  # the worker is busy with the first alert
    t0 = time.perf_counter()
    accepted = [dispatcher.submit(make_alert(i)) for i in range(1, 11)]
    assert time.perf_counter() - t0 < 0.05
    assert accepted == [True] * 3 + [False] * 7
    assert dispatcher.dropped == 7 and dispatcher.pending == 4
    assert dispatcher.force_flush(50) is False  # times out: the sink is stuck
    release.set()
    assert dispatcher.force_flush(5_000) is True
    assert [a.trace_id[-1] for a in delivered] == ["1", "2", "3", "4"]
    assert dispatcher.shutdown(1_000) is True and dispatcher.shutdown(1_000) is True
    assert dispatcher.submit(make_alert(20)) is False and dispatcher.dropped == 8


def test_shutdown_delivers_queued_alerts_then_stops_the_sinks(receivers):
    receiver = receivers()
    got: list[Alert] = []
    webhook = WebhookSink(receiver.url, cooldown_s=0)
    dispatcher = AlertDispatcher([got.append, webhook])
    for i in range(10):
        dispatcher.submit(make_alert(i, signal=f"s{i}"))
    assert dispatcher.shutdown(5_000) is True
    assert len(got) == 10 and len(receiver.posts) == 10
    webhook(make_alert(50, signal="late"))  # the sink was shut down with the dispatcher
    assert webhook.dropped == 1


def test_dispatcher_works_in_a_forked_child():
    read_end, write_end = os.pipe()

    def to_pipe(alert):
        os.write(write_end, alert.to_json().encode() + b"\n")

    dispatcher = AlertDispatcher([to_pipe])
    dispatcher.submit(make_alert(0))  # starts the parent's worker
    assert dispatcher.force_flush(5_000)
    pid = os.fork()
    if pid == 0:  # child: the parent's worker thread does not exist here
        code = 1
        try:
            ok = dispatcher.submit(make_alert(1, signal="in_child")) and dispatcher.force_flush(5_000)
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    os.close(write_end)
    with os.fdopen(read_end) as lines:
        received = [json.loads(line)["signal"] for line in lines]
    assert os.waitstatus_to_exitcode(status) == 0
    assert received == ["latency", "in_child"]
    dispatcher.shutdown(1_000)


def test_dispatcher_and_callback_validation():
    with pytest.raises(ValueError):
        AlertDispatcher([], max_queue=0)
    with pytest.raises(ValueError):
        AlertDispatcher(["not callable"])
    with pytest.raises(ValueError):
        CallbackSink(None)


# ---------------------------------------------------------------------- alert
def test_alert_is_frozen_hashable_and_serialises_to_json():
    alert = Alert(
        key=("m", "latency"), model="m", signal="latency", detector="MADDetector", score=float("nan"),
        timestamp=0.0, trace_id=None, span_id=None, attributes={"tags": ("a", "b"), "ratio": float("inf")},
    )  # fmt: skip
    with pytest.raises(FrozenInstanceError):
        alert.score = 1.0  # type: ignore[misc]
    assert hash(alert) == hash(alert)
    data = json.loads(alert.to_json())
    assert data == {
        "key": ["m", "latency"], "model": "m", "signal": "latency", "detector": "MADDetector",
        "score": None, "timestamp": 0.0, "time": "1970-01-01T00:00:00Z", "trace_id": None,
        "span_id": None, "attributes": {"tags": ["a", "b"], "ratio": None}, "text": alert.text,
    }  # fmt: skip
    assert alert.as_dict()["attributes"] == {"tags": ["a", "b"], "ratio": None}


# ---------------------------------------------------------------------- undelivered alerts as a metric
def _dropped_counts(reader) -> dict[tuple[str, str], int]:
    from helpers import metric_points  # noqa: PLC0415

    return {(a[semconv.ML_ALERT_SINK], a[semconv.ERROR_TYPE]): p.value
            for _, unit, a, p in metric_points(reader, semconv.ALERT_DROPPED_COUNT.name)
            if unit == semconv.ALERT_DROPPED_COUNT.unit}  # fmt: skip


def test_undelivered_alerts_are_exported_by_sink_and_reason(receivers):
    """A webhook that answers 503 (retried, then given up), one that answers 404 (not retried),
    one that refuses connections, a callback that raises, and alerts raised after shutdown:
    each undelivered alert is counted in ml.alert.dropped.count{ml.alert.sink, error.type},
    read through a real InMemoryMetricReader."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    failing = receivers(statuses=[503] * 6)
    missing = receivers(statuses=[404] * 2)
    refused = f"http://127.0.0.1:{free_port()}/hooks/ml"
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])

    def broken_callback(alert):
        raise RuntimeError("the application's callback failed")

    processors = []
    for url, callbacks in ((failing.url, ()), (missing.url, ()), (refused, (broken_callback,))):
        processor = AnomalyDetectionSpanProcessor(
            SimpleSpanProcessor(InMemorySpanExporter()), webhook_url=url, callbacks=callbacks, log_alerts=False,
            meter_provider=meter_provider,
        )  # fmt: skip
        webhook = processor._dispatcher.sinks[-1]  # noqa: SLF001
        webhook.backoff_s, webhook.max_backoff_s, webhook.max_retries = 0.01, 0.02, 2
        processors.append(processor)
    for processor in processors:
        for i in range(2):
            assert processor.alert(f"model-{i}", "latency", "DefaultDetector", 0.9)
    for processor in processors:
        assert processor.force_flush(10_000)
    assert len(failing.posts) == 6  # 2 alerts x 3 attempts
    assert len(missing.posts) == 2  # no retry for a 404
    assert _dropped_counts(reader) == {
        ("webhook", "503"): 2, ("webhook", "404"): 2, ("webhook", "ConnectionRefusedError"): 2,
        ("callback", "RuntimeError"): 2,
    }  # fmt: skip
    processors[0].shutdown()
    processors[0].alert("model-9", "latency", "DefaultDetector", 0.9)  # raised, but nothing delivers it now
    assert _dropped_counts(reader)[("queue", "shutdown")] == 1
    for processor in processors[1:]:
        processor.shutdown()


def test_dropped_alert_series_are_bounded():
    from otel_mlmon.anomaly.delivery import MAX_SERIES, DropCounts

    counts = DropCounts()
    for i in range(10 * MAX_SERIES):
        counts.add("provider", "webhook", f"Error{i}")
    assert len(counts._counts) == MAX_SERIES + 1  # noqa: SLF001
    assert counts._counts[("provider", "webhook", "_OTHER")] == 9 * MAX_SERIES  # noqa: SLF001


def test_dropped_alert_counts_go_with_their_meter_provider():
    import gc

    from otel_mlmon.anomaly.delivery import DropCounts

    counts = DropCounts()
    provider = MeterProvider()
    report = counts.register(provider)
    report("webhook", "503", 2)
    assert sum(counts._counts.values()) == 2  # noqa: SLF001
    provider.shutdown()
    del provider
    gc.collect()
    assert not counts._counts and not counts._series  # noqa: SLF001
