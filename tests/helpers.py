"""Helpers shared by test modules (tests/ is put on sys.path by conftest.py)."""

from __future__ import annotations

import math

import numpy as np


def assert_identical(a, b, where="result"):
    """Assert ``a`` and ``b`` are the same value, bit for bit (NaN equal to the same NaN)."""
    assert type(a) is type(b), f"{where}: type {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
        if a.dtype.hasobject:
            for i, (x, y) in enumerate(zip(a.ravel().tolist(), b.ravel().tolist())):
                assert_identical(x, y, f"{where}[{i}]")
        else:
            assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), f"{where}: values differ"
            assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), (
                f"{where}: not bitwise identical"
            )
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def stop_process(proc, timeout: float) -> None:
    """Terminate a server process started by a test; kill it if it does not stop in time."""
    import subprocess  # noqa: PLC0415

    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def metric_points(reader, name: str | None = None) -> list[tuple]:
    """Every data point collected now from an ``InMemoryMetricReader``, as
    (metric name, unit, attributes dict, point); only metric ``name`` when given."""
    out = []
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if name is None or metric.name == name:
                    out.extend((metric.name, metric.unit, dict(p.attributes), p) for p in metric.data.data_points)
    return out


def stallable_classifier():
    """A ``LogisticRegression`` subclass whose ``predict`` sleeps ``delay`` seconds when set (a
    latency incident); reset ``delay`` to 0 after use."""
    import time  # noqa: PLC0415

    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    class Stallable(LogisticRegression):
        delay = 0.0

        def predict(self, X):
            if self.delay:
                time.sleep(self.delay)
            return super().predict(X)

    return Stallable
