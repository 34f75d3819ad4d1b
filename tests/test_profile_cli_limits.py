"""``otel-mlmon profile`` is bounded (issue 17, part 7): the column limit is checked on the
header before any row is read, long values are not stored, a header-only CSV is "has no rows",
``--bins`` is checked against the limit by its own name, and every violation is a non-zero exit
with the one-line ``ValueError`` message, no traceback — run as the real command (a subprocess)
and through ``otel_mlmon.cli.main``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pandas as pd

from otel_mlmon.cli import main
from otel_mlmon.drift import cli as drift_cli
from otel_mlmon.drift import load_profile
from otel_mlmon.drift.profile_limits import DEFAULT_LIMITS

CLI = [sys.executable, "-m", "otel_mlmon.cli", "profile"]


def _run(*argv, env=None):
    return subprocess.run(CLI + [str(a) for a in argv], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})  # fmt: skip


def test_a_header_of_a_million_columns_is_refused_before_any_row_is_read(tmp_path):
    path = tmp_path / "wide.csv"
    header = ",".join(f"c{i}" for i in range(1_000_000))
    path.write_text(header + "\n" + ",".join("1" for _ in range(1_000_000)) + "\n")
    out = tmp_path / "p.json"
    tracemalloc.start()
    started = time.perf_counter()
    status = main(["profile", str(path), "--output", str(out)])
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert status == 2 and not out.exists()
    assert elapsed < 1.0 and peak < 50 * 2**20, (elapsed, peak)
    proc = _run(path, "--output", out)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("otel-mlmon profile: error: reference profile would have at least ")
    assert "features: the header of" in proc.stderr and "the limit is 1000 (OTEL_MLMON_PROFILE_MAX_FEATURES)" in proc.stderr


def test_the_column_limit_counts_features_and_follows_the_environment(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({f"x{i}": np.arange(5.0) for i in range(6)} | {"y": np.arange(5) % 2}).to_csv(path, index=False)
    proc = _run(path, "--output", tmp_path / "a.json", env={"OTEL_MLMON_PROFILE_MAX_FEATURES": "5"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "reference profile would have 7 features: " in proc.stderr and "has 7 columns; the limit is 5" in proc.stderr
    proc = _run(path, "--output", tmp_path / "b.json", "--target", "y", env={"OTEL_MLMON_PROFILE_MAX_FEATURES": "6"})
    assert proc.returncode == 0, proc.stderr
    assert len(load_profile(tmp_path / "b.json").features) == 6


def test_a_50mb_value_is_not_stored(tmp_path):
    path = tmp_path / "long.csv"
    with open(path, "w") as fh:
        fh.write("x,text\n")
        fh.write("1.0," + "a" * (50 * 2**20) + "\n")
        for i in range(200):
            fh.write(f"{i}.5,v{i % 3}\n")
    out = tmp_path / "p.json"
    assert main(["profile", str(path), "--output", str(out)]) == 0
    assert out.stat().st_size < 100_000
    text = load_profile(out).feature("text")
    assert text.values == ("v0", "v1", "v2") and text.other == 1 and not text.complete
    assert text.count == 201


def test_a_header_only_csv_has_no_rows(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("a,b,c\n")
    proc = _run(path, "--output", tmp_path / "p.json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"otel-mlmon profile: error: {path} has no rows"
    assert not (tmp_path / "p.json").exists()
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    proc = _run(empty, "--output", tmp_path / "p.json")
    assert proc.returncode == 2 and proc.stderr.strip() == f"otel-mlmon profile: error: {empty} is empty"


def test_bins_and_top_k_are_checked_against_the_limits_by_their_names(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"a": np.arange(2000.0)}).to_csv(path, index=False)
    proc = _run(path, "--output", tmp_path / "p.json", "--bins", "1000000000")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("otel-mlmon profile: error: --bins 1000000000 is more than the limit of 1000 bins "
                                   "per feature (OTEL_MLMON_PROFILE_MAX_BINS)")  # fmt: skip
    proc = _run(path, "--output", tmp_path / "p.json", "--bins", "1")
    assert proc.returncode == 2 and proc.stderr.strip() == "otel-mlmon profile: error: --bins must be >= 2, got 1"
    proc = _run(path, "--output", tmp_path / "p.json", "--top-k", "20000")
    assert proc.returncode == 2 and "--top-k 20000 is more than the limit of 10000" in proc.stderr
    # the largest --bins the limit allows builds a profile that loads (as many bins as the
    # builder's fine grid resolves: 512 for 2000 distinct values)
    assert main(["profile", str(path), "--output", str(tmp_path / "fine.json"), "--bins", "1000"]) == 0
    assert 10 < load_profile(tmp_path / "fine.json").feature("a").n_bins <= 1000


def test_chunks_are_bounded_in_values_for_wide_files(tmp_path, monkeypatch):
    columns = 500
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(300, columns)), columns=[f"c{i}" for i in range(columns)])
    path = tmp_path / "wide.csv"
    frame.to_csv(path, index=False)
    monkeypatch.setattr(drift_cli, "MAX_CELLS", 50_000)  # 100 rows of 500 columns per chunk
    seen = []
    original = drift_cli._csv_chunks_pandas
    monkeypatch.setattr(drift_cli, "_csv_chunks_pandas", lambda p, rows, *a: seen.append(rows) or original(p, rows, *a))
    assert main(["profile", str(path), "--output", str(tmp_path / "p.json"), "--chunk-size", "100000"]) == 0
    assert seen == [100] and load_profile(tmp_path / "p.json").rows == 300


def test_a_column_name_beyond_the_value_length_is_refused(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a," + "n" * 5000 + "\n1,2\n")
    proc = _run(path, "--output", tmp_path / "p.json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "has a value of 5000 characters in the feature names; the limit is 1024" in proc.stderr
    assert DEFAULT_LIMITS.max_value_length == 1024
