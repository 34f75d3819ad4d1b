"""A real OTLP collector (rotel) for end-to-end tests.

``Collector`` starts the ``rotel-agent`` binary shipped in the ``rotel`` PyPI
package. The application under test sends OTLP to rotel's gRPC or HTTP
receiver. Rotel's OTLP exporter (HTTP/protobuf, no compression) then forwards
everything to a tiny HTTP server inside this process. That server decodes the
protobuf requests with ``opentelemetry.proto`` and keeps them for ``spans()``
and ``metrics()``.

This version of rotel has no file or JSON exporter, and its debug log is only
readable by humans. Forwarding over OTLP keeps the data structured and still
sends it through the real collector process.

    with Collector(tmp_path) as col:
        exporter = OTLPSpanExporter(endpoint=col.grpc_endpoint, insecure=True)
        ...
        col.wait_for(lambda c: any(s["name"] == "x" for s in c.spans()))

``kill()`` stops the rotel process alone (a collector outage: its ports close, the captured
data stays) and ``restart()`` starts it again on the same ports.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from helpers import stop_process

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

__all__ = ["Collector", "rotel_binary"]

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 5.0
_START_ATTEMPTS = 3  # retried with new ports if a port was taken in the meantime


def rotel_binary() -> Path | None:
    """Path of the rotel-agent binary ($ROTEL_AGENT_BINARY overrides), or None."""
    override = os.environ.get("ROTEL_AGENT_BINARY")
    if override:
        return Path(override) if os.access(override, os.X_OK) else None
    try:
        import rotel
    except ImportError:
        return None
    path = Path(rotel.__file__).parent / "rotel-agent"
    return path if os.access(path, os.X_OK) else None


def _missing_rotel(reason: str):
    # The test command installs rotel; a missing collector is a failure, never a skip.
    raise RuntimeError(f"rotel collector unavailable: {reason} (pip install rotel)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# protobuf -> plain python
# --------------------------------------------------------------------------


def _any_value(v) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return _attrs(v.kvlist_value.values)
    return getattr(v, kind)


def _attrs(kvs) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in kvs}


def _enum_suffix(enum_type, value: int, prefix: str) -> str:
    name = enum_type.Name(value)
    return name[len(prefix):] if name.startswith(prefix) else name


def _convert_spans(req) -> list[dict]:
    from opentelemetry.proto.trace.v1 import trace_pb2

    out = []
    for rs in req.resource_spans:
        resource = _attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out.append({
                    "name": sp.name,
                    # SDK names: INTERNAL/SERVER/CLIENT/PRODUCER/CONSUMER
                    "kind": _enum_suffix(trace_pb2.Span.SpanKind, sp.kind, "SPAN_KIND_"),
                    "attributes": _attrs(sp.attributes),
                    "trace_id": sp.trace_id.hex(),
                    "span_id": sp.span_id.hex(),
                    "parent_span_id": sp.parent_span_id.hex() or None,
                    # UNSET/OK/ERROR, like opentelemetry.trace.StatusCode names
                    "status_code": _enum_suffix(trace_pb2.Status.StatusCode, sp.status.code, "STATUS_CODE_"),
                    "status_message": sp.status.message,
                    "events": [{"name": e.name, "attributes": _attrs(e.attributes)} for e in sp.events],
                    "start_time_unix_nano": sp.start_time_unix_nano,
                    "end_time_unix_nano": sp.end_time_unix_nano,
                    "scope": ss.scope.name,
                    "resource": resource,
                })
    return out


_TEMPORALITY = {0: "unspecified", 1: "delta", 2: "cumulative"}


def _convert_metrics(req) -> list[dict]:
    out = []
    for rm in req.resource_metrics:
        resource = _attrs(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                data = getattr(m, kind) if kind else None
                base = {"name": m.name, "unit": m.unit, "description": m.description,
                        "type": kind, "scope": sm.scope.name, "resource": resource}
                if kind in ("sum", "histogram", "exponential_histogram"):
                    base["temporality"] = _TEMPORALITY.get(data.aggregation_temporality, "unspecified")
                if kind == "sum":
                    base["is_monotonic"] = data.is_monotonic
                for dp in data.data_points if data is not None else ():
                    point = dict(base, attributes=_attrs(dp.attributes),
                                 time_unix_nano=dp.time_unix_nano)
                    if kind in ("sum", "gauge"):
                        which = dp.WhichOneof("value")
                        point["value"] = getattr(dp, which) if which else None
                    elif kind == "histogram":
                        point.update(count=dp.count, sum=dp.sum if dp.HasField("sum") else None,
                                     bucket_counts=list(dp.bucket_counts),
                                     explicit_bounds=list(dp.explicit_bounds),
                                     min=dp.min if dp.HasField("min") else None,
                                     max=dp.max if dp.HasField("max") else None)
                    elif kind == "exponential_histogram":
                        point.update(count=dp.count, sum=dp.sum if dp.HasField("sum") else None,
                                     scale=dp.scale, zero_count=dp.zero_count)
                    elif kind == "summary":
                        point.update(count=dp.count, sum=dp.sum)
                    out.append(point)
    return out


# --------------------------------------------------------------------------
# in-process OTLP/HTTP sink that rotel exports to
# --------------------------------------------------------------------------


class _Sink:
    _ROUTES = {
        "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest,
                       trace_service_pb2.ExportTraceServiceResponse, "spans"),
        "/v1/metrics": (metrics_service_pb2.ExportMetricsServiceRequest,
                        metrics_service_pb2.ExportMetricsServiceResponse, "metrics"),
        "/v1/logs": (logs_service_pb2.ExportLogsServiceRequest,
                     logs_service_pb2.ExportLogsServiceResponse, "logs"),
    }

    def __init__(self):
        self.lock = threading.Lock()
        self.spans: list[dict] = []
        self.metrics: list[dict] = []
        self.logs: list = []  # raw ExportLogsServiceRequest messages
        self.errors: list[str] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                try:
                    path = self.path.split("?")[0]
                    body = self._read_body()
                    sink.handle(path, self.headers, body)
                    payload = sink._ROUTES[path][1]().SerializeToString()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-protobuf")
                except Exception as exc:  # keep going; report via errors
                    with sink.lock:
                        sink.errors.append(f"{self.path}: {exc!r}")
                    payload = repr(exc).encode()
                    self.send_response(400)
                    self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _read_body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       name="otlp-sink", daemon=True)
        self.thread.start()

    def handle(self, path: str, headers, body: bytes) -> None:
        req_type, _, kind = self._ROUTES[path]
        if headers.get("Content-Encoding", "").lower() == "gzip" or body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        req = req_type()
        if "json" in headers.get("Content-Type", ""):
            json_format.Parse(body, req)
        else:
            req.ParseFromString(body)
        with self.lock:
            if kind == "spans":
                self.spans.extend(_convert_spans(req))
            elif kind == "metrics":
                self.metrics.extend(_convert_metrics(req))
            else:
                self.logs.append(req)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------


class Collector:
    """Real rotel OTLP collector on loopback; captured data via spans()/metrics()."""

    def __init__(self, tmp_path):
        self.tmp_path = Path(tmp_path)
        self.grpc_endpoint = ""
        self.http_endpoint = ""
        self.command: list[str] = []
        self._proc: subprocess.Popen | None = None
        self._sink: _Sink | None = None
        self._stdout = self.tmp_path / "rotel.stdout.log"
        self._stderr = self.tmp_path / "rotel.stderr.log"

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> "Collector":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "Collector":
        if self._proc is not None:
            return self
        binary = rotel_binary()
        if binary is None:
            _missing_rotel("rotel-agent binary not found (pip install rotel)")
        self.tmp_path.mkdir(parents=True, exist_ok=True)
        self._sink = _Sink()
        try:
            last_error = ""
            for _ in range(_START_ATTEMPTS):
                ok, last_error = self._try_start(binary)
                if ok:
                    return self
                # A port picked by _free_port() can be taken before rotel binds it.
                if "address" not in last_error.lower() and "in use" not in last_error.lower():
                    break
            raise RuntimeError(f"rotel failed to start: {last_error}")
        except BaseException:
            self.stop()
            raise

    def _try_start(self, binary: Path) -> tuple[bool, str]:
        # rotel panics with port 0, so pick free ports here.
        grpc_port, http_port = _free_port(), _free_port()
        while http_port == grpc_port:
            http_port = _free_port()
        self.grpc_endpoint = f"http://127.0.0.1:{grpc_port}"
        self.http_endpoint = f"http://127.0.0.1:{http_port}"
        self._ports = (grpc_port, http_port)
        self.command = [
            str(binary), "start",
            "--pid-file", str(self.tmp_path / "rotel.pid"),
            "--log-file", str(self.tmp_path / "rotel.log"),
            "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
            "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
            "--exporter", "otlp",
            "--otlp-exporter-endpoint", f"http://127.0.0.1:{self._sink.port}",
            "--otlp-exporter-protocol", "http",
            "--otlp-exporter-compression", "none",
            "--batch-timeout", "100ms",
            "--otlp-exporter-retry-initial-backoff", "100ms",
            "--otlp-exporter-retry-max-backoff", "500ms",
        ]
        return self._launch("wb")

    def _launch(self, mode: str) -> tuple[bool, str]:
        """Start rotel with self.command; wait until both receivers listen."""
        grpc_port, http_port = self._ports
        # ROTEL_* variables from the environment would change rotel's config.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROTEL_")}
        env["NO_COLOR"] = "1"
        env.setdefault("RUST_BACKTRACE", "1")
        with open(self._stdout, mode) as out, open(self._stderr, mode) as err:
            self._proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=err, env=env)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                msg = f"exited with code {self._proc.returncode}\n{self._output()}"
                self._proc = None
                return False, msg
            if _port_open(grpc_port) and _port_open(http_port):
                # Rotel exits at once if a bind fails; make sure the listener
                # is rotel and not something that grabbed the port first.
                time.sleep(0.1)
                if self._proc.poll() is None:
                    return True, ""
                continue
            time.sleep(0.05)
        self._kill()
        return False, f"not listening after {_START_TIMEOUT}s\n{self._output()}"

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc, _STOP_TIMEOUT)

    def stop(self) -> None:
        try:
            self._kill()
        finally:
            sink, self._sink = self._sink, None
            if sink is not None:
                # keep captured data readable after stop()
                self._final = (list(sink.spans), list(sink.metrics), list(sink.errors))
                sink.close()

    # -- outages ----------------------------------------------------------------

    def kill(self) -> None:
        """Stop the rotel process only: the ports close, the sink keeps what it received.
        ``restart()`` brings rotel back on the same ports (an outage of the collector)."""
        if self._sink is None:
            raise RuntimeError("collector not started")
        self._kill()

    def restart(self, timeout: float = _START_TIMEOUT) -> "Collector":
        """Start rotel again after ``kill()``, same ports and configuration."""
        if self._sink is None:
            raise RuntimeError("collector not started")
        if self._proc is not None:
            return self
        deadline = time.monotonic() + timeout
        while True:  # the old listener's port may take a moment to be free again
            ok, error = self._launch("ab")
            if ok:
                return self
            if time.monotonic() >= deadline:
                raise RuntimeError(f"rotel failed to restart: {error}")
            time.sleep(0.2)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- data ----------------------------------------------------------------

    def _snapshot(self):
        if self._sink is None:
            return getattr(self, "_final", ([], [], []))
        with self._sink.lock:
            return list(self._sink.spans), list(self._sink.metrics), list(self._sink.errors)

    def spans(self) -> list[dict]:
        return self._snapshot()[0]

    def metrics(self) -> list[dict]:
        return self._snapshot()[1]

    def wait_for(self, predicate: Callable[["Collector"], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return
            if self._proc is not None and self._proc.poll() is not None:
                raise AssertionError(f"rotel exited ({self._proc.returncode}) while waiting\n{self.summary()}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s\n{self.summary()}")
            time.sleep(0.1)

    def env(self, protocol: str = "grpc") -> dict[str, str]:
        """OTEL_* variables pointing an app (e.g. a subprocess) at this collector.

        protocol: "grpc" or "http/protobuf"."""
        endpoint = self.grpc_endpoint if protocol == "grpc" else self.http_endpoint
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                "OTEL_EXPORTER_OTLP_INSECURE": "true"}

    # -- diagnostics -----------------------------------------------------------

    def _output(self, limit: int = 4000) -> str:
        parts = []
        for label, path in (("stderr", self._stderr), ("stdout", self._stdout)):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if text.strip():
                parts.append(f"--- rotel {label} ---\n{text[-limit:]}")
        return "\n".join(parts) or "(rotel produced no output)"

    def summary(self) -> str:
        spans, metrics, errors = self._snapshot()
        lines = [f"command: {' '.join(self.command)}",
                 f"{len(spans)} span(s): " + ", ".join(sorted({s['name'] for s in spans})),
                 f"{len(metrics)} metric point(s): "
                 + ", ".join(sorted({f"{m['name']}[{m['type']}]" for m in metrics}))]
        if errors:
            lines.append("sink errors: " + "; ".join(errors[-5:]))
        lines.append(self._output(2000))
        return "\n".join(lines)
