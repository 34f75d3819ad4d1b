"""Every example in ``examples/`` runs as a smoke test, in a subprocess with this interpreter.

The HTTP service runs under the real ``opentelemetry-instrument`` launcher (console span
exporter, no metrics exporter) on a free loopback port; the test posts predictions and labels
to it and checks the responses and the spans the launcher's exporter printed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 120


def _env(tmp_path: Path) -> dict[str, str]:
    """The environment minus anything that would steer the child's telemetry elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_MLMON_LABEL_STORE_PATH"] = str(tmp_path / "predictions.sqlite")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run_example(name: str, tmp_path: Path, *args: str) -> str:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=tmp_path, env=_env(tmp_path))  # fmt: skip
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr
    print(f"{name}: {elapsed:.1f} s")
    return proc.stdout


def test_quickstart(tmp_path):
    """One screen a person reads: what was exported, where, and the alert."""
    out = _run_example("quickstart.py", tmp_path)
    lines = out.splitlines()
    assert len(lines) <= 30 and max(map(len, lines)) <= 120, out
    assert "caller saw the model's own error, unchanged" in out
    assert out.count("Exported to: this process's in-memory span exporter and metric reader") == 1
    spans = int(re.search(r"^(\d+) spans, one per top-level call:", out, re.M).group(1))
    assert spans == 409  # 200 x 2 models, 8 oversized batches, the failing call
    assert re.search(r"^  predict cancer-screen\s+209  \(1 ValueError\)$", out, re.M)
    calls, errors = map(int, re.search(r"^  cancer-screen\s+predict\s+(\d+)\s+(\d+)", out, re.M).groups())
    assert (calls, errors) == (209, 1)
    # the oversized batches are one incident of the batch-size signal: one alert, opened by a span
    text = " ".join(out.split())  # long lines are wrapped
    assert re.search(r"Alert: batch_size of cancer-screen: 1 incident\(s\), opened by span [0-9a-f]{16} "
                     r"\(predict cancer-screen\)", text), out


def test_batch_scoring(tmp_path):
    out = _run_example("batch_scoring.py", tmp_path)
    assert "scored 228 rows from orders.csv in 5 predict_proba calls (5 spans)" in out
    assert "realized: none yet" in out
    estimated = float(re.search(r"estimated accuracy ([0-9.]+)", out).group(1))
    assert 0.8 <= estimated <= 1.0
    assert "label delivery 2: 115 labels -> joined 114, unknown id 1" in out
    realized, sklearn_value = map(float, re.search(
        r"realized accuracy \(ml\.quality\.score\) ([0-9.]+); sklearn\.metrics\.accuracy_score ([0-9.]+)", out).groups())
    assert realized == sklearn_value and realized > 0.9


def test_batch_scoring_reads_a_given_csv(tmp_path):
    from sklearn.datasets import load_breast_cancer

    X = load_breast_cancer().data[:7]
    path = tmp_path / "mine.csv"
    lines = ["id," + ",".join(f"f{i}" for i in range(X.shape[1]))]
    lines += [f"order-{1000 + i}," + ",".join(repr(float(v)) for v in row) for i, row in enumerate(X)]
    path.write_text("\n".join(lines) + "\n")
    out = _run_example("batch_scoring.py", tmp_path, "--csv", str(path), "--chunk", "3")
    assert "scored 7 rows from mine.csv in 3 predict_proba calls (3 spans)" in out


def test_custom_estimator(tmp_path):
    out = _run_example("custom_estimator.py", tmp_path)
    assert "18 spans for 18 top-level predict calls" in out
    assert "6 x predict wine-centroid    ml.model.class=__main__.NearestCentroid" in out
    assert "6 x predict wine-abstain     ml.model.class=__main__.AbstainingCentroid" in out
    assert "6 x predict wine-pipeline    ml.model.class=sklearn.pipeline.Pipeline" in out
    counts = re.findall(r"^\s+wine-centroid\s+(\w+)\s+(\d+)$", out, re.M)
    assert sum(int(n) for _, n in counts) == 58  # every live row, once


@pytest.mark.torch
def test_pytorch_model(tmp_path):
    out = _run_example("pytorch_model.py", tmp_path)
    assert "trained: 0 spans during training" in out
    assert "6 spans; the first:" in out
    assert "forward tabular-mlp" in out
    assert "ml.model.class = __main__.MLP" in out and "ml.model.parameter_count = 5443" in out
    classes = re.findall(r"ml\.prediction\.class\.count\s+value=(\d+)", out)
    assert sum(int(n) for n in classes) == 178
    count, total = re.search(r"ml\.prediction\.probability\s+count=(\d+) sum=([0-9.]+)", out).groups()
    assert int(count) == 178 and float(total) < 178  # confidences below 1


# ---------------------------------------------------------------------------------- HTTP service
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, path: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class _Output:
    """Collects a pipe's lines on a thread (the child must never block on a full pipe)."""

    def __init__(self, pipe) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe) -> None:
        for line in pipe:
            with self._lock:
                self.lines.append(line)

    def text(self) -> str:
        with self._lock:
            return "".join(self.lines)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def test_http_service_under_opentelemetry_instrument(tmp_path):
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    assert launcher.exists(), f"{launcher} missing: pip install opentelemetry-distro (a dependency of otel-mlmon)"
    port = _free_port()
    env = _env(tmp_path)
    env.update({
        "OTEL_SERVICE_NAME": "iris-scoring",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    })
    proc = subprocess.Popen([str(launcher), sys.executable, str(EXAMPLES / "http_service.py"), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)  # fmt: skip
    stdout, stderr = _Output(proc.stdout), _Output(proc.stderr)
    try:
        deadline = time.monotonic() + 60
        while f"listening on http://127.0.0.1:{port}" not in stdout.text():
            assert proc.poll() is None, f"service exited {proc.returncode}\n{stdout.text()}\n{stderr.text()}"
            assert time.monotonic() < deadline, f"service did not start\n{stdout.text()}\n{stderr.text()}"
            time.sleep(0.05)
        rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
        status, body = _post(port, "/predict", {"rows": rows, "ids": ["a-1", "a-2", "a-3"]})
        assert status == 200, body
        assert body["predictions"] == ["setosa", "virginica", "versicolor"]
        assert body["prediction_ids"] == ["a-1", "a-2", "a-3"]
        assert all(abs(sum(p) - 1) < 1e-3 for p in body["probabilities"])
        status, generated = _post(port, "/predict", {"rows": rows[:2]})
        assert status == 200 and len(generated["prediction_ids"]) == 2
        assert len(set(generated["prediction_ids"])) == 2 and not set(generated["prediction_ids"]) & {"a-1", "a-2"}
        status, joined = _post(port, "/labels", {"ids": ["a-1", "a-2", "a-3", "nope"],
                                                 "labels": ["setosa", "virginica", "setosa", "setosa"]})  # fmt: skip
        assert status == 200 and joined == {"joined": 3, "unknown_id": 1, "duplicate": 0, "invalid": 0}
        status, joined = _post(port, "/labels", {"ids": generated["prediction_ids"], "labels": ["setosa", "virginica"]})
        assert status == 200 and joined["joined"] == 2
        status, error = _post(port, "/predict", {"rows": [[1.0, 2.0]]})
        assert status == 400 and "4 numbers" in error["error"]
        status, error = _post(port, "/predict", b"{not json")
        assert status == 400
        # The launcher's console exporter prints the spans of the two successful predictions.
        deadline = time.monotonic() + 20
        while stdout.text().count('"name": "predict_proba iris-service"') < 2:
            assert time.monotonic() < deadline, f"no spans printed\n{stdout.text()[-3000:]}\n{stderr.text()[-3000:]}"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        stdout.join(5)
        stderr.join(5)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{stderr.text()[-3000:]}"
    assert "Traceback" not in stderr.text(), stderr.text()
    spans = re.findall(r'^\{\n(?:.*\n)*?^\}', stdout.text(), re.M)
    decoded = [json.loads(s) for s in spans]
    predictions = [s for s in decoded if s["name"] == "predict_proba iris-service"]
    assert len(predictions) == 2, [s["name"] for s in decoded]
    for span in predictions:
        assert span["attributes"]["ml.model.name"] == "iris-service"
        assert span["attributes"]["ml.model.version"] == "1"
        assert span["resource"]["attributes"]["service.name"] == "iris-scoring"
    assert sorted(s["attributes"]["ml.batch.size"] for s in predictions) == [2, 3]
