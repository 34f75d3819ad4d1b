"""A small prediction service (standard library http.server) meant to run under the OTel launcher.

    OTEL_SERVICE_NAME=scoring OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=none \\
        opentelemetry-instrument python examples/http_service.py --port 8000

There is no OpenTelemetry code here: ``opentelemetry-instrument`` configures the SDK and loads
otel-mlmon's instrumentation through its entry point (point ``OTEL_EXPORTER_OTLP_ENDPOINT`` at a
collector to export over OTLP). The only otel-mlmon calls are the public model API: a name for
the model, prediction ids, and ground truth when it arrives.

    curl -s localhost:8000/predict -d '{"rows": [[5.1, 3.5, 1.4, 0.2]], "ids": ["order-1"]}'
    {"model": "iris-service", "predictions": ["setosa"], "probabilities": [[0.98, 0.02, 0.0]],
     "prediction_ids": ["order-1"]}
    curl -s localhost:8000/labels -d '{"ids": ["order-1"], "labels": ["setosa"]}'
    {"joined": 1, "unknown_id": 0, "duplicate": 0, "invalid": 0}

``POST /predict``: ``{"rows": [[...], ...], "ids": [...]}`` (ids optional: without them
otel-mlmon generates one per row and the response returns them). ``POST /labels``:
``{"ids": [...], "labels": [...]}``. ``GET /health``. ``--port 0`` picks a free port; the first
line on stdout says where the service listens.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import otel_mlmon

MAX_BODY = 1 << 20  # 1 MiB of JSON per request


def train():
    iris = load_iris()
    labels = iris.target_names[iris.target]  # string classes: "setosa", "versicolor", "virginica"
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    otel_mlmon.set_model_info(model, name="iris-service", version="1")
    return model.fit(iris.data, labels), iris.data.shape[1]


MODEL, N_FEATURES = train()


class BadRequest(ValueError):
    pass


def predict(body: dict) -> dict:
    rows = body.get("rows")
    if not isinstance(rows, list) or not rows:
        raise BadRequest('"rows" must be a non-empty list of rows')
    try:
        X = np.asarray(rows, dtype=float)
    except (TypeError, ValueError):
        raise BadRequest('"rows" must hold numbers') from None
    if X.ndim != 2 or X.shape[1] != N_FEATURES:
        raise BadRequest(f'each row needs {N_FEATURES} numbers, got shape {list(X.shape)}')
    ids = body.get("ids")
    if ids is not None and (not isinstance(ids, list) or len(ids) != len(X)):
        raise BadRequest('"ids", when given, must be a list with one id per row')
    # Each request runs on its own thread; prediction ids are per thread (and per asyncio task).
    # Inside the block this thread's instrumented calls get these ids (None: generated ids).
    with otel_mlmon.prediction_ids(ids):
        probabilities = MODEL.predict_proba(X)
        prediction_ids = list(otel_mlmon.last_prediction_ids())
    predictions = MODEL.classes_[probabilities.argmax(axis=1)]
    return {
        "model": "iris-service",
        "predictions": predictions.tolist(),
        "probabilities": np.round(probabilities, 4).tolist(),
        "prediction_ids": prediction_ids,
    }


def labels(body: dict) -> dict:
    ids, values = body.get("ids"), body.get("labels")
    if not isinstance(ids, list) or not isinstance(values, list):
        raise BadRequest('"ids" and "labels" must be lists')
    try:
        result = otel_mlmon.record_ground_truth(ids, values)
    except ValueError as exc:  # e.g. lengths differ
        raise BadRequest(str(exc)) from None
    return result.counts


class Handler(BaseHTTPRequestHandler):
    server_version = "otel-mlmon-example/1"
    routes = {"/predict": predict, "/labels": labels}

    def do_GET(self):  # noqa: N802
        if self.path == "/health":
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": f"no route {self.path}"})

    def do_POST(self):  # noqa: N802
        route = self.routes.get(self.path)
        if route is None:
            self._send(404, {"error": f"no route {self.path}"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                raise BadRequest(f"a JSON body of 1 byte to {MAX_BODY} bytes is required")
            body = json.loads(self.rfile.read(length))
            if not isinstance(body, dict):
                raise BadRequest("the body must be a JSON object")
            self._send(200, route(body))
        except (BadRequest, json.JSONDecodeError) as exc:
            self._send(400, {"error": str(exc)})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # noqa: A002 - keep stdout for telemetry (console exporter)
        pass


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True

    def stop(signum, frame):  # SIGTERM: stop serving and exit normally, so exporters flush at exit
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
