"""End to end through a real OTLP collector (rotel): zero-code and programmatic set-ups.

1. A brand-new virtual environment gets ``pip install`` of this project (a regular,
   non-editable install that resolves the declared dependencies). A plain scikit-learn app
   (``tests/apps/iris_app.py``, no OpenTelemetry code) runs under
   ``opentelemetry-instrument``; spans and metrics are checked as the collector received them,
   over gRPC and HTTP/protobuf.
2. ``SklearnInstrumentor().instrument(tracer_provider=..., meter_provider=...)`` in this process,
   with real OTLP gRPC exporters, batch span processor and periodic metric reader.
3. ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=otel_mlmon_sklearn`` turns the entry point off.

Nothing is mocked; a missing component (rotel, pip, the distro's configurator) fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # --import-mode=importlib does not put tests/ on sys.path

from otlp_collector import Collector  # noqa: E402

from otel_mlmon import semconv  # noqa: E402

PROJECT = HERE.parent
APP = HERE / "apps" / "iris_app.py"
TORCH_APP = HERE / "apps" / "torch_app.py"
MARKER_HARNESS = HERE / "apps" / "with_marker_span.py"
SCOPE = "otel_mlmon"

VENV_TIMEOUT = 120
INSTALL_TIMEOUT = 300
APP_TIMEOUT = 90
COLLECTOR_TIMEOUT = 30

# What iris_app.py does, in order: (model name, operation, rows, columns, error type).
# The app reports the same list on stdout; the test checks the two agree.
APP_CALLS = [
    ("iris-logreg", "predict", 5, 4, None),
    ("iris-logreg", "predict", 3, 4, None),
    ("iris-logreg", "predict_proba", 4, 4, None),
    ("iris-logreg", "predict", 2, 3, "ValueError"),
    ("Pipeline", "predict", 7, 4, None),
    ("Pipeline", "predict", 1, 4, None),
    ("Pipeline", "predict_proba", 6, 4, None),
]
APP_VERSIONS = {"iris-logreg": "v3", "Pipeline": None}


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _app_classes() -> dict[str, str]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    return {"iris-logreg": _qualified(LogisticRegression), "Pipeline": _qualified(Pipeline)}


# --------------------------------------------------------------------------- fresh venv
_COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".venv-*", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
)


def _run(cmd, *, timeout, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                    f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}")
    return proc


def _clean_env() -> dict[str, str]:
    """The test's environment minus anything that would steer the child's Python or OTel."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("OTEL_", "ROTEL_"))
            and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}


def _fresh_venv(tmp_path_factory, label: str, *requirements: str) -> Path:
    """A new venv with ``pip install <project copy> <requirements>``: a real, non-editable install.

    The project is copied first (without .venv, build/, *.egg-info, .git), so that the
    setuptools in-tree build neither writes into the working tree nor picks up stale files
    from an old ``build/`` directory. pip's configuration and cache are used as they are.
    """
    root = tmp_path_factory.mktemp(label)
    source = root / "otel-mlmon-src"
    shutil.copytree(PROJECT, source, ignore=_COPY_IGNORE)
    venv = root / "venv"
    env = _clean_env()
    _run([sys.executable, "-m", "venv", str(venv)], timeout=VENV_TIMEOUT, env=env)
    python = venv / "bin" / "python"
    packages = [req.replace("{project}", str(source)) for req in requirements]
    _run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", *packages],
         timeout=INSTALL_TIMEOUT, env=env, cwd=root)
    _run([str(python), "-m", "pip", "check"], timeout=60, env=env, cwd=root)
    return venv


@pytest.fixture(scope="session")
def installed_venv(tmp_path_factory) -> Path:
    """The project with its scikit-learn extra, as an application using scikit-learn has it."""
    return _fresh_venv(tmp_path_factory, "fresh-install", "{project}[sklearn]")


@pytest.fixture(scope="session")
def torch_only_venv(tmp_path_factory) -> Path:
    """The project and PyTorch (the local CPU build), without scikit-learn."""
    return _fresh_venv(tmp_path_factory, "fresh-install-torch", "{project}", "torch==2.13.0")


def _run_cli(venv: Path, col: Collector, cwd: Path, *, protocol: str, service: str,
             command: list[str], extra_env: dict[str, str] | None = None, installed: bool = True):
    """Run ``opentelemetry-instrument python <command>``; returns (process, JSON report)."""
    """``<venv>/bin/opentelemetry-instrument python ...`` pointed at ``col``; returns the run."""
    env = _clean_env()
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # `python` is the venv's
    env.update(col.env(protocol))
    env.update({
        "OTEL_SERVICE_NAME": service,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    })
    env.update(extra_env or {})
    # cwd must not be the project: opentelemetry-instrument puts the working directory on
    # PYTHONPATH, which would import the source tree instead of the installed package.
    proc = _run([str(venv / "bin" / "opentelemetry-instrument"), "python", *command],
                timeout=APP_TIMEOUT, env=env, cwd=cwd)
    assert "Failed to auto initialize" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if installed:  # the installed copy ran, not the working tree
        assert Path(report["otel_mlmon_file"]).is_relative_to(venv), report["otel_mlmon_file"]
    return proc, report


def _run_instrumented(venv: Path, col: Collector, cwd: Path, *, protocol: str, service: str,
                      command: list[str], extra_env: dict[str, str] | None = None):
    """The iris app (or a harness around it) under the CLI; checks the calls it reports."""
    proc, report = _run_cli(venv, col, cwd, protocol=protocol, service=service, command=command,
                            extra_env=extra_env)
    calls = [(c["model"], c["operation"], c["rows"], c["columns"], c.get("error")) for c in report["calls"]]
    assert calls == APP_CALLS
    return proc, report


# --------------------------------------------------------------------------- collector data
def _ml_spans(col: Collector) -> list[dict]:
    return sorted((s for s in col.spans() if s["scope"] == SCOPE), key=lambda s: s["start_time_unix_nano"])


def _latest(col: Collector, name: str) -> list[dict]:
    """The newest point of each series of metric ``name`` (exports are cumulative, repeated)."""
    latest: dict[frozenset, dict] = {}
    for point in col.metrics():
        if point["name"] != name:
            continue
        key = frozenset(point["attributes"].items())
        if key not in latest or point["time_unix_nano"] >= latest[key]["time_unix_nano"]:
            latest[key] = point
    return list(latest.values())


def _by_attrs(points: list[dict]) -> dict[frozenset, dict]:
    out = {}
    for point in points:
        key = frozenset(point["attributes"].items())
        assert key not in out, f"duplicate series {point['attributes']}"
        out[key] = point
    return out


def _metric_attrs(name: str, version: str | None, operation: str, **extra) -> frozenset:
    attrs = {semconv.ML_MODEL_NAME: name, semconv.ML_FRAMEWORK: "sklearn", semconv.ML_OPERATION: operation}
    if version is not None:
        attrs[semconv.ML_MODEL_VERSION] = version
    attrs.update(extra)
    return frozenset(attrs.items())


def _expected_span_attrs(name, version, class_name, operation, rows, columns, error):
    attrs = {
        semconv.ML_MODEL_NAME: name,
        semconv.ML_MODEL_CLASS: class_name,
        semconv.ML_FRAMEWORK: "sklearn",
        semconv.ML_OPERATION: operation,
        semconv.ML_BATCH_SIZE: rows,
        semconv.ML_INPUT_FEATURE_COUNT: columns,
    }
    if version is not None:
        attrs[semconv.ML_MODEL_VERSION] = version
    if error is not None:
        attrs[semconv.ERROR_TYPE] = error
    return attrs


def _check_spans(spans, calls, versions, classes, service):
    """One span per top-level call, in call order, with exactly the documented attributes."""
    assert [s["name"] for s in spans] == [f"{op} {name}" for name, op, *_ in calls]
    for span, (name, op, rows, columns, error) in zip(spans, calls):
        assert span["kind"] == "INTERNAL"
        assert span["parent_span_id"] is None  # top level, not a step of anything
        assert span["resource"]["service.name"] == service
        attrs = span["attributes"]
        assert attrs == _expected_span_attrs(name, versions[name], classes[name], op, rows, columns, error)
        assert type(attrs[semconv.ML_BATCH_SIZE]) is int
        assert type(attrs[semconv.ML_INPUT_FEATURE_COUNT]) is int
        assert set(attrs) <= set(semconv.SPAN_ATTRIBUTES)
        if error is None:
            assert (span["status_code"], span["events"]) == ("UNSET", [])
        else:
            assert (span["status_code"], span["status_message"]) == ("ERROR", error)
            # Only the type by default: exception messages can quote input values.
            assert span["events"] == [{"name": "exception", "attributes": {"exception.type": error}}]
        assert span["end_time_unix_nano"] >= span["start_time_unix_nano"] > 0


def _check_metrics(col, calls, versions, labels_by_model, service):
    """Duration, row, batch-size, class-count and probability metrics against the calls made."""
    per_op: dict[tuple[str, str], dict] = {}
    for name, op, rows, _, error in calls:
        entry = per_op.setdefault((name, op), {"ok": 0, "rows": 0, "sizes": [], "errors": Counter()})
        if error is None:
            entry["ok"] += 1
            entry["rows"] += rows
            entry["sizes"].append(rows)
        else:
            entry["errors"][error] += 1

    durations = _latest(col, semconv.INFERENCE_DURATION.name)
    expected_keys = set()
    by = _by_attrs(durations)
    for (name, op), entry in per_op.items():
        ok = by[_metric_attrs(name, versions[name], op)]
        expected_keys.add(_metric_attrs(name, versions[name], op))
        assert ok["count"] == entry["ok"], (name, op)
        for error, count in entry["errors"].items():
            key = _metric_attrs(name, versions[name], op, **{semconv.ERROR_TYPE: error})
            expected_keys.add(key)
            assert by[key]["count"] == count
    assert set(by) == expected_keys
    # Exactly one point carries error.type, and it counts the one failed call.
    assert [p["count"] for p in durations if semconv.ERROR_TYPE in p["attributes"]] == [1]
    for point in durations:
        assert (point["type"], point["unit"], point["temporality"]) == ("histogram", "s", "cumulative")
        assert point["explicit_bounds"] == list(semconv.DURATION_BUCKETS)
        assert sum(point["bucket_counts"]) == point["count"]
        assert 0 < point["min"] <= point["max"] < 30 and 0 < point["sum"] < 30 * point["count"]
        assert point["resource"]["service.name"] == service and point["scope"] == SCOPE

    rows = _by_attrs(_latest(col, semconv.INFERENCE_ROW_COUNT.name))
    assert set(rows) == {_metric_attrs(n, versions[n], op) for n, op in per_op}
    for (name, op), entry in per_op.items():
        point = rows[_metric_attrs(name, versions[name], op)]
        assert (point["type"], point["unit"], point["is_monotonic"]) == ("sum", "{row}", True)
        assert point["value"] == entry["rows"] and type(point["value"]) is int, (name, op)

    sizes = _by_attrs(_latest(col, semconv.INFERENCE_BATCH_SIZE.name))
    assert set(sizes) == {_metric_attrs(n, versions[n], op) for n, op in per_op}
    for (name, op), entry in per_op.items():
        point = sizes[_metric_attrs(name, versions[name], op)]
        assert (point["type"], point["unit"]) == ("histogram", "{row}")
        assert point["explicit_bounds"] == list(semconv.BATCH_SIZE_BUCKETS)
        assert (point["count"], point["sum"]) == (len(entry["sizes"]), sum(entry["sizes"])), (name, op)
        assert (point["min"], point["max"]) == (min(entry["sizes"]), max(entry["sizes"]))

    classes = _by_attrs(_latest(col, semconv.PREDICTION_CLASS_COUNT.name))
    expected_classes = {}
    for name, labels in labels_by_model.items():
        for label, count in Counter(labels).items():
            key = _metric_attrs(name, versions[name], "predict", **{semconv.ML_PREDICTION_CLASS: label})
            expected_classes[key] = count
    assert {k: p["value"] for k, p in classes.items()} == expected_classes
    for point in classes.values():
        assert (point["type"], point["unit"], point["is_monotonic"]) == ("sum", "{prediction}", True)

    proba = _by_attrs(_latest(col, semconv.PREDICTION_PROBABILITY.name))
    expected_proba = {_metric_attrs(n, versions[n], op): e["rows"] for (n, op), e in per_op.items()
                      if op == "predict_proba"}
    assert {k: p["count"] for k, p in proba.items()} == expected_proba
    for point in proba.values():
        assert 1 / 3 <= point["min"] <= point["max"] <= 1.0  # probability of the predicted class

    names = {p["name"] for p in col.metrics() if p["scope"] == SCOPE}
    assert semconv.MONITOR_ERROR_COUNT.name not in names  # no internal failure
    assert semconv.MONITOR_DROPPED_COUNT.name not in names


def _values(obj):
    if isinstance(obj, dict):
        for value in obj.values():
            yield from _values(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _values(value)
    else:
        yield obj


def _assert_no_feature_values(col: Collector, features: list[float]):
    """No raw input value anywhere in span attributes, events, status or metric attributes."""
    floats = set(features)
    texts = {repr(f) for f in features}
    assert len(floats) > 10  # the app did report what it sent
    carried = []
    for span in col.spans():
        carried += [span["attributes"], [e["attributes"] for e in span["events"]], span["status_message"]]
    carried += [p["attributes"] for p in col.metrics()]
    for value in _values(carried):
        if isinstance(value, float):
            assert value not in floats, f"feature value {value!r} in telemetry"
        elif isinstance(value, str):
            leaked = [t for t in texts if t in value]
            assert not leaked, f"feature values {leaked} in telemetry string {value!r}"


def _app_ready(col: Collector) -> bool:
    if len(_ml_spans(col)) < len(APP_CALLS):
        return False
    points = _latest(col, semconv.INFERENCE_DURATION.name)
    return sum(p["count"] for p in points) == len(APP_CALLS)


# --------------------------------------------------------------------------- tests
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_zero_code_fresh_install(installed_venv, tmp_path, protocol):
    service = f"iris-app-{protocol.replace('/', '-')}"
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    with Collector(tmp_path / "collector") as col:
        _, report = _run_instrumented(installed_venv, col, workdir, protocol=protocol, service=service,
                                      command=[str(APP)])
        col.wait_for(_app_ready, timeout=COLLECTOR_TIMEOUT)
        time.sleep(0.5)  # anything unexpected (a duplicate, a stray span) would arrive now
        spans = col.spans()
        assert all(s["scope"] == SCOPE for s in spans), {(s["scope"], s["name"]) for s in spans}
        # Exactly one span per top-level call: no spans for pipeline steps (scaler, classifier).
        _check_spans(_ml_spans(col), APP_CALLS, APP_VERSIONS, _app_classes(), service)
        assert Counter(s["attributes"][semconv.ML_MODEL_NAME] for s in spans)["Pipeline"] == 3

        labels: dict[str, list[str]] = {}
        for call in report["calls"]:
            if call["operation"] == "predict" and "labels" in call:
                labels.setdefault(call["model"], []).extend(call["labels"])
        assert set(labels["iris-logreg"]) <= {"setosa", "versicolor", "virginica"}
        _check_metrics(col, APP_CALLS, APP_VERSIONS, labels, service)
        (queue,) = _latest(col, semconv.MONITOR_QUEUE_SIZE.name)
        assert (queue["type"], queue["unit"], queue["value"]) == ("sum", "{record}", 0)
        # The anomaly span processor was put in front of the distro's exporting processor: it
        # decided on every span (all kept at the default ratio 1.0).
        decisions = _latest(col, semconv.SAMPLING_SPAN_COUNT.name)
        kept = sum(p["value"] for p in decisions if p["attributes"][semconv.ML_SAMPLING_DECISION] == "kept")
        assert kept == len(spans) and all(p["attributes"][semconv.ML_SAMPLING_DECISION] == "kept" for p in decisions)
        # Inputs were profiled (data quality; drift against the profile captured at fit).
        assert sum(p["value"] for p in _latest(col, semconv.DATA_ROW_COUNT.name)) > 0
        _assert_no_feature_values(col, report["features_sent"])


def test_zero_code_disabled_by_environment(installed_venv, tmp_path):
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    with Collector(tmp_path / "collector") as col:
        _run_instrumented(installed_venv, col, workdir, protocol="grpc", service="iris-app-disabled",
                          command=[str(MARKER_HARNESS), str(APP)],
                          extra_env={"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "otel_mlmon_sklearn"})
        # The harness's marker span and counter, emitted after the app finished, prove that
        # this process exported through the collector.
        col.wait_for(lambda c: any(s["name"] == "marker" for s in c.spans())
                     and any(p["name"] == "test.marker.count" for p in c.metrics()),
                     timeout=COLLECTOR_TIMEOUT)
        time.sleep(1.0)
        spans, metrics = col.spans(), col.metrics()
    assert [(s["name"], s["scope"]) for s in spans] == [("marker", "test-marker")]
    assert spans[0]["resource"]["service.name"] == "iris-app-disabled"
    assert not [s for s in spans if any(k.startswith("ml.") for k in s["attributes"])]
    assert not [p for p in metrics if p["name"].startswith("ml.") or p["scope"] == SCOPE]


def test_programmatic_otlp_grpc(tmp_path):
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from otel_mlmon import SklearnInstrumentor, set_model_info

    X, y = load_iris(return_X_y=True)
    service = "programmatic-grpc"
    resource = Resource.create({"service.name": service})
    with Collector(tmp_path) as col:
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=col.grpc_endpoint, insecure=True), schedule_delay_millis=200))
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=col.grpc_endpoint, insecure=True), export_interval_millis=3_600_000)
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        instrumentor = SklearnInstrumentor()
        assert not instrumentor.is_instrumented_by_opentelemetry  # a leftover would ignore our providers
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        try:
            model = set_model_info(LogisticRegression(max_iter=1000).fit(X, y),
                                   name="programmatic-model", version="2.0.1")
            labels = model.predict(X[45:55])
            model.predict_proba(X[:3])
            model.decision_function(X[100:102])
            with pytest.raises(ValueError):
                model.predict(X[:1, :2])
            assert tracer_provider.force_flush(10_000)
            assert meter_provider.force_flush(10_000)
        finally:
            instrumentor.uninstrument()
            tracer_provider.shutdown()
            meter_provider.shutdown()
        calls = [
            ("programmatic-model", "predict", 10, 4, None),
            ("programmatic-model", "predict_proba", 3, 4, None),
            ("programmatic-model", "decision_function", 2, 4, None),
            ("programmatic-model", "predict", 1, 2, "ValueError"),
        ]
        col.wait_for(lambda c: len(_ml_spans(c)) >= len(calls)
                     and sum(p["count"] for p in _latest(c, semconv.INFERENCE_DURATION.name)) == len(calls),
                     timeout=COLLECTOR_TIMEOUT)
        time.sleep(0.3)
        versions = {"programmatic-model": "2.0.1"}
        classes = {"programmatic-model": _qualified(LogisticRegression)}
        _check_spans(_ml_spans(col), calls, versions, classes, service)
        assert len(col.spans()) == len(calls)
        assert len({s["trace_id"] for s in col.spans()}) == len(calls)  # each call its own trace
        _check_metrics(col, calls, versions, {"programmatic-model": [str(v) for v in labels]}, service)
        _assert_no_feature_values(col, X[45:55].ravel().tolist() + X[:3].ravel().tolist()
                                  + X[100:102].ravel().tolist() + X[:1, :2].ravel().tolist())


@pytest.mark.torch
def test_zero_code_torch_only_environment(torch_only_venv, tmp_path):
    """Only PyTorch installed (no scikit-learn): the CLI still instruments, through the torch
    entry point; the scikit-learn instrumentor stays idle."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    with Collector(tmp_path / "collector") as col:
        _, report = _run_cli(torch_only_venv, col, workdir, protocol="grpc", service="torch-app",
                             command=[str(TORCH_APP)])
        assert report["sklearn_installed"] is False
        calls = report["calls"]
        col.wait_for(lambda c: sum(p["count"] for p in _latest(c, semconv.INFERENCE_DURATION.name)) == len(calls),
                     timeout=COLLECTOR_TIMEOUT)  # fmt: skip
        time.sleep(0.5)
        spans = _ml_spans(col)
        assert [s["name"] for s in spans] == ["forward tabular-mlp"] * len(calls)  # no training spans
        for span, call in zip(spans, calls):
            attrs = span["attributes"]
            assert attrs[semconv.ML_FRAMEWORK] == "torch"
            assert attrs[semconv.ML_MODEL_VERSION] == "7"
            assert attrs[semconv.ML_BATCH_SIZE] == call["rows"]
            assert attrs[semconv.ML_INPUT_SHAPE] == [call["rows"], 8 if call["error"] is None else 5]
            assert attrs[semconv.ML_INPUT_DTYPE] == "float32"
            assert attrs[semconv.ML_INPUT_DEVICE] == "cpu"
            assert attrs[semconv.ML_MODEL_PARAMETER_COUNT] == report["parameters"]
            assert (span["status_code"] == "ERROR") == (call["error"] is not None)
            assert span["resource"]["service.name"] == "torch-app"
        rows = {p["attributes"].get(semconv.ERROR_TYPE): p["value"] for p in _latest(col, semconv.INFERENCE_ROW_COUNT.name)}
        assert rows == {None: sum(c["rows"] for c in calls if c["error"] is None)}
        classes = {p["attributes"][semconv.ML_PREDICTION_CLASS]: p["value"]
                   for p in _latest(col, semconv.PREDICTION_CLASS_COUNT.name)}  # fmt: skip
        assert classes == {str(k): v for k, v in Counter(report["argmax"]).items()}
        (memory,) = _latest(col, semconv.PROCESS_MEMORY_USAGE.name)
        assert memory["unit"] == "By" and memory["value"] > 50 * 2**20


@pytest.mark.torch
def test_zero_code_both_frameworks_installed(tmp_path):
    """This test environment has scikit-learn and PyTorch: both entry points load, the torch
    app is traced once per inference call."""
    venv = Path(sys.executable).parent.parent
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    with Collector(tmp_path / "collector") as col:
        _, report = _run_cli(venv, col, workdir, protocol="http/protobuf", service="both",
                             command=[str(TORCH_APP)], installed=False)
        assert report["sklearn_installed"] is True
        n = len(report["calls"])
        col.wait_for(lambda c: len(_ml_spans(c)) == n, timeout=COLLECTOR_TIMEOUT)
        assert {s["attributes"][semconv.ML_FRAMEWORK] for s in _ml_spans(col)} == {"torch"}
