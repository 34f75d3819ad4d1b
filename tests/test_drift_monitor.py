"""DriftMonitor: data-quality events, schema changes, no mutation of X, sampling budget, caps,
bounded memory, threads, windows, and detection power on a dataset shipped with scikit-learn."""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from otel_mlmon.drift import PSI, DriftMonitor, KolmogorovSmirnov, build_profile

UNLIMITED = dict(sample_rows=10**9, max_rows_per_second=None)


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    n = 20_000
    return pd.DataFrame({
        "age": rng.normal(40, 10, n),
        "income": rng.lognormal(10, 0.5, n),
        "city": rng.choice(["paris", "lyon", "nice"], n),
    })  # fmt: skip


@pytest.fixture(scope="module")
def profile(frame):
    return build_profile(frame, predictions=(frame["age"] > 40).astype(int))


def quality(monitor):
    return monitor.drain_counts().data_quality


# --------------------------------------------------------------------------- data quality
def test_nan_inf_and_out_of_range_are_counted(profile, frame):
    monitor = DriftMonitor(profile, **UNLIMITED)
    batch = frame.iloc[:10].copy()
    batch.loc[batch.index[0], "age"] = np.nan
    batch.loc[batch.index[1], "age"] = np.inf
    batch.loc[batch.index[2], "age"] = -np.inf
    batch.loc[batch.index[3], "age"] = 1e6  # above the reference maximum
    batch.loc[batch.index[4], "income"] = -5.0  # below the reference minimum
    assert monitor.update(batch) == 10
    counts = monitor.drain_counts()
    assert counts.data_quality == {("age", "nan"): 1, ("age", "inf"): 2, ("age", "out_of_range"): 1,
                                   ("income", "out_of_range"): 1}  # fmt: skip
    assert counts.rows == 10
    age_bins = sum(v for (f, _), v in counts.bins.items() if f == "age")
    assert age_bins == 7  # the finite values, the out-of-range one in the overflow bin
    assert counts.bins[("age", "overflow")] == 1 and counts.bins[("income", "underflow")] == 1
    assert ("age", "underflow") not in counts.bins


def test_values_beyond_the_reference_range_have_their_own_bins():
    rng = np.random.default_rng(5)
    reference = rng.uniform(0.0, 1.0, size=(10_000, 2))
    monitor = DriftMonitor(build_profile(reference), **UNLIMITED)
    batch = rng.uniform(0.0, 1.0, size=(1000, 2))
    batch[:100, 0] = -0.5 - rng.uniform(size=100)  # 100 below the minimum
    batch[100:350, 0] = 1.5 + rng.uniform(size=250)  # 250 above the maximum
    monitor.update(batch)
    counts = monitor.drain_counts()
    x0 = {b: v for (f, b), v in counts.bins.items() if f == "x0"}
    assert x0["underflow"] == 100 and x0["overflow"] == 250 and sum(x0.values()) == 1000
    assert counts.data_quality[("x0", "out_of_range")] == 350
    shares = monitor.reference_shares()
    labels = [b for f, b in shares if f == "x0"]
    assert labels[0] == "underflow" and labels[-1] == "overflow" and len(labels) == monitor.profile.feature("x0").n_bins + 2
    assert shares[("x0", "underflow")] == 0.0 == shares[("x0", "overflow")]
    assert sum(v for (f, _), v in shares.items() if f == "x0") == pytest.approx(1.0, abs=1e-12)
    # PSI sees the tails: 35% of rows where the reference has none
    current = np.array([x0.get(b, 0) for b in labels])
    reference = np.array([shares[("x0", b)] for b in labels])
    psi = monitor.observations().scores[("x0", "psi")]
    assert psi == pytest.approx(PSI()(reference, current).statistic, rel=1e-12) and psi > 2.0


def test_every_feature_is_exported_up_to_the_cap_fixed_at_load():
    rng = np.random.default_rng(6)
    wide = rng.normal(size=(5_000, 70))
    monitor = DriftMonitor(build_profile(wide), **UNLIMITED)  # default cap: 64
    assert monitor.max_features == 64
    batch = rng.normal(size=(500, 70))
    batch[:, 69] += 3.0  # the most drifted feature is beyond the cap: the exported set stays
    batch[:, 65] = np.nan
    monitor.update(batch)
    counts = monitor.drain_counts()
    exported = {f"x{j}" for j in range(64)}
    assert {f for f, _ in counts.bins} == exported
    assert {f for f, _ in monitor.reference_shares()} == exported
    assert counts.data_quality[("_other", "nan")] == 500


def test_missing_values_and_unseen_categories(profile, frame):
    monitor = DriftMonitor(profile, **UNLIMITED)
    batch = frame.iloc[:6].copy()
    batch["city"] = ["paris", None, "tokyo", "tokyo", np.nan, "nice"]
    monitor.update(batch)
    counts = monitor.drain_counts()
    assert counts.data_quality == {("city", "missing"): 2, ("city", "unseen_category"): 2}
    other_bin = profile.feature("city").n_bins - 1
    assert counts.bins[("city", other_bin)] == 2


def test_missing_values_in_an_object_numeric_column():
    data = {"a": np.array([1.0, 2.0, 3.0, 4.0] * 100, dtype=object)}
    monitor = DriftMonitor(build_profile(data), **UNLIMITED)
    monitor.update({"a": np.array([1.0, None, 2.0, float("nan")], dtype=object)})
    assert quality(monitor) == {("a", "missing"): 1, ("a", "nan"): 1}


def test_schema_change_by_count(profile, frame):
    positional = build_profile(frame[["age", "income"]].to_numpy())
    monitor = DriftMonitor(positional, **UNLIMITED)
    monitor.update(np.zeros((5, 3)))
    counts = monitor.drain_counts()
    assert counts.data_quality == {("_input", "schema_change"): 5} and counts.bins == {}
    monitor.update(frame[["age", "income"]].to_numpy()[:5])
    assert quality(monitor) == {}


def test_schema_change_by_names(profile, frame):
    monitor = DriftMonitor(profile, **UNLIMITED)
    renamed = frame.iloc[:4].rename(columns={"income": "salary"})
    monitor.update(renamed)
    assert quality(monitor) == {("income", "schema_change"): 4, ("_input", "schema_change"): 4}
    monitor.update(frame.iloc[:4][["city", "income", "age"]])  # reordered: matched by name
    assert quality(monitor) == {}


def test_schema_change_by_dtypes(profile, frame):
    monitor = DriftMonitor(profile, **UNLIMITED)
    batch = frame.iloc[:3].copy()
    batch["age"] = ["40", "41", "oops"]
    batch["income"] = batch["income"].astype("int64")  # int vs float: not a change
    batch["city"] = batch["city"].astype("category")  # category vs text: not a change
    monitor.update(batch)
    events = quality(monitor)
    assert events[("age", "schema_change")] == 3 and ("income", "schema_change") not in events
    assert ("city", "schema_change") not in events


def test_x_is_never_mutated(profile, frame):
    monitor = DriftMonitor(profile, sample_rows=50, max_rows_per_second=None)
    batch = frame.iloc[:500].copy()
    batch.iloc[::7, 0] = np.nan
    batch.iloc[::11, 1] = np.inf
    before = batch.copy(deep=True)
    monitor.update(batch, predictions=np.ones(500, dtype=int))
    pd.testing.assert_frame_equal(batch, before)
    array = np.random.default_rng(1).normal(size=(300, 2))
    array[::5, 0] = np.nan
    array_before = array.copy()
    positional = DriftMonitor(build_profile(array), **UNLIMITED)
    positional.update(array)
    assert np.array_equal(array, array_before, equal_nan=True)


def test_without_profile_only_data_quality():
    monitor = DriftMonitor(None, **UNLIMITED)
    batch = pd.DataFrame({"a": [1.0, np.nan, np.inf], "b": ["x", None, "y"]})
    monitor.update(batch)
    counts = monitor.drain_counts()
    assert counts.data_quality == {("a", "nan"): 1, ("a", "inf"): 1, ("b", "missing"): 1}
    assert counts.bins == {} and counts.rows == 3
    observations = monitor.observations()
    assert observations.scores == {} and observations.share is None and observations.drifted == ()
    monitor.update(batch.rename(columns={"b": "c"}))  # schema against the first batch
    assert quality(monitor)[("b", "schema_change")] == 3


def test_output_of_the_wrong_kind_is_a_schema_change(profile, frame):
    monitor = DriftMonitor(profile, **UNLIMITED)  # reference output: labels 0/1
    monitor.update(frame.iloc[:10], predictions=np.linspace(0.05, 0.95, 10))  # scores instead
    counts = monitor.drain_counts()
    assert counts.data_quality == {("_output", "schema_change"): 10}
    assert not any(f == "_output" for f, _ in counts.bins)
    monitor.update(frame.iloc[:10], predictions=np.array([0.0, 1.0] * 5))  # float labels are fine
    assert sum(v for (f, _), v in monitor.drain_counts().bins.items() if f == "_output") == 10


def test_target_stands_in_for_a_missing_output_reference(frame):
    labels = (frame["age"] > 40).map({True: "old", False: "young"})
    monitor = DriftMonitor(build_profile(frame, y=labels), **UNLIMITED)
    monitor.update(frame.iloc[:300], predictions=np.array(["old"] * 300))
    observations = monitor.observations()
    assert observations.output_drifted and ("_output", "chi_square") in observations.scores


def test_sparse_and_mapping_inputs():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(2_000, 4))
    X[X < 0.5] = 0.0
    monitor = DriftMonitor(build_profile(X), **UNLIMITED)
    monitor.update(sparse.csr_matrix(X[:500]))
    monitor.update({f"x{j}": X[500:600, j] for j in range(4)})
    counts = monitor.drain_counts()
    assert counts.rows == 600 and sum(v for (f, _), v in counts.bins.items() if f == "x2") == 600


# --------------------------------------------------------------------------- budget and caps
def test_row_sampling_budget_and_rate_limit(profile, frame):
    monitor = DriftMonitor(profile, sample_rows=64, max_rows_per_second=1000)
    big = frame.iloc[:5000]
    profiled = [monitor.update(big, timestamp=100.0 + 0.01 * i) for i in range(100)]
    assert set(profiled) == {0, 64}  # whole samples or nothing
    assert profiled[:15] == [64] * 15  # a burst of one second's budget, then about 1000 rows/s
    assert 1000 + 900 <= sum(profiled) <= 1000 + 1000 + 64
    counts = monitor.drain_counts()
    assert counts.rows == sum(profiled)
    assert sum(v for (f, _), v in counts.bins.items() if f == "city") == sum(profiled)
    assert sum(v for (f, _), v in counts.bins.items() if f == "_output") == 0  # no predictions passed


def test_sampled_rows_are_spread_over_the_batch(profile):
    sorted_batch = pd.DataFrame({"age": np.linspace(0, 80, 10_000), "income": np.full(10_000, 2e4),
                                 "city": ["paris"] * 10_000})  # fmt: skip
    monitor = DriftMonitor(profile, sample_rows=100, max_rows_per_second=None)
    monitor.update(sorted_batch)
    bins = monitor.drain_counts().bins
    age = [bins.get(("age", b), 0) for b in ["underflow", *range(profile.feature("age").n_bins), "overflow"]]
    assert sum(age) == 100 and age[0] + age[1] > 0 and age[-2] + age[-1] > 0  # both ends of the sorted batch


def test_cardinality_caps_on_wide_inputs():
    rng = np.random.default_rng(2)
    wide = rng.normal(size=(5_000, 60))
    monitor = DriftMonitor(build_profile(wide), max_features=8, top_k=3, **UNLIMITED)
    batch = rng.normal(size=(400, 60))
    batch[:, 40] += 2.0  # beyond the exported features
    batch[:, 50] = np.nan
    monitor.update(batch)
    counts = monitor.drain_counts()
    assert {f for f, _ in counts.bins} == {f"x{j}" for j in range(8)}
    assert counts.data_quality[("_other", "nan")] == 400 and counts.data_quality[("_other", "out_of_range")] >= 20
    assert {f for f, _ in counts.data_quality} <= {"_other", *(f"x{j}" for j in range(8))}
    observations = monitor.observations()
    assert {f for f, _ in observations.scores} <= {"x40", *(f"x{j}" for j in range(60))}
    assert len({f for f, _ in observations.scores}) == 3 and observations.drifted[0] == "x40"


def test_bounded_memory(profile, frame):
    monitor = DriftMonitor(profile, window_rows=500, **UNLIMITED)
    rng = np.random.default_rng(3)
    columns = {name: frame[name].to_numpy() for name in frame.columns}

    def run(n):
        for i in range(n):  # a new frame per call, as in production (pandas tracks the views of a
            rows = rng.integers(0, len(frame), 50)  # long-lived frame itself, up to 500 per block)
            batch = pd.DataFrame({name: values[rows] for name, values in columns.items()})
            monitor.update(batch, predictions=np.ones(50, dtype=int))
            if i % 50 == 0:
                monitor.observations()
                monitor.drain_counts()

    run(300)  # warm up caches
    gc.collect()
    tracemalloc.start()
    start, _ = tracemalloc.get_traced_memory()
    run(600)
    gc.collect()  # pandas frames hold reference cycles
    first, _ = tracemalloc.get_traced_memory()
    run(1800)
    gc.collect()
    second, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # pandas' own caches grow a little and level off; anything kept per call or per row would
    # grow three times as much over the three times longer second run
    assert second - first < (first - start) + 16 * 1024, (first - start, second - first)
    assert len(monitor._window._ring) <= monitor.window_buckets and len(monitor._plans) <= 8


def test_concurrent_update_and_collection_conserve_counts(profile, frame):
    monitor = DriftMonitor(profile, **UNLIMITED)
    batch = frame.iloc[:20]
    drained = []
    stop = threading.Event()

    def collect():
        while not stop.wait(0.0005):
            drained.append(monitor.drain_counts())
            monitor.observations()

    thread = threading.Thread(target=collect)
    thread.start()
    updates = 0
    deadline = time.monotonic() + 20
    while (updates < 500 or len(drained) < 20) and time.monotonic() < deadline:
        monitor.update(batch)
        updates += 1
    stop.set()
    thread.join()
    drained.append(monitor.drain_counts())
    assert len(drained) > 20  # collections really interleaved with updates
    assert sum(c.rows for c in drained) == 20 * updates
    assert sum(v for c in drained for (f, _), v in c.bins.items() if f == "age") == 20 * updates


def test_time_window_expires(profile, frame):
    monitor = DriftMonitor(profile, window_rows=None, window_seconds=60, **UNLIMITED)
    for i in range(20):
        monitor.update(frame.iloc[i * 100: (i + 1) * 100], timestamp=1000.0 + i)
    assert monitor.observations(now=1020.0).window_rows == 2000
    assert monitor.observations(now=1200.0).window_rows == 0


def test_scores_equal_the_statistics_on_the_drained_bins(profile, frame):
    monitor = DriftMonitor(profile, window_rows=100_000, **UNLIMITED)
    shifted = frame.iloc[:3000].copy()
    shifted["age"] += 5
    monitor.update(shifted, predictions=(shifted["age"] > 40).astype(int))
    observations = monitor.observations()
    bins = monitor.drain_counts().bins
    age = profile.feature("age")
    current = np.array([bins.get(("age", b), 0) for b in range(age.n_bins)])
    assert observations.scores[("age", "psi")] == pytest.approx(PSI()(age.counts, current).statistic, rel=1e-12)
    assert observations.p_values[("age", "ks")] == pytest.approx(KolmogorovSmirnov()(age.counts, current).p_value, rel=1e-12)
    assert "age" in observations.drifted and observations.output_drifted
    assert ("_output", "chi_square") in observations.scores and ("city", "chi_square") in observations.scores
    assert observations.share == pytest.approx(1 / 3)


def test_bad_arguments_raise(profile):
    for kwargs in ({"sample_rows": 0}, {"top_k": -1}, {"alpha": 1.5}, {"methods": ["nope"]},
                   {"window_rows": None}, {"max_rows_per_second": 0}):  # fmt: skip
        with pytest.raises(ValueError):
            DriftMonitor(profile, **kwargs)
    with pytest.raises(TypeError):
        DriftMonitor({"features": []})


# --------------------------------------------------------------------------- detection power
@pytest.fixture(scope="module")
def cancer():
    data = load_breast_cancer()
    X, y = data.data, data.target
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    return X, model


def _traffic(X, rng, rows):
    return X[rng.integers(0, len(X), rows)]


@pytest.mark.parametrize("seed", range(3))
def test_half_sd_shift_in_one_feature_is_flagged_within_2000_rows(cancer, seed):
    X, model = cancer
    rng = np.random.default_rng(seed)
    reference = _traffic(X, rng, 20_000)
    monitor = DriftMonitor(build_profile(reference, predictions=model.predict_proba(reference)))  # defaults
    feature = int(rng.integers(0, X.shape[1]))
    sd = reference[:, feature].std()
    t = 0.0
    for _ in range(20):  # 2000 unshifted rows first, in 100-row calls at 1000 rows/s
        monitor.update(_traffic(X, rng, 100), timestamp=t)
        t += 0.1
    assert monitor.observations().drifted == ()
    flagged_after = None
    for step in range(1, 21):
        batch = _traffic(X, rng, 100)
        batch[:, feature] += 0.5 * sd
        monitor.update(batch, predictions=model.predict_proba(batch), timestamp=t)
        t += 0.1
        if f"x{feature}" in monitor.observations().drifted:
            flagged_after = step * 100
            break
    assert flagged_after is not None and flagged_after <= 2000


def test_unshifted_traffic_alarms_in_at_most_one_percent_of_windows(cancer):
    X, model = cancer
    rng = np.random.default_rng(42)
    reference = _traffic(X, rng, 20_000)
    monitor = DriftMonitor(build_profile(reference, predictions=model.predict_proba(reference)))
    windows = alarms = 0
    t = 0.0
    for _ in range(200):  # 200 windows of 1000 rows
        for _ in range(10):
            batch = _traffic(X, rng, 100)
            monitor.update(batch, predictions=model.predict_proba(batch), timestamp=t)
            t += 0.1
        observations = monitor.observations()
        windows += 1
        alarms += bool(observations.drifted) or observations.output_drifted
    assert windows == 200 and alarms <= 2
