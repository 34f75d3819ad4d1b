"""The contract every anomaly detector meets, checked on every detector the package exports.

Detectors are discovered from ``otel_mlmon.anomaly.__all__``: every exported class that
subclasses :class:`~otel_mlmon.anomaly.base.Detector` (fed floats with epoch timestamps) or
:class:`~otel_mlmon.anomaly.base.MultivariateDetector` (fed 3-dimensional vectors), each
constructed with no arguments. A new detector is covered as soon as it is exported.
"""

from __future__ import annotations

import copy
import doctest
import importlib
import inspect
import math
import pickle

import numpy as np
import pytest

import otel_mlmon.anomaly as anomaly
from otel_mlmon.anomaly.base import Detector, MultivariateDetector

START = 1_704_067_200.0  # Monday 2024-01-01 00:00 UTC
SPACING = 300.0  # five-minute points: 1600 of them span five and a half days (seasonal paths)
N = 1600


def _detector_classes() -> list[type]:
    found = []
    for name in anomaly.__all__:
        obj = getattr(anomaly, name)
        if inspect.isclass(obj) and issubclass(obj, (Detector, MultivariateDetector)) and not inspect.isabstract(obj):
            found.append(obj)
    return found


CLASSES = _detector_classes()


def test_discovery_finds_the_detectors():
    names = {cls.__name__ for cls in CLASSES}
    assert {"StaticThresholdDetector", "ZScoreDetector", "EWMADetector", "MADDetector", "DefaultDetector"} <= names


def _multivariate(cls: type) -> bool:
    return issubclass(cls, MultivariateDetector)


def _stream(cls: type, seed: int = 0, n: int = N):
    """(inputs, timestamps): a noisy stream with a daily cycle, spikes and a level shift."""
    rng = np.random.default_rng(seed)
    t = START + SPACING * np.arange(n)
    daily = 10.0 * np.sin(2 * np.pi * (t % 86_400.0) / 86_400.0)
    base = 100.0 + daily + rng.normal(0.0, 3.0, n)
    base[n // 2 :] += 25.0
    for i in (n // 3, n // 3 + 1, (3 * n) // 4):
        base[i] += 80.0
    if _multivariate(cls):
        x = np.column_stack([base, 0.5 * base + rng.normal(0.0, 2.0, n), rng.normal(0.0, 1.0, n)])
        x[n // 3] = [500.0, -300.0, 40.0]
        return x, t
    return base, t


def _feed(detector, inputs, timestamps) -> list[float]:
    return [detector.update(inputs[i], float(timestamps[i])) for i in range(len(inputs))]


@pytest.fixture(params=CLASSES, ids=lambda cls: cls.__name__)
def cls(request):
    return request.param


def test_constructible_without_arguments(cls):
    detector = cls()
    assert 0.0 < detector.threshold < 1.0
    assert cls.__name__ in repr(detector)


def test_scores_are_finite_floats_in_unit_interval(cls):
    inputs, t = _stream(cls)
    scores = _feed(cls(), inputs, t)
    assert all(type(s) is float for s in scores)
    assert all(math.isfinite(s) and 0.0 <= s <= 1.0 for s in scores)


def test_extreme_finite_values_keep_scores_in_range(cls):
    inputs, t = _stream(cls, n=600)
    inputs = inputs.copy()
    inputs[400:410] = 1e300
    inputs[410:420] = -1e300
    scores = _feed(cls(), inputs, t)
    assert all(math.isfinite(s) and 0.0 <= s <= 1.0 for s in scores)


def test_deterministic(cls):
    inputs, t = _stream(cls, seed=1)
    assert _feed(cls(), inputs, t) == _feed(cls(), inputs, t)


def test_does_not_mutate_its_input(cls):
    inputs, t = _stream(cls, seed=2)
    original = inputs.copy()
    detector = cls()
    if _multivariate(cls):
        for i in range(len(inputs)):
            detector.update(inputs[i], float(t[i]))  # a view into the caller's array
    else:
        cells = [np.array(v) for v in inputs]  # 0-d arrays
        for cell, ts in zip(cells, t):
            detector.update(cell, float(ts))
        assert [float(c) for c in cells] == original.tolist()
    np.testing.assert_array_equal(inputs, original)


def test_pickles_mid_stream(cls):
    inputs, t = _stream(cls, seed=3)
    half = len(inputs) * 2 // 3
    detector = cls()
    _feed(detector, inputs[:half], t[:half])
    copy = pickle.loads(pickle.dumps(detector))
    rest = _feed(detector, inputs[half:], t[half:])
    assert _feed(copy, inputs[half:], t[half:]) == rest
    assert max(rest) > 0.0  # the copy carried a live state, not a fresh one


def test_no_alarm_during_warm_up(cls):
    detector = cls()
    warm_up = getattr(detector, "warm_up", 0)
    inputs, t = _stream(cls, seed=4, n=max(warm_up, 2) + 50)
    inputs = inputs.copy()
    inputs[warm_up // 2] = inputs[warm_up // 2] * 50.0 + 1000.0  # an outlier inside the warm-up
    scores = _feed(detector, inputs, t)
    assert scores[:warm_up] == [0.0] * warm_up
    assert not any(detector.is_anomaly(s) for s in scores[:warm_up])


def test_reset_behaves_like_a_fresh_instance(cls):
    first, t = _stream(cls, seed=5)
    second, _ = _stream(cls, seed=6)
    detector = cls()
    _feed(detector, first, t)
    detector.reset()
    assert detector.ignored == 0
    assert _feed(detector, second, t) == _feed(cls(), second, t)


def test_non_finite_values_are_ignored_and_counted(cls):
    inputs, t = _stream(cls, seed=7, n=900)
    clean = _feed(cls(), inputs, t)
    detector = cls()
    bad = [math.nan, math.inf, -math.inf]
    scores, ignored = [], 0
    for i in range(len(inputs)):
        if i % 97 == 50:  # a non-finite value (or a vector with one) before this one
            value = bad[i % 3]
            if _multivariate(cls):
                value = inputs[i].copy()
                value[i % inputs.shape[1]] = bad[i % 3]
            assert detector.update(value, float(t[i])) == 0.0
            ignored += 1
        scores.append(detector.update(inputs[i], float(t[i])))
    assert detector.ignored == ignored
    assert scores == clean


def test_threshold_is_validated(cls):
    for bad in (0.0, 1.0, -0.1, 1.5, math.nan, "0.5", True, None):
        with pytest.raises(ValueError, match="threshold"):
            cls(threshold=bad)
        detector = cls()
        with pytest.raises(ValueError, match="threshold"):
            detector.threshold = bad
    detector = cls(threshold=0.9)
    assert detector.threshold == 0.9
    assert not detector.is_anomaly(0.89) and detector.is_anomaly(0.9)
    detector.threshold = 0.2
    assert detector.is_anomaly(0.2) and not detector.is_anomaly(0.19)


def test_warm_up_is_validated(cls):
    for bad in (-1, 1.5, "10"):
        with pytest.raises(ValueError, match="warm_up"):
            cls(warm_up=bad)


def test_scores_are_continuous_and_flag_an_obvious_anomaly(cls):
    inputs, t = _stream(cls, seed=8)
    detector = cls()
    scores = _feed(detector, inputs, t)
    after = scores[getattr(detector, "warm_up", 0) :]
    assert len(set(after)) > 0.5 * len(after)  # a continuous score, not a few levels
    assert 0.0 < float(np.median(after)) < detector.threshold
    spike = len(inputs) // 3 if _multivariate(cls) else (3 * len(inputs)) // 4
    assert detector.is_anomaly(scores[spike])


def _univariate_params() -> list:
    """Every exported univariate class (a deviation in standard deviations of one signal does not
    apply to a multivariate detector: IsolationForestDetector's ranking is tested in
    tests/test_isolation_forest.py)."""
    return [pytest.param(c, id=c.__name__) for c in CLASSES if not _multivariate(c)]


def _probe(detector, values, timestamp) -> list[float]:
    """The score of each value against the same learned state (a fresh copy per probe, so that
    a probe does not learn)."""
    return [copy.deepcopy(detector).update(float(v), timestamp) for v in values]


def _assert_ranked(scores) -> None:
    assert all(math.isfinite(s) and 0.0 <= s < 1.0 for s in scores), scores
    ties = [(i, a, b) for i, (a, b) in enumerate(zip(scores, scores[1:])) if not a < b]
    assert not ties, f"not strictly increasing at (index, score, next score): {ties[:5]}"


@pytest.mark.parametrize("univariate", _univariate_params())
def test_scores_rank_large_deviations_without_saturating(univariate):
    """From 3 to 20 standard deviations above a stationary level, the score strictly increases
    and stays below 1.0: a threshold can separate a blip from an outage (issue 13)."""
    detector = univariate()
    n = max(600, 2 * getattr(detector, "warm_up", 0))
    rng = np.random.default_rng(14)
    t = START + 60.0 * np.arange(n + 1)
    _feed(detector, rng.normal(100.0, 5.0, n), t[:n])
    scores = _probe(detector, 100.0 + 5.0 * np.linspace(3.0, 20.0, 35), float(t[n]))
    _assert_ranked(scores)


@pytest.mark.parametrize("level", [0, 32.0], ids=["zeros", "constant"])
@pytest.mark.parametrize("univariate", _univariate_params())
def test_scores_rank_after_a_constant_stretch(univariate, level):
    """After a constant stretch (no spread at all; of zeros: an integer count), other values
    still get finite scores below 1.0 that grow with their distance, up to the largest value."""
    detector = univariate()
    n = max(600, 2 * getattr(detector, "warm_up", 0))
    t = START + 60.0 * np.arange(n + 1)
    _feed(detector, [level] * n, t[:n])
    scores = _probe(detector, [level + d for d in (1, 2, 3, 5, 10, 100, 1e4, 1e8, 1e20, 1e99)], float(t[n]))
    _assert_ranked(scores)


@pytest.mark.parametrize("module", sorted({cls.__module__ for cls in CLASSES}))
def test_doctests(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module} has no doctest"
    assert result.failed == 0
