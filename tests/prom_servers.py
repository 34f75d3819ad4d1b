"""Real Prometheus and Alertmanager servers on loopback for end-to-end tests.

The binaries come from Debian's ``prometheus`` (prometheus, promtool) and
``prometheus-alertmanager`` (prometheus-alertmanager, amtool) packages, which
``scripts/test.sh`` installs. A missing binary fails the test under ``CI=true``
and skips it (with the reason) elsewhere.

    with WebhookReceiver() as hook, \\
         Alertmanager(tmp_path, am_config(hook.url)) as am, \\
         Prometheus(tmp_path, prom_config(am.address)) as prom:
        prom.query("up")
        hook.wait_for(lambda posts: ..., timeout=30)
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest

from helpers import stop_process

__all__ = [
    "Alertmanager",
    "Prometheus",
    "WebhookReceiver",
    "dashboard_exprs",
    "dashboard_queries",
    "find_binary",
    "free_port",
    "prometheus_name",
    "require_binary",
    "require_module",
]

# Debian names the Alertmanager binary prometheus-alertmanager; upstream tarballs alertmanager.
_CANDIDATES = {
    "prometheus": ("prometheus",),
    "promtool": ("promtool",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "amtool": ("amtool",),
}
_PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
}
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


# OpenTelemetry units -> Prometheus unit suffixes, for the units otel-mlmon uses
# (annotations such as {row} have no suffix; "1" has none from the Python exporter and
# "_ratio" on gauges from the collector's exporters).
_UNIT_SUFFIX = {"s": "seconds", "By": "bytes", "1": ""}


def prometheus_name(name: str, instrument: str, unit: str, collector: bool = False) -> str:
    """The Prometheus metric name of an OpenTelemetry metric (histograms: the family name,
    without _bucket/_count/_sum).

    collector=False: opentelemetry-exporter-prometheus (PrometheusMetricReader); True: the
    OpenTelemetry Collector's prometheus and prometheusremotewrite exporters
    (add_metric_suffixes: true, their default)."""
    out = name.replace(".", "_")
    suffix = "" if unit.startswith("{") else _UNIT_SUFFIX.get(unit, unit)
    if suffix and not out.endswith("_" + suffix):
        out += "_" + suffix
    if instrument in ("counter", "observable_counter"):
        out += "_total"
    if collector and unit == "1" and instrument in ("gauge", "observable_gauge"):
        out += "_ratio"
    return out


def dashboard_exprs(path: Path) -> list[str]:
    """Every PromQL expression of a Grafana dashboard: panel targets, annotations, and the
    series selectors of its label_values() variables."""
    dashboard = json.loads(Path(path).read_text())
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", ()))
    exprs = [target["expr"] for panel in panels for target in panel.get("targets", ())]
    exprs += [a["expr"] for a in dashboard.get("annotations", {}).get("list", ()) if a.get("expr")]
    for var in dashboard.get("templating", {}).get("list", ()):
        if var["type"] == "query":
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", var["query"]["query"])
            exprs.append(inner.group(1) if inner else var["query"]["query"])
    return exprs


def dashboard_queries(path: Path) -> list[str]:
    """The dashboard's expressions with Grafana's variables replaced, ready for Prometheus."""
    out = []
    for expr in dashboard_exprs(path):
        expr = expr.replace("$__rate_interval", "5m")
        out.append(re.sub(r"\$\w+", ".*", expr))
    return out


def find_binary(name: str) -> str | None:
    """Path of ``name`` (prometheus, promtool, alertmanager, amtool) or None."""
    for candidate in _CANDIDATES[name]:
        path = shutil.which(candidate)
        if path:
            return path
    return None


def require_binary(name: str) -> str:
    """Path of ``name``; fails under CI=true, skips elsewhere, when it is missing."""
    path = find_binary(name)
    if path is not None:
        return path
    message = (f"{name} not found (looked for {', '.join(_CANDIDATES[name])} on PATH): "
               f"apt-get install {_PACKAGES[name]}, or run ./scripts/test.sh which installs it")
    if _in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
    raise AssertionError("unreachable")  # pytest.skip raises


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_module(name: str, requirement: str):
    """Import a test requirement; fails under CI=true, skips (the whole module) elsewhere."""
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"{name} is not installed: pip install '{requirement}' (./scripts/test.sh installs it)"
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, body: Any = None, timeout: float = 5.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
        raw = response.read()
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


class _Server:
    """A server process on a loopback port, ready when GET /-/ready answers 200."""

    name = ""

    def __init__(self, tmp_path, config_text: str) -> None:
        self.dir = Path(tmp_path) / self.name
        self.config_text = config_text
        self.port = 0
        self.command: list[str] = []
        self._proc: subprocess.Popen | None = None
        self._log = self.dir / f"{self.name}.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def _command(self, binary: str, config: Path) -> list[str]:
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self):
        binary = require_binary(self.name)
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / f"{self.name}.yml"
        config.write_text(self.config_text)
        last = ""
        for _ in range(3):  # a port picked by free_port() can be taken before the server binds it
            self.port = free_port()
            self.command = self._command(binary, config)
            with open(self._log, "ab") as log:
                self._proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT, cwd=self.dir)
            ok, last = self._wait_ready()
            if ok:
                return self
            self._kill()
            if "address already in use" not in last:
                break
        raise RuntimeError(f"{self.name} did not start: {last}")

    def _wait_ready(self) -> tuple[bool, str]:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False, f"exited with code {self._proc.returncode}\n{self.output()}"
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return True, ""
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return False, f"not ready after {_START_TIMEOUT}s\n{self.output()}"

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc, _STOP_TIMEOUT)

    def stop(self) -> None:
        self._kill()

    def output(self, limit: int = 4000) -> str:
        try:
            return self._log.read_text(errors="replace")[-limit:]
        except OSError:
            return "(no output)"

    def get(self, path: str, **params: Any) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return _http("GET", f"{self.url}{path}{query}")


class Prometheus(_Server):
    """``prometheus`` with the given configuration text (rule files relative to its dir)."""

    name = "prometheus"

    def _command(self, binary: str, config: Path) -> list[str]:
        return [binary, f"--config.file={config}", f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address={self.address}", "--log.level=info"]

    def query(self, expr: str) -> list[dict]:
        """Instant query; the result vector."""
        answer = self.get("/api/v1/query", query=expr)
        if answer.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {answer}")
        return answer["data"]["result"]

    def metric_names(self) -> list[str]:
        return self.get("/api/v1/label/__name__/values")["data"]

    def alerts(self) -> list[dict]:
        return self.get("/api/v1/alerts")["data"]["alerts"]

    def targets(self) -> list[dict]:
        return self.get("/api/v1/targets")["data"]["activeTargets"]

    def rule_health(self) -> list[tuple[str, str, str]]:
        """(rule name, health, last error) of every rule loaded."""
        out = []
        for group in self.get("/api/v1/rules")["data"]["groups"]:
            for rule in group["rules"]:
                out.append((rule["name"], rule.get("health", ""), rule.get("lastError", "")))
        return out


class Alertmanager(_Server):
    """``prometheus-alertmanager`` with clustering off (no gossip port, no settle wait)."""

    name = "alertmanager"

    def _command(self, binary: str, config: Path) -> list[str]:
        return [binary, f"--config.file={config}", f"--storage.path={self.dir / 'data'}",
                f"--web.listen-address={self.address}", "--cluster.listen-address=",
                "--log.level=info"]

    def alerts(self) -> list[dict]:
        return self.get("/api/v2/alerts")


class WebhookReceiver:
    """An HTTP server on loopback that keeps every JSON body POSTed to it, with its path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._posts: list[tuple[str, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"_unparsed": body.decode(errors="replace")}
                with receiver._lock:
                    receiver._posts.append((self.path, payload))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def posts(self) -> list[tuple[str, dict]]:
        with self._lock:
            return list(self._posts)

    def alerts(self) -> list[tuple[str, dict]]:
        """Every alert delivered so far, as (path, alert) with the payload's status on it."""
        out = []
        for path, payload in self.posts():
            for alert in payload.get("alerts", ()):
                out.append((path, alert))
        return out

    def wait_for(self, predicate: Callable[["WebhookReceiver"], bool], timeout: float,
                 diagnostics: Callable[[], str] = lambda: "", poll: Callable[[], None] = lambda: None) -> None:
        """Wait until ``predicate(self)``; ``poll`` runs between checks (e.g. to make more calls)."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() >= deadline:
                raise AssertionError(f"webhook condition not met within {timeout}s; received "
                                     f"{json.dumps(self.posts(), indent=1)[:3000]}\n{diagnostics()}")
            poll()
            time.sleep(0.1)
