"""Behaviour of each detector beyond the shared contract (tests/test_detector_contract.py)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from otel_mlmon.anomaly import (
    DefaultDetector,
    EWMADetector,
    MADDetector,
    StaticThresholdDetector,
    ZScoreDetector,
    default_detector,
    default_incident_detector,
)

MONDAY = 1_704_067_200.0  # 2024-01-01 00:00 UTC
DAY = 86_400.0


def _alarms(detector, values, timestamps=None) -> list[int]:
    out = []
    for i, v in enumerate(values):
        score = detector.update(float(v), None if timestamps is None else float(timestamps[i]))
        if detector.is_anomaly(score):
            out.append(i)
    return out


# ---------------------------------------------------------------------------------------------
# StaticThresholdDetector


def test_static_scores_half_on_the_bound_and_rises_smoothly_beyond_it():
    detector = StaticThresholdDetector(upper=10.0, lower=0.0)  # scale: half-width 5
    scores = [detector.update(v) for v in (5.0, 9.0, 10.0, 11.0, 15.0, -5.0)]
    assert scores[2] == 0.5 and scores[5] == pytest.approx(1.0 - 0.5 / (1.0 + 5.0 / 1.25))  # t = d / softness
    assert scores[0] < scores[1] < scores[2] < scores[3] < scores[4] < 1.0
    assert [detector.is_anomaly(s) for s in scores] == [False, False, True, True, True, True]


def test_static_learns_bounds_once_then_never_moves():
    rng = np.random.default_rng(0)
    detector = StaticThresholdDetector(k=4.0)
    warm = rng.normal(10.0, 1.0, 50)
    assert _alarms(detector, warm) == []
    assert not detector.is_anomaly(detector.update(11.0))
    assert detector.is_anomaly(detector.update(16.0))
    # a level shift is never learned: a static rule keeps alarming
    assert len(_alarms(detector, rng.normal(20.0, 1.0, 200))) == 200


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"upper": 1.0, "lower": 2.0}, "lower must be < upper"),
        ({"upper": math.inf}, "upper must be a finite number"),
        ({"upper": 1.0, "scale": 0.0}, "scale must be a positive number"),
        ({"softness": -1.0}, "softness must be a positive number"),
        ({"warm_up": 1}, "warm_up must be an int >= 2"),
    ],
)
def test_static_validates_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StaticThresholdDetector(**kwargs)


# ---------------------------------------------------------------------------------------------
# ZScoreDetector, EWMADetector, MADDetector


def test_zscore_matches_a_rolling_window_reference_far_from_zero():
    rng = np.random.default_rng(1)
    values = 1e6 + rng.normal(0.0, 1.0, 3000)  # large offset: rounding must not accumulate
    detector = ZScoreDetector(window=50, k=3.0)
    scores = np.array([detector.update(v) for v in values])
    series = pd.Series(values)
    mean = series.rolling(50).mean().shift(1).to_numpy()
    std = series.rolling(50).std().shift(1).to_numpy()
    z = np.abs(values - mean) / std
    np.testing.assert_allclose(scores[50:], (z / (z + 3.0))[50:], rtol=1e-6)


def test_ewma_matches_pandas_exponentially_weighted_statistics():
    rng = np.random.default_rng(2)
    values = rng.normal(5.0, 2.0, 500)
    detector = EWMADetector(alpha=0.1, k=3.0, warm_up=0)
    scores = np.array([detector.update(v) for v in values])
    series = pd.Series(values)
    mean = series.ewm(alpha=0.1, adjust=False).mean().shift(1).to_numpy()
    var = series.ewm(alpha=0.1, adjust=False).var(bias=True).shift(1).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):  # the first value has no variance
        z = np.abs(values - mean) / np.sqrt(var)
        expected = z / (z + 3.0)
    np.testing.assert_allclose(scores[2:], expected[2:], rtol=1e-9)


def test_mad_starts_exact_then_moves_a_bounded_step_per_value():
    rng = np.random.default_rng(3)
    warm = rng.normal(50.0, 2.0, 30)
    detector = MADDetector(rate=0.05, warm_up=30)
    for v in warm:
        detector.update(v)
    median = float(np.median(warm))
    mad = float(np.median(np.abs(warm - median)))
    assert detector._median == pytest.approx(median) and detector._mad == pytest.approx(mad)
    assert detector.is_anomaly(detector.update(1e9))
    assert detector._median == pytest.approx(median + 0.05 * mad)  # one wild value: one step


def test_mad_follows_a_level_shift_and_stops_alarming():
    rng = np.random.default_rng(4)
    detector = MADDetector()
    _alarms(detector, rng.normal(0.0, 1.0, 500))
    alarms = _alarms(detector, rng.normal(10.0, 1.0, 1500))
    assert alarms and alarms[0] == 0 and max(alarms) < 1000


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (ZScoreDetector, {"window": 1}, "window must be an int >= 2"),
        (ZScoreDetector, {"k": 0}, "k must be a positive number"),
        (EWMADetector, {"alpha": 1.0}, r"alpha must be in \(0, 1\)"),
        (MADDetector, {"rate": 0.0}, r"rate must be in \(0, 1\)"),
        (MADDetector, {"warm_up": 2}, "warm_up must be an int >= 3"),
    ],
)
def test_baselines_validate_hyperparameters(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


# ---------------------------------------------------------------------------------------------
# DefaultDetector


def _per_call(rng, n, factor=None, at=None):
    """Per-call latencies (s): log-normal service times with GC bursts (a pause delays a few
    consecutive calls, decaying), 50 calls/s."""
    latency = 0.025 * rng.lognormal(0.0, 0.3, n)
    if factor is not None:
        latency[at:] *= factor
    i = 0
    while True:
        i += int(rng.integers(80, 250))
        if i >= n:
            break
        pause = 0.03 * rng.lognormal(0.0, 0.5)
        for j in range(int(pause / 0.02) + 1):
            if i + j < n:
                latency[i + j] += max(pause - 0.02 * j, 0.0)
    return latency, MONDAY + 9 * 3600 + 0.02 * np.arange(n)


def test_default_is_quiet_on_healthy_per_call_latency_with_gc_pauses():
    latency, t = _per_call(np.random.default_rng(5), 20_000)
    assert _alarms(default_detector(), latency, t) == []


def test_default_flags_a_stall_at_once_and_not_its_recovery():
    latency, t = _per_call(np.random.default_rng(6), 6000)
    latency[4000:4150] += 0.1  # every call 100 ms slower, then recovery
    incidents = default_incident_detector(onset=5)  # per-call signals, as the instrumentation sets it
    verdicts = [incidents.update(float(v), float(ts)) for v, ts in zip(latency, t)]
    alerts = [i for i, v in enumerate(verdicts) if v.alert]
    assert len(alerts) == 1 and 4004 <= alerts[0] < 4050  # within 50 calls; none at recovery
    assert not verdicts[4160].in_incident


def _stalls(seed):
    """~0.1 ms calls, log-scale sigma 0.15, about 1 % of them stalled 3-5 ms (scheduler
    contention): a heavy, bimodal upper tail."""
    rng = np.random.default_rng(seed)
    latency = rng.lognormal(math.log(1e-4), 0.15, 400)
    stalls = rng.random(400) < 0.01
    latency[stalls] = rng.uniform(3e-3, 5e-3, stalls.sum())
    return latency, 1.7e9 + 0.01 * np.arange(400)


@pytest.mark.parametrize("seed", range(8))
def test_default_flags_a_value_far_beyond_the_largest_seen_however_heavy_the_tail(seed):
    latency, t = _stalls(seed)
    scores = {}
    for value in (0.2, 0.03):  # 2000x the median: ~50x the largest stall; and ~7x
        detector = default_detector()
        _alarms(detector, latency, t)  # the first stalls may alarm: the tail is learned
        scores[value] = detector.update(value, t[-1] + 1.0)
    assert scores[0.2] >= 0.8 and scores[0.03] >= 0.6
    # the tail's maximum learns a repeated wild value, a bounded step at a time
    assert detector.update(0.03, t[-1] + 1.01) < scores[0.03]


def test_default_handles_zero_inflated_rates_without_constant_alarms():
    rng = np.random.default_rng(9)
    rates = np.where(rng.random(3000) < 0.1, rng.integers(1, 3, 3000) / 50.0, 0.0)  # 1-2 failures/50
    detector = default_detector()
    assert _alarms(detector, rates) == []
    assert detector.is_anomaly(detector.update(0.4))  # an error burst


@pytest.mark.parametrize("spacing", [None, 300.0], ids=["no timestamps", "5-minute"])
def test_default_flags_a_change_after_a_constant_stretch(spacing):
    n = 5 * 288  # five days at five-minute spacing: the seasonal profile is in use
    t = None if spacing is None else MONDAY + spacing * np.arange(n + 1)
    detector = default_detector()
    assert _alarms(detector, [32.0] * n, t) == []
    assert detector.is_anomaly(detector.update(64.0, None if t is None else float(t[-1])))


def test_default_ends_an_episode_without_a_second_alarm():
    rng = np.random.default_rng(10)
    values = rng.normal(100.0, 5.0, 3000)
    values[1500:1600] += 75.0  # a transient episode: flagged until confirmed as a level, not at its end
    alarms = _alarms(default_detector(), values)
    assert alarms and alarms[0] == 1500
    assert all(a < 1530 for a in alarms)


@pytest.mark.parametrize("shift", [75.0, -75.0])
def test_default_accepts_a_confirmed_new_level(shift):
    rng = np.random.default_rng(14)
    values = rng.normal(100.0, 5.0, 3000)
    values[1500:] += shift  # a lasting change: after 30 values it is the new normal
    alarms = _alarms(default_detector(), values)
    assert alarms[0] == 1500 and alarms[-1] < 1530


def test_default_works_without_timestamps_and_with_unusable_ones():
    rng = np.random.default_rng(11)
    values = rng.normal(10.0, 1.0, 2000)
    values[1500:] += 15.0
    odd = [None, math.nan, math.inf, "not a time", -1.0, 1e300]
    detector = default_detector()
    alarms = [i for i, v in enumerate(values) if detector.is_anomaly(detector.update(v, odd[i % len(odd)]))]
    assert alarms and 1500 <= alarms[0] < 1520 and all(a >= 1500 for a in alarms)


def test_default_detector_returns_fresh_independent_instances():
    first, second = default_detector(), default_detector()
    assert first is not second and isinstance(first, DefaultDetector)
    for v in np.random.default_rng(12).normal(size=100):
        first.update(v)
    assert second.seen == 0 and first.seen == 100


def test_default_pickles_mid_shift():
    rng = np.random.default_rng(13)
    values = rng.normal(50.0, 2.0, 1200)
    values[600:] += 30.0
    detector = default_detector()
    _alarms(detector, values[:640])
    assert detector._before is not None  # a confirmed shift, the old level remembered
    copy = pickle.loads(pickle.dumps(detector))
    assert [copy.update(v) for v in values[640:]] == [detector.update(v) for v in values[640:]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"warm_up": 2}, "warm_up must be an int >= 3"),
        ({"rate": 1.5}, r"rate must be in \(0, 1\)"),
        ({"tail_rate": 0}, r"tail_rate must be in \(0, 1\)"),
        ({"confirm": 1}, "confirm must be an int >= 2"),
        ({"remember": -1}, "remember must be an int >= 0"),
        ({"threshold": 1.0}, r"threshold must be in \(0, 1\)"),
        ({"sustained": 1}, "sustained must be a bool"),
    ],
)
def test_default_validates_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DefaultDetector(**kwargs)
