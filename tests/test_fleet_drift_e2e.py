"""Fleet drift end to end (issue 14): three replicas, real Prometheus, Alertmanager and rotel.

Three separate processes (``tests/apps/drift_replica.py``) serve the same pickled
``LogisticRegression`` of breast_cancer, its reference profile attached; two of them see
'worst symmetry' shifted by one standard deviation. Every row is profiled (a test setting).

- A real Prometheus scrapes all three and evaluates collector-config/prometheus's rules, copied
  as ``tests/test_prometheus_e2e.py`` does (10 s windows, 1 s evaluation, ``for: 0s``, nothing
  else changed). ``ml_model_feature:fleet_drift_psi:total`` (the raw counters over the test's
  lifetime) equals, within 1e-6 relative, the PSI that ``otel_mlmon.drift`` computes offline on
  the union of the rows the replicas served, for every feature and the output.
- ``MLFleetFeatureDrift`` for 'worst symmetry' is delivered by a real Alertmanager (the shipped
  alertmanager.yml, receivers pointed at a loopback webhook).
- The same replicas export OTLP to the rotel collector: every bin-count point arrives (per
  replica and feature, the last cumulative values sum to the rows it profiled).

Prometheus, Alertmanager (Debian packages) and rotel (the test extra) are required: a missing one
fails under ``CI=true`` (rotel always fails).
"""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import stop_process  # noqa: E402
from otlp_collector import Collector  # noqa: E402
from prom_servers import Alertmanager, Prometheus, WebhookReceiver, free_port, require_binary, require_module  # noqa: E402

from otel_mlmon import semconv  # noqa: E402
from otel_mlmon.drift import PSI, DriftMonitor, attach_profile, build_profile, get_profile  # noqa: E402

require_module("opentelemetry.exporter.prometheus", "opentelemetry-exporter-prometheus>=0.66b2")

from test_prometheus_e2e import fast_alertmanager, fast_prometheus  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parent.parent / "collector-config"
APP = Path(__file__).resolve().parent / "apps" / "drift_replica.py"
FEATURE = "worst symmetry"
JOB = "fleet"
SHIFTS = (0.0, 1.0, 1.0)  # standard deviations, per replica
CALLS = 900  # 40 rows every 20 ms: about 25 s of traffic per replica


def _model(tmp_path) -> Path:
    frame = load_breast_cancer(as_frame=True)
    model = LogisticRegression(max_iter=10_000).fit(frame.data, frame.target)
    attach_profile(model, build_profile(frame.data, y=frame.target, predictions=model.predict(frame.data)))
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    return path


def _offline_psi(model_path: Path, outputs: list[Path]) -> dict[str, float]:
    """PSI per feature (and _output) of the union of the rows served, by otel_mlmon.drift."""
    model = pickle.loads(model_path.read_bytes())  # noqa: S301 - the test's own file
    profile = get_profile(model)
    parts = [np.load(path, allow_pickle=True) for path in outputs]
    import pandas as pd  # the test extra

    rows = pd.DataFrame(np.concatenate([p["rows"] for p in parts]), columns=list(parts[0]["columns"]))
    predictions = np.concatenate([p["predictions"] for p in parts])
    monitor = DriftMonitor(profile, sample_rows=10**9, max_rows_per_second=None)
    monitor.update(rows, predictions=predictions, sample=False)
    counts = monitor.drain_counts().bins
    shares = monitor.reference_shares()
    out = {}
    for feature in {f for f, _ in shares}:
        labels = [b for f, b in shares if f == feature]
        reference = np.array([shares[(feature, b)] for b in labels])
        current = np.array([counts.get((feature, b), 0) for b in labels], dtype=float)
        out[feature] = PSI()(reference, current).statistic
    return out


@pytest.fixture
def fleet(tmp_path):
    require_binary("prometheus")
    require_binary("alertmanager")
    model_path = _model(tmp_path)
    ports = [free_port() for _ in SHIFTS]
    with Collector(tmp_path / "rotel") as collector, WebhookReceiver() as webhook:
        am_config = fast_alertmanager((CONFIG_DIR / "alertmanager" / "alertmanager.yml").read_text(), webhook.url)
        with Alertmanager(tmp_path, am_config) as alertmanager:
            prom_config = fast_prometheus(tmp_path, alertmanager.address, JOB, [f"127.0.0.1:{p}" for p in ports])
            with Prometheus(tmp_path, prom_config) as prometheus:
                replicas, outputs = [], []
                try:
                    for i, (port, shift) in enumerate(zip(ports, SHIFTS)):
                        out = tmp_path / f"replica-{i}.npz"
                        outputs.append(out)
                        replicas.append(subprocess.Popen(
                            [sys.executable, str(APP), str(model_path), str(port), collector.grpc_endpoint, str(out),
                             str(shift), str(100 + i), str(CALLS)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        ))  # fmt: skip
                    yield model_path, replicas, outputs, prometheus, alertmanager, webhook, collector
                finally:
                    for proc in replicas:
                        if proc.stdin:
                            proc.stdin.close()
                    for proc in replicas:
                        stop_process(proc, 10.0)


def _wait(predicate, timeout: float, what: str, diagnostics=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout} s\n{diagnostics()}")
        time.sleep(0.5)


def test_three_replicas_fleet_psi_alert_and_otlp_delivery(fleet):
    model_path, replicas, outputs, prometheus, alertmanager, webhook, collector = fleet
    done = []
    for proc in replicas:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"a replica exited ({proc.wait(timeout=10)}): {proc.stderr.read()[-3000:]}")
        done.append(json.loads(line))
    rows = [d["rows"] for d in done]
    total = sum(rows)
    assert rows == [CALLS * 40] * 3

    def diagnostics() -> str:
        return (f"alerts: {prometheus.alerts()}\nbad rules: {[r for r in prometheus.rule_health() if r[1] != 'ok']}\n"
                f"targets: {[(t['scrapeUrl'], t['health'], t['lastError']) for t in prometheus.targets()]}\n"
                f"alertmanager: {[a['labels'] for a in alertmanager.alerts()]}")  # fmt: skip

    # 1. the alert, delivered by Alertmanager (it fired while the traffic ran)
    def delivered():
        return [a for path, a in webhook.alerts() if path == "/hooks/ml-team-warning"
                and a["labels"].get("alertname") == "MLFleetFeatureDrift" and a["status"] == "firing"
                and a["labels"].get("ml_feature_name") == FEATURE]  # fmt: skip

    alert = _wait(delivered, 60.0, "MLFleetFeatureDrift delivered", diagnostics)[0]
    assert alert["labels"]["job"] == JOB and alert["labels"]["ml_model_name"] == "LogisticRegression"

    # 2. fleet PSI from the raw counters == otel_mlmon.drift on the union of the rows served
    selector = f'{{job="{JOB}",ml_feature_name="{FEATURE}"}}'

    def scraped_all():
        result = prometheus.query(f"ml_model_feature:fleet_drift_rows:total{selector}")
        return result and float(result[0]["value"][1]) == total

    _wait(scraped_all, 30.0, "every replica's final counts scraped", diagnostics)
    offline = _offline_psi(model_path, outputs)

    def fleet_psi_now() -> dict:
        return {r["metric"]["ml_feature_name"]: float(r["value"][1])
                for r in prometheus.query(f'ml_model_feature:fleet_drift_psi:total{{job="{JOB}"}}')}  # fmt: skip

    def settled():  # every feature's rule evaluated on the final scrapes (rules run once a second)
        psi = fleet_psi_now()
        return set(psi) == set(offline) and all(
            psi[f] == pytest.approx(v, rel=1e-6, abs=1e-12) for f, v in offline.items()) and psi

    fleet_psi = _wait(settled, 30.0, "fleet PSI of every feature equal to the offline PSI",
                      lambda: f"{diagnostics()}\nPrometheus {fleet_psi_now()}\noffline {offline}")
    assert len(offline) == 31
    print(f"fleet PSI of {FEATURE}: Prometheus {fleet_psi[FEATURE]!r}, otel_mlmon.drift {offline[FEATURE]!r}")
    assert max(offline, key=offline.get) == FEATURE and offline[FEATURE] > 0.2
    shares = prometheus.query(f"ml_model_feature_bin:drift_reference_share:max{selector}")
    assert len(shares) == 12 and math.isclose(sum(float(s["value"][1]) for s in shares), 1.0, rel_tol=1e-12)

    # 3. OTLP through rotel: every bin-count point of every replica
    def last_bins():
        last: dict[tuple, tuple[int, float]] = {}
        for point in collector.metrics():
            if point["name"] != semconv.DRIFT_BIN_COUNT.name:
                continue
            a = point["attributes"]
            key = (point["resource"].get("service.instance.id"), a[semconv.ML_FEATURE_NAME], a[semconv.ML_DRIFT_BIN])
            if key not in last or point["time_unix_nano"] >= last[key][0]:
                last[key] = (point["time_unix_nano"], point["value"])
        return last

    def delivered_all():
        last = last_bins()
        per_replica: dict[tuple, float] = {}
        for (replica, feature, _), (_, value) in last.items():
            per_replica[(replica, feature)] = per_replica.get((replica, feature), 0) + value
        features = {f for _, f in per_replica} - {"_output"}
        return (len(features) == 30 and len({r for r, _ in per_replica}) == 3
                and all(v == n for (r, f), v in per_replica.items() for n in [rows[0]])) and per_replica  # fmt: skip

    per_replica = _wait(delivered_all, 30.0, "every bin-count point through rotel", collector.summary)
    for feature in {f for _, f in per_replica}:
        assert sum(v for (_, f), v in per_replica.items() if f == feature) == total, feature
