"""End to end: instrumented scikit-learn model -> /metrics -> real Prometheus -> real
Alertmanager -> webhook.

The application is this test process: ``SklearnInstrumentor`` on real estimators, metrics
served by opentelemetry-exporter-prometheus (``PrometheusMetricReader``) on a loopback port.
Prometheus scrapes it every second and evaluates collector-config/prometheus's rules, copied
with 10 s windows, 1 s evaluation and ``for: 0s`` (nothing else changed). Alertmanager runs
collector-config/alertmanager/alertmanager.yml with the receivers' URLs pointed at a loopback
webhook and 1 s grouping, so the tests also check where each alert is routed.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prom_servers import (  # noqa: E402
    Alertmanager,
    Prometheus,
    WebhookReceiver,
    dashboard_queries,
    free_port,
    prometheus_name,
    require_binary,
    require_module,
)

from otel_mlmon import SklearnInstrumentor, semconv, set_model_info  # noqa: E402

yaml = require_module("yaml", "PyYAML>=6.0")

CONFIG_DIR = Path(__file__).resolve().parent.parent / "collector-config"
RULE_FILES = sorted((CONFIG_DIR / "prometheus").glob("*.rules.yml"))
JOB = "scoring-e2e"
WINDOW = "10s"
ALERT_TIMEOUT = 45.0


def fast_rules(text: str) -> str:
    """The rule file with every range and offset shortened to WINDOW, for: 0s, no group interval."""
    document = yaml.safe_load(text)
    for group in document["groups"]:
        group.pop("interval", None)
        for rule in group["rules"]:
            expr = re.sub(r"\[\d+[smhdw]\]", f"[{WINDOW}]", rule["expr"])
            rule["expr"] = re.sub(r"offset \d+[smhdw]", f"offset {WINDOW}", expr)
            if "alert" in rule:
                rule["for"] = "0s"
    return yaml.safe_dump(document, sort_keys=False)


def fast_prometheus(directory, alertmanager_address: str, job: str, targets: list[str]) -> str:
    """prometheus.yml scraping ``targets`` every second, with the shipped rules made fast
    (written to ``directory/prometheus``, where the Prometheus fixture runs)."""
    prom_dir = directory / "prometheus"
    prom_dir.mkdir()
    for path in RULE_FILES:
        (prom_dir / path.name).write_text(fast_rules(path.read_text()))
    return yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [path.name for path in RULE_FILES],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_address]}]}]},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
    })  # fmt: skip


def fast_alertmanager(text: str, webhook_url: str) -> str:
    """alertmanager.yml with 1 s grouping and every receiver posting to webhook_url/hooks/NAME."""
    document = yaml.safe_load(text)

    def shorten(route):
        for key, value in (("group_wait", "1s"), ("group_interval", "1s"), ("repeat_interval", "1h")):
            if key in route or route is document["route"]:
                route[key] = value
        for child in route.get("routes", ()):
            shorten(child)

    shorten(document["route"])
    for receiver in document["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = f"{webhook_url}/hooks/{receiver['name']}"
    return yaml.safe_dump(document, sort_keys=False)


class App:
    """The instrumented application: real providers, /metrics on a loopback port."""

    def __init__(self):
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from prometheus_client import CollectorRegistry, start_http_server

        resource = Resource.create({"service.name": JOB})
        self.registry = CollectorRegistry()
        self.reader = PrometheusMetricReader(registry=self.registry)
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[self.reader])
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.instrumentor = SklearnInstrumentor()
        self.instrumentor.instrument(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider,
                                     flush_interval_ms=200)
        self.port = free_port()
        self.httpd, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def run(self, loop, *args) -> None:
        """Run loop(stop_event, *args) on a daemon thread until stop_calls()."""
        stop = self._stop

        def target():
            try:
                loop(stop, *args)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(exc)

        thread = threading.Thread(target=target, daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop_calls(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        self._stop = threading.Event()
        errors, self.errors = self.errors, []
        assert not errors, f"predict calls failed unexpectedly: {errors!r}"

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.instrumentor.uninstrument()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


class Stack:
    def __init__(self, app, prometheus, alertmanager, webhook):
        self.app, self.prometheus, self.alertmanager, self.webhook = app, prometheus, alertmanager, webhook

    def diagnostics(self) -> str:
        lines = [f"prometheus alerts: {self.prometheus.alerts()}",
                 f"targets: {[(t['scrapeUrl'], t['health'], t['lastError']) for t in self.prometheus.targets()]}",
                 f"bad rules: {[r for r in self.prometheus.rule_health() if r[1] != 'ok']}",
                 f"alertmanager alerts: {[a['labels'] for a in self.alertmanager.alerts()]}",
                 f"app thread errors: {self.app.errors!r}",
                 f"prometheus log: {self.prometheus.output(1500)}",
                 f"alertmanager log: {self.alertmanager.output(1500)}"]
        return "\n".join(lines)

    def wait_for_alert(self, alertname: str, path: str, **labels) -> dict:
        def delivered(hook) -> bool:
            return any(p == path and a["labels"].get("alertname") == alertname and a["status"] == "firing"
                       and all(a["labels"].get(k) == v for k, v in labels.items())
                       for p, a in hook.alerts())

        self.webhook.wait_for(delivered, ALERT_TIMEOUT, self.diagnostics)
        return next(a for p, a in self.webhook.alerts()
                    if p == path and a["labels"].get("alertname") == alertname
                    and all(a["labels"].get(k) == v for k, v in labels.items()))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_binary("prometheus")
    require_binary("alertmanager")
    require_module("opentelemetry.exporter.prometheus", "opentelemetry-exporter-prometheus>=0.66b2")
    tmp = tmp_path_factory.mktemp("prometheus-e2e")
    app = App()
    try:
        with WebhookReceiver() as webhook:
            am_config = fast_alertmanager((CONFIG_DIR / "alertmanager" / "alertmanager.yml").read_text(), webhook.url)
            with Alertmanager(tmp, am_config) as alertmanager:
                prom_config = fast_prometheus(tmp, alertmanager.address, JOB, [f"127.0.0.1:{app.port}"])
                with Prometheus(tmp, prom_config) as prometheus:
                    yield Stack(app, prometheus, alertmanager, webhook)
    finally:
        app.close()


@pytest.fixture
def app(stack):
    """The application of the stack; the call loops a test starts stop when it ends."""
    yield stack.app
    stack.app.stop_calls()


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    return X, (X[:, 0] > 0).astype(int)


def test_error_rate_alert_reaches_the_model_and_severity_receivers(stack, app):
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    model = set_model_info(LogisticRegression().fit(X, y), name="fraud-scorer", version="7")
    bad = np.zeros((3, 5))  # wrong feature count: predict raises ValueError

    def calls(stop):
        i = 0
        while not stop.is_set():
            try:
                model.predict(bad if i % 3 == 0 else X[:8])  # one call in three fails
            except ValueError:
                pass
            i += 1
            time.sleep(0.01)

    app.run(calls)
    labels = dict(alertname="MLModelHighErrorRate", job=JOB, ml_model_name="fraud-scorer", ml_operation="predict")
    critical = stack.wait_for_alert(path="/hooks/ml-oncall-critical", **labels)
    fraud = stack.wait_for_alert(path="/hooks/fraud-team", **labels)
    assert critical["labels"] == {**labels, "severity": "critical"}
    assert fraud["labels"] == critical["labels"]
    assert critical["annotations"]["summary"].startswith("fraud-scorer predict: ")
    assert "of calls fail" in critical["annotations"]["summary"]
    # routed by severity and model only: not to the warning or info receivers
    assert not [p for p, a in stack.webhook.alerts()
                if a["labels"]["alertname"] == "MLModelHighErrorRate" and p not in ("/hooks/ml-oncall-critical", "/hooks/fraud-team")]
    # the ratio Prometheus computed is about one in three
    (ratio,) = stack.prometheus.query('ml_model_operation:inference_errors:ratio_rate5m{ml_model_name="fraud-scorer"}')
    assert 0.15 < float(ratio["value"][1]) < 0.6
    # the failures are labelled with the exception type
    failed = stack.prometheus.query('ml_inference_duration_seconds_count{ml_model_name="fraud-scorer", error_type!=""}')
    assert {series["metric"]["error_type"] for series in failed} == {"ValueError"}
    # a fast model does not burn its latency budget
    assert not [a for _, a in stack.webhook.alerts()
                if a["labels"]["alertname"].startswith("MLModelLatencySLO") and a["labels"].get("ml_model_name") == "fraud-scorer"]


def test_anomaly_alerts_from_batch_size_spikes(stack, app):
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    model = set_model_info(LogisticRegression().fit(X, y), name="churn", version="2")
    huge = np.tile(X, (20, 1))  # 4000 rows, where calls have 8
    for _ in range(100):  # the detectors' warm-up
        model.predict(X[:8])

    def calls(stop):
        while not stop.is_set():  # bursts of 8 calls with an anomalous batch size (an incident
            for _ in range(10):   # of a per-call signal opens at its 5th anomalous call)
                model.predict(X[:8])
            for _ in range(8):
                model.predict(huge)
            time.sleep(0.05)

    app.run(calls)
    labels = dict(job=JOB, ml_model_name="churn", ml_anomaly_signal="batch_size")
    # otel-mlmon's own incident (ml.alert.count), relayed: a counter born at 1 is seen
    incident = stack.wait_for_alert("MLModelAnomalyIncident", "/hooks/ml-team-info", **labels)
    assert incident["labels"] == {**labels, "alertname": "MLModelAnomalyIncident", "severity": "info"}
    assert incident["annotations"]["summary"] == "churn: anomaly incident (batch_size)"
    # (The anomaly-rate alert is covered by promtool unit tests: live traffic here does not hold
    # a steady anomaly rate.)
    # the spans of the spikes carry the verdict that Prometheus counted (latency anomalies,
    # from scheduling noise on a busy machine, may come on top)
    anomalous = [s for s in app.spans.get_finished_spans()
                 if s.attributes.get(semconv.ML_ANOMALY) is True and s.attributes[semconv.ML_MODEL_NAME] == "churn"
                 and s.attributes[semconv.ML_ANOMALY_SIGNAL] == "batch_size"]
    assert anomalous and {s.attributes[semconv.ML_BATCH_SIZE] for s in anomalous} == {len(huge)}
    (counted,) = stack.prometheus.query('ml_anomaly_count_total{ml_model_name="churn", ml_anomaly_signal="batch_size"}')
    assert counted["metric"]["ml_anomaly_detector"] == anomalous[0].attributes[semconv.ML_ANOMALY_DETECTOR]
    assert counted["metric"]["ml_model_version"] == "2"
    names = set(stack.prometheus.metric_names())
    for spec in (semconv.ANOMALY_COUNT, semconv.ALERT_COUNT, semconv.SAMPLING_SPAN_COUNT):
        assert prometheus_name(spec.name, spec.instrument, spec.unit) in names, spec.name


def test_drift_alerts_and_inhibition(stack, app):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 4))
    model = set_model_info(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), name="drifting", version="3")

    def calls(stop):
        while not stop.is_set():  # production inputs shifted by two standard deviations
            model.predict(rng.normal(size=(50, 4)) + 2.0)
            time.sleep(0.02)

    app.run(calls)
    labels = dict(job=JOB, ml_model_name="drifting", ml_model_version="3")
    dataset = stack.wait_for_alert("MLDatasetDrift", "/hooks/ml-team-warning", **labels)
    assert dataset["labels"] == {**labels, "alertname": "MLDatasetDrift", "severity": "warning"}
    assert dataset["annotations"]["summary"] == "drifting: 100% of the input features drifted"
    # the per-feature alerts fire in Prometheus, and Alertmanager inhibits them (same model version)
    def feature_alerts_inhibited(_):
        alerts = [a for a in stack.alertmanager.alerts()
                  if a["labels"]["alertname"] == "MLFeatureDrift" and a["labels"]["ml_model_name"] == "drifting"]
        return alerts and all(a["status"]["inhibitedBy"] for a in alerts)

    stack.webhook.wait_for(feature_alerts_inhibited, ALERT_TIMEOUT, stack.diagnostics)
    firing = [a["labels"] for a in stack.prometheus.alerts()
              if a["labels"]["alertname"] == "MLFeatureDrift" and a["labels"]["ml_model_name"] == "drifting"]
    assert {f"x{i}" for i in range(4)} <= {a["ml_feature_name"] for a in firing}
    assert {a["ml_drift_method"] for a in firing} <= {"psi", "jensen_shannon", "ks", "chi_square", "wasserstein"}
    assert not [a for p, a in stack.webhook.alerts()
                if a["labels"]["alertname"] == "MLFeatureDrift" and a["labels"].get("ml_model_name") == "drifting"]
    # the unit-1 gauges keep their name without a suffix from the Python exporter
    names = set(stack.prometheus.metric_names())
    for spec in (semconv.DRIFT_SCORE, semconv.DRIFT_SHARE, semconv.DRIFT_P_VALUE):
        assert prometheus_name(spec.name, spec.instrument, spec.unit) in names, spec.name


def test_prometheus_names_rules_and_dashboard_queries(stack, app):
    """What Prometheus scraped has the names of collector-config/README.md (the Python
    PrometheusMetricReader column), every rule evaluates without error on real data, and every
    dashboard query is PromQL that Prometheus accepts."""
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    model = set_model_info(LogisticRegression().fit(X, y), name="names-check", version="1")

    def calls(stop):
        while not stop.is_set():
            model.predict(X[:4])
            model.predict_proba(X[:4])
            time.sleep(0.02)

    app.run(calls)
    stack.webhook.wait_for(
        lambda hook: stack.prometheus.query('ml_prediction_probability_count{ml_model_name="names-check"}'),
        ALERT_TIMEOUT, stack.diagnostics)
    names = set(stack.prometheus.metric_names())
    emitted = [semconv.INFERENCE_DURATION, semconv.INFERENCE_ROW_COUNT, semconv.INFERENCE_BATCH_SIZE,
               semconv.PREDICTION_CLASS_COUNT, semconv.PREDICTION_PROBABILITY, semconv.MONITOR_QUEUE_SIZE,
               semconv.SAMPLING_SPAN_COUNT, semconv.PROCESS_CPU_TIME, semconv.PROCESS_CPU_UTILIZATION,
               semconv.PROCESS_MEMORY_USAGE, semconv.PROCESS_MEMORY_VIRTUAL]
    for spec in emitted:
        name = prometheus_name(spec.name, spec.instrument, spec.unit)
        expected = {f"{name}_bucket", f"{name}_count", f"{name}_sum"} if spec.instrument == "histogram" else {name}
        assert expected <= names, f"{spec.name}: {sorted(expected - names)} missing from {sorted(names)}"
    # labels: dots to underscores; the SLO bound is a bucket boundary as Prometheus stores it
    (series,) = stack.prometheus.query(
        'ml_inference_duration_seconds_bucket{ml_model_name="names-check", ml_operation="predict", error_type="", le="0.25"}')
    assert {"ml_model_name", "ml_model_version", "ml_framework", "ml_operation", "job", "le"} <= set(series["metric"])
    assert (series["metric"]["ml_model_version"], series["metric"]["ml_framework"]) == ("1", "sklearn")
    (rows,) = stack.prometheus.query('ml_inference_row_count_total{ml_model_name="names-check", ml_operation="predict"}')
    assert float(rows["value"][1]) > 0
    # every recording and alerting rule evaluated fine against real data
    rules = [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
             for rule in group["rules"]]
    health = stack.prometheus.rule_health()
    assert len(health) == len(rules)
    assert [r for r in health if r[1] != "ok" or r[2]] == []
    for query in dashboard_queries(CONFIG_DIR / "grafana" / "otel-mlmon.json"):
        stack.prometheus.query(query)  # raises on a PromQL error
