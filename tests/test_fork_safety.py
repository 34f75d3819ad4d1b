"""Issue 17, parts 2 and 3: ``os.fork()`` while parent threads predict (prediction ids, SQLite
label store, a recording worker flushing every few milliseconds). Every child must be able to
predict, record its labels (they join), and complete a metric collection, with the inherited
instrumentation or with its own new providers; none may hang (each child has a watchdog: a
child still running after ``CHILD_TIMEOUT_S`` is killed and the test fails)."""

from __future__ import annotations

import faulthandler
import os
import random
import signal
import sqlite3
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sklearn.linear_model import LogisticRegression

import otel_mlmon
from otel_mlmon import _lifecycle
from otel_mlmon.quality.sqlite_store import SQLiteStore
from helpers import metric_points
from otel_mlmon import set_model_info

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")

CHILDREN = 50
ALIVE = 4  # children running at once
CHILD_TIMEOUT_S = 15.0
ROWS = 16


def _model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    return set_model_info(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), name="fork-model", version="1")


def _row_count(reader, name="ml.inference.row.count"):
    return sum(point.value for _, _, attrs, point in metric_points(reader, name)
               if attrs.get("ml.model.name") == "fork-model")  # fmt: skip


def _child(index, session, model):
    """In the forked child: predict, join the labels, collect. Raises on any failure."""
    reader = session.reader
    if index % 2:  # its own providers (gunicorn's post_fork re-initialising telemetry)
        session.instrumentor.uninstrument()
        reader = InMemoryMetricReader()
        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        session.instrumentor.instrument(tracer_provider=tracer_provider,
                                        meter_provider=MeterProvider(metric_readers=[reader]))  # fmt: skip
    before = _row_count(reader)
    ids = [f"child-{index}-{os.getpid()}-{k}" for k in range(ROWS)]
    X = np.random.default_rng(index).normal(size=(ROWS, 4))
    with otel_mlmon.prediction_ids(ids):
        y = model.predict(X)
    result = otel_mlmon.record_ground_truth(ids, y)
    assert result.joined == ROWS, f"{result.joined} of {ROWS} labels joined: {result}"
    assert _row_count(reader) - before == ROWS  # the collection completed and counted the call
    if index % 2:
        assert [s.name for s in exporter.get_finished_spans()] == ["predict fork-model"]


def _predict_loop(model, stop, tag, errors):
    rng = np.random.default_rng(hash(tag) % 2**32)
    calls = 0
    try:
        while not stop.is_set():
            ids = [f"{tag}-{calls}-{k}" for k in range(32)]
            with otel_mlmon.prediction_ids(ids):
                y = model.predict(rng.normal(size=(32, 4)))
            calls += 1
            if calls % 20 == 0:  # labels too: joins (SQLite transactions) in the parent
                otel_mlmon.record_ground_truth(ids, y)
    except BaseException as exc:  # noqa: BLE001
        errors.append(exc)


def _reap(alive, failures, block):
    """Collect finished children; kill (and report) those past their watchdog."""
    while alive:
        for pid, (index, started, report) in list(alive.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                del alive[pid]
                code = os.waitstatus_to_exitcode(status)
                if code != 0:
                    stacks = Path(str(report) + ".stacks")
                    text = report.read_text()[-1500:] if report.exists() else stacks.read_text()[:2500] if stacks.exists() else ""
                    failures.append(f"child {index} exited {code}: {text}")
            elif time.monotonic() - started > CHILD_TIMEOUT_S:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                del alive[pid]
                stacks = Path(str(report) + ".stacks")
                text = stacks.read_text() if stacks.exists() else ""
                failures.append(f"child {index} hung (killed after {CHILD_TIMEOUT_S} s): {text[:2500]}")
        if not block and len(alive) < ALIVE:
            return
        time.sleep(0.005)


def _collect_loop(reader, stop, errors):
    try:
        while not stop.is_set():
            reader.get_metrics_data()
            time.sleep(0.01)
    except BaseException as exc:  # noqa: BLE001
        errors.append(exc)


@pytest.mark.parametrize("collecting", [False, True], ids=["predicting", "predicting-and-collecting"])
def test_forked_children_predict_join_and_collect_while_the_parent_predicts(make_telemetry, tmp_path, collecting):
    """``collecting``: a third parent thread collects metrics all along (our observable callbacks
    run under the SDK's collection locks), as a periodic reader or a Prometheus scrape would."""
    path = tmp_path / "labels.sqlite"
    session = make_telemetry(flush_interval_ms=5, label_store_path=str(path))
    model = _model()
    stop = threading.Event()
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_predict_loop, args=(model, stop, f"parent{t}", errors)) for t in range(2)]
    if collecting:
        threads.append(threading.Thread(target=_collect_loop, args=(session.reader, stop, errors)))
    for thread in threads:
        thread.start()
    alive: dict[int, tuple] = {}
    failures: list[str] = []
    started = time.monotonic()
    try:
        time.sleep(0.2)
        for index in range(CHILDREN):
            if failures:
                break  # fail fast: one broken child is enough
            _reap(alive, failures, block=False)
            time.sleep(random.uniform(0, 0.02))
            report = tmp_path / f"child-{index}.txt"
            pid = os.fork()
            if pid == 0:  # the child: never returns into pytest
                code = 1
                try:
                    # The watchdog's diagnosis: every thread's stack, written before the kill.
                    stacks = open(str(report) + ".stacks", "w")  # noqa: SIM115
                    faulthandler.dump_traceback_later(CHILD_TIMEOUT_S - 3, exit=True, file=stacks)
                    _child(index, session, model)
                    code = 0
                except BaseException:  # noqa: BLE001
                    report.write_text(traceback.format_exc())
                finally:
                    os._exit(code)
            alive[pid] = (index, time.monotonic(), report)
        _reap(alive, failures, block=True)
    finally:
        for pid in alive:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not failures, "\n".join(failures)
    assert not errors
    # The parent is unharmed: it still joins its labels and collects.
    ids = [f"parent-after-{k}" for k in range(ROWS)]
    with otel_mlmon.prediction_ids(ids):
        y = model.predict(np.zeros((ROWS, 4)))
    assert otel_mlmon.record_ground_truth(ids, y).joined == ROWS
    assert _row_count(session.reader) > 0
    with sqlite3.connect(path) as conn:  # the children's writes (and closes) left the file sound
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert time.monotonic() - started < 60


def test_a_lock_never_released_delays_a_fork_by_the_timeout_only(monkeypatch, caplog):
    """``before`` never hangs a fork: a lock another thread keeps is given up after
    ``FORK_TIMEOUT_S``, logged, and its owner's child hook is told (``quiesced=False``)."""
    monkeypatch.setattr(_lifecycle, "FORK_TIMEOUT_S", 0.3)
    monkeypatch.setattr(_lifecycle, "_warned", False)  # logged once per process

    class Owner:
        def __init__(self) -> None:
            self._lock = threading.Lock()

        def child(self, quiesced: bool) -> None:
            os.write(write_end, b"quiesced" if quiesced else b"not quiesced")

    owner = Owner()
    _lifecycle.register(owner, _lifecycle.STORE, lock="_lock", child=Owner.child)
    read_end, write_end = os.pipe()
    taken, release = threading.Event(), threading.Event()

    def keep() -> None:
        with owner._lock:
            taken.set()
            release.wait(30)

    keeper = threading.Thread(target=keep)
    keeper.start()
    taken.wait(5)
    try:
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        took = time.monotonic() - started
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert os.read(read_end, 100) == b"not quiesced"
        assert 0.25 <= took < 3, took
        assert "could not wait for Owner._lock" in caplog.text
    finally:
        release.set()
        keeper.join(30)
        os.close(read_end)
        os.close(write_end)


def test_a_forked_child_holds_its_own_sqlite_file_locks(tmp_path):
    """The child's connection takes SQLite's file locks for real (the inherited handle was closed
    in the child, resetting SQLite's per-process lock bookkeeping it shared): when the parent
    then closes its last connection, which checkpoints and deletes the WAL only if no other
    process holds the database, the child's later writes are not lost with it."""
    path = tmp_path / "wal.sqlite"
    store = SQLiteStore(path)
    store.put_many(("m", None), ["parent"], y_pred=[1])
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            store.put_many(("m", None), ["child-1"], y_pred=[0])  # the child's own connection
            os.write(to_parent_w, b"1")
            os.read(to_child_r, 1)  # the parent has closed its store
            store.put_many(("m", None), ["child-2"], y_pred=[0])
            code = 0
        finally:
            os._exit(code)  # without closing: its last commit stays in the WAL
    try:
        assert os.read(to_parent_r, 1) == b"1"
        store.close()  # the parent's last connection
        os.write(to_child_w, b"1")
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    finally:
        for fd in (to_child_r, to_child_w, to_parent_r, to_parent_w):
            os.close(fd)
    fresh = SQLiteStore(path)
    try:
        joined = sorted(p.id for _, p in fresh.take_many(["parent", "child-1", "child-2"]).joined)
        assert joined == ["child-1", "child-2", "parent"]
    finally:
        fresh.close()
