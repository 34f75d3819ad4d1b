"""benchmarks/bench_cloudmon.py scores exactly as the reference scorer, and its split is sound.

Needs the shared data and reference scorer beside the project (``../shared``): skipped when they
are missing, except on CI (``CI=true``), where that fails.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "cloud-monitoring"
REFERENCE = ROOT.parent / "shared" / "bench" / "cloudmon_events.py"
DOMAINS = {"application-crash-rate-1", "middle-tier-api-dependency-latency"}


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
    spec.loader.exec_module(module)
    return module


def _require(path: Path) -> None:
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing")
        pytest.skip(f"{path} is missing")


@pytest.fixture(scope="module")
def bench():
    _require(DATA / "data")
    return _module("bench_cloudmon", ROOT / "benchmarks" / "bench_cloudmon.py")


@pytest.fixture(scope="module")
def reference(bench):
    _require(REFERENCE)
    return _module("cloudmon_events", REFERENCE)


@pytest.fixture(scope="module")
def pair(bench, reference):
    """The two small domains as loaded by the benchmark and by the reference."""
    ours, theirs = bench.load(DATA, DOMAINS), reference.load(str(DATA), DOMAINS)
    assert [s.name for s in ours] == [name for name, *_ in theirs]
    for s, (_, ts, values, labels) in zip(ours, theirs):
        assert s.timestamps == ts.tolist() and np.array_equal(s.values, values, equal_nan=True)
        assert np.array_equal(s.labels, labels)
    return ours, theirs


COUNTS = ("events", "hit", "alerts", "false_alarms")
FIGURES = COUNTS + ("precision", "recall", "f1", "fa_per_1000", "median_delay")


def test_scorer_agrees_with_the_reference(bench, reference, pair):
    ours, theirs = pair
    make = bench.DETECTORS["zscore-288"]()  # the same alerts go to both scorers
    total = bench.Tally()
    for s, series in zip(ours, theirs):
        tally = bench.score_series(s.labels, *bench.run(make, s))
        expected = reference.score([series], make)
        assert [tally.summary()[k] for k in COUNTS] == [expected[k] for k in COUNTS], s.name
        total += tally
    got, expected = total.summary(), reference.score(theirs, make)
    assert got["events"] > 0 and got["hit"] > 0 and got["false_alarms"] > 0
    for key in FIGURES:
        assert got[key] == expected[key] or (math.isnan(got[key]) and math.isnan(expected[key])), key


def test_zscore_baseline_is_the_references_where_no_value_is_missing(bench, reference, pair):
    # The reference's running sums keep a NaN forever; the benchmark's baseline skips it.
    ours, theirs = pair
    ref_make, our_make = reference.factory("zscore"), bench.DETECTORS["zscore-288"]()
    compared = 0
    for s, (_, ts, values, _) in zip(ours, theirs):
        if np.isnan(values).any():
            continue
        ref = ref_make()
        expected = [ref.update(float(v), float(t)) for v, t in zip(values, ts)]
        assert bench.run(our_make, s)[0].tolist() == expected, s.name
        compared += 1
    assert compared >= 20


def test_split_puts_every_series_in_one_part_and_both_parts_have_events(bench):
    series = bench.load(DATA)
    files = sorted(f"{p.parent.name}/{p.name}" for p in (DATA / "data").glob("*/*.csv"))
    assert sorted(s.name for s in series) == files  # each series once, so in exactly one part
    for domain in {name.split("/")[0] for name in files}:
        parts = [s.part for s in series if s.name.startswith(domain + "/")]
        assert parts == ["tune", "holdout"] * (len(parts) // 2) + ["tune"] * (len(parts) % 2)
    for part in ("tune", "holdout"):
        assert sum(len(bench.scored_events(s.labels)) for s in series if s.part == part) > 0, part


def test_command_line_reports_parts_gap_and_skips(bench, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["--detectors", "zscore-rest,ewma", "--domains", "middle-tier-api-dependency-latency", "--json", str(out)]
    bench.main(args)
    printed = capsys.readouterr().out
    assert "python benchmarks/bench_cloudmon.py --detectors zscore-rest,ewma" in printed
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"zscore-rest", "ewma"}
    for result in report["results"].values():
        assert set(result) == {"tune", "holdout", "all", "gap_f1"}
        assert result["all"]["events"] == result["tune"]["events"] + result["holdout"]["events"]
        assert result["gap_f1"] == pytest.approx(result["holdout"]["f1"] - result["tune"]["f1"])
    assert len(report["per_series"]["ewma"]) == 23
