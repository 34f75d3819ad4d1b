"""Issue 17, part 1: what was accepted reaches the label store when the interpreter exits
normally, without ``uninstrument()``, whatever the metric reader (in memory, pull, periodic)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from otel_mlmon import _lifecycle
from otel_mlmon.quality.tracker import QualityHub

APP = Path(__file__).parent / "apps" / "exit_without_shutdown.py"


@pytest.mark.parametrize("reader", ["memory", "pull", "periodic"])
def test_predictions_reach_the_store_at_a_normal_exit(tmp_path, reader):
    path = tmp_path / "labels.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")]))}
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(APP), reader, str(path)], env=env, timeout=120,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert path.exists(), "the label store file was never created"
    rows = np.load(str(path) + ".rows.npy")
    hub = QualityHub(store="sqlite", path=path)  # a later process: restarted, labels arrive
    try:
        labels = (rows[:, 0] > 0).astype(int)
        result = hub.record_ground_truth([f"req-{i}" for i in range(500)], labels)
        assert result.joined == 500, (result, done.stderr[-3000:])
        assert result.unknown_id == 0
    finally:
        hub.close()
    assert time.monotonic() - started < 60


def test_exit_is_bounded_when_the_store_stays_locked(tmp_path):
    """Another process holds the label store's write lock for the whole exit: the exit hooks
    give up after ``EXIT_TIMEOUT_S`` (SQLite's own busy timeout is 5 s too), the process exits 0."""
    path = tmp_path / "locked.sqlite"
    QualityHub(store="sqlite", path=path).close()  # the schema exists
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # WAL mode: no other writer until it ends
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")]))}
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(APP), "memory", str(path)], env=env, timeout=120,
                              capture_output=True, text=True)  # fmt: skip
        elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode == 0, done.stderr[-3000:]
    assert elapsed < 30, elapsed  # start-up (imports, training) plus at most about 5 s of exit


def test_exit_hooks_are_bounded_in_time():
    """An exit hook that never returns holds exit for ``timeout_s`` only."""
    release = threading.Event()

    class Stuck:
        def hook(self) -> None:
            release.wait(60)

    stuck = Stuck()
    _lifecycle.register(stuck, _lifecycle.HUB, exit=Stuck.hook)
    started = time.monotonic()
    try:
        assert _lifecycle.run_exit_hooks(timeout_s=0.5) is False
        assert time.monotonic() - started < 5
    finally:
        release.set()
        del stuck
