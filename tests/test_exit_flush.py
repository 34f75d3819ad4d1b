"""Issue 17, part 1: what was accepted reaches the label store when the interpreter exits
normally, without ``uninstrument()``, whatever the metric reader (in memory, pull, periodic)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

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
