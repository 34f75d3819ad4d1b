"""Reference profiles from outside are bounded (issue 17, part 6): a profile beyond the size
limits is one ``ValueError`` naming the limit and the value, raised before anything big is built
(time and Python memory measured here: ``perf_counter`` and ``tracemalloc``); JSON nested too
deep is a ``ValueError`` too; and through the instrumentation a profile is loaded off the
caller's thread — ``predict`` never waits for it — and a failed load is counted, never raised."""

from __future__ import annotations

import json
import os
import time
import tracemalloc

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import otel_mlmon
from otel_mlmon import semconv
from otel_mlmon._internal.config import Settings
from otel_mlmon.drift import ReferenceProfile, attach_profile, build_profile, load_profile
from otel_mlmon.drift.profile_limits import DEFAULT_LIMITS, ProfileLimits, check_text
from otel_mlmon.quality.tracker import hub

TIME_S = 1.0  # correctness bounds, generous for a loaded 2-core machine
MEMORY_B = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def base():
    """A small valid profile as parsed JSON (2 numeric features), to make big ones from."""
    rng = np.random.default_rng(0)
    return json.loads(build_profile(rng.normal(size=(1000, 2))).to_json())


def _empty_numeric(feature, name=None):
    feature.update(edges=[], counts=[0], count=0, rows=0, min=None, max=None, mean=None, std=None, sketch=None)
    if name is not None:
        feature["name"] = name
    return feature


def _million_bins(base, integer, n=1_000_000):
    data = json.loads(json.dumps(base))
    feature = _empty_numeric(data["features"][0])
    feature["edges"] = list(range(1, n)) if integer else np.sort(np.random.default_rng(1).uniform(0, 1, n - 1)).tolist()
    feature["counts"] = [0] * n
    return json.dumps(data, separators=(",", ":"))


def _many_features(base, n, kind):
    data = json.loads(json.dumps(base))
    if kind == "numeric":
        template = _empty_numeric(data["features"][0])
    else:
        template = {"name": "", "kind": "categorical", "dtype": "object", "dtype_class": "string", "rows": 0, "count": 0,
                    "missing": 0, "values": [], "counts": [], "other": 0, "complete": True}  # fmt: skip
    data["features"] = [dict(template, name=f"f{i}") for i in range(n)]
    return json.dumps(data, separators=(",", ":"))


def _rejected(load, match):
    """Run ``load``; it must raise ValueError matching ``match`` within the time and memory bounds."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=match):
            load()
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < TIME_S, f"rejected in {elapsed:.2f} s"
    assert peak < MEMORY_B, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("integer", [False, True], ids=["32MB-float-edges", "compact-int-edges"])
def test_a_million_bin_profile_is_rejected_quickly_in_little_memory(tmp_path, base, integer):
    assert ReferenceProfile.from_json(_million_bins(base, integer, n=50)).features[0].n_bins == 50  # a valid shape
    text = _million_bins(base, integer)
    path = tmp_path / "profile.json"
    path.write_text(text)
    if len(text) > DEFAULT_LIMITS.max_bytes:  # the profile: its size is checked before reading
        match = r"reference profile file .* is \d+ bytes; the limit is 16777216 \(OTEL_MLMON_PROFILE_MAX_BYTES\)"
    else:  # under the byte limit: the arrays are counted on the text before json builds them
        match = r"has 1000000 bins in feature 'x0'; the limit is 1000 \(OTEL_MLMON_PROFILE_MAX_BINS\)"
    _rejected(lambda: load_profile(path), match)
    # the same text attached to a model (held in memory) is rejected as fast
    _rejected(lambda: ReferenceProfile.from_json(text), "OTEL_MLMON_PROFILE_MAX_B")


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_a_100k_feature_profile_is_rejected_quickly_in_little_memory(tmp_path, base, kind):
    assert len(ReferenceProfile.from_json(_many_features(base, 50, kind)).features) == 50  # a valid shape
    text = _many_features(base, 100_000, kind)
    path = tmp_path / "profile.json"
    path.write_text(text)
    if len(text) > DEFAULT_LIMITS.max_bytes:
        match = r"is \d+ bytes; the limit is 16777216 \(OTEL_MLMON_PROFILE_MAX_BYTES\)"
    else:
        match = r"has at least 99998 features; the limit is 1000 \(OTEL_MLMON_PROFILE_MAX_FEATURES\)"
    _rejected(lambda: load_profile(path), match)
    _rejected(lambda: ReferenceProfile.from_json(text), "OTEL_MLMON_PROFILE_MAX_")


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_json_is_a_value_error(tmp_path, opener):
    closer = "]" if opener == "[" else "}"
    text = opener * 200_000 + "1" + closer * 200_000
    with pytest.raises(ValueError, match="nested too deeply"):
        ReferenceProfile.from_json(text)
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(ValueError, match="nested too deeply"):
        load_profile(path)


def test_each_limit_is_checked_field_by_field_with_a_clear_message(base):
    """Under the text scan (few elements, or whitespace it does not read), the validation of
    the parsed fields enforces every limit before arrays and monitors are built."""
    rng = np.random.default_rng(2)
    frame = {"x": rng.normal(size=500), "c": np.array([f"v{i % 40}" for i in range(500)], dtype=object)}
    profile = build_profile(frame, n_bins=10)
    text = profile.to_json(indent=1)  # indented: the text scan sees "name": and arrays across lines
    assert ReferenceProfile.from_json(text) == profile
    parsed = json.loads(text)
    cases = [  # limits, message from the text scan (from_json), message from the fields (from_dict)
        (ProfileLimits(max_bytes=1000), r"is \d+ characters; the limit is 1000 \(OTEL_MLMON_PROFILE_MAX_BYTES\)", None),
        (ProfileLimits(max_features=1), r"has 2 features; the limit is 1 \(OTEL_MLMON_PROFILE_MAX_FEATURES\)", "same"),
        (ProfileLimits(max_bins=9), r"has 10 bins in feature 'x'; the limit is 9 \(OTEL_MLMON_PROFILE_MAX_BINS\)",
         r"has n_bins 10; the limit is 9 \(OTEL_MLMON_PROFILE_MAX_BINS\)"),
        (ProfileLimits(max_bins=100), r"has 256 sketch edges in feature 'x'; the limit is 100 \(OTEL_MLMON_PROFILE_MAX_BINS\)",
         "same"),
        (ProfileLimits(max_categories=30), r"has 40 categories in feature 'c'; the limit is 30 \(OTEL_MLMON_PROFILE_MAX_CATEGORIES\)", "same"),
        (ProfileLimits(max_value_length=1),
         r"has a value of 3 characters in feature 'c'; the limit is 1 \(OTEL_MLMON_PROFILE_MAX_VALUE_LENGTH\)", "same"),
    ]  # fmt: skip
    for limits, from_text, from_fields in cases:
        with pytest.raises(ValueError, match=from_text):
            ReferenceProfile.from_json(text, limits=limits)
        if from_fields is not None:
            with pytest.raises(ValueError, match=from_text if from_fields == "same" else from_fields):
                ReferenceProfile.from_dict(parsed, limits=limits)
    with pytest.raises(ValueError, match="feature name of 2000 characters"):
        data = json.loads(text)
        data["features"][0]["name"] = "n" * 2000
        ReferenceProfile.from_dict(data)
    with pytest.raises(ValueError, match="max_bins must be an integer >= 1"):
        ProfileLimits(max_bins=0)


def test_the_text_scan_rejects_before_parsing_and_accepts_what_it_cannot_judge():
    with pytest.raises(ValueError, match="has 3 categories in feature 'c'"):
        check_text('{"name":"c","kind":"categorical","values":["a","b","c"],"counts":[1,2,3]}', ProfileLimits(max_categories=2))
    check_text('{"values":["1,2,3,4,5,6"]}', ProfileLimits(max_bins=2))  # commas inside a string: not an array
    check_text("not json at all", DEFAULT_LIMITS)  # malformed text is the parser's to reject


def test_the_settings_defaults_are_the_profile_limits_defaults():
    settings = Settings()
    assert (settings.profile_max_bytes, settings.profile_max_features, settings.profile_max_bins,
            settings.profile_max_categories, settings.profile_max_value_length) == (
        DEFAULT_LIMITS.max_bytes, DEFAULT_LIMITS.max_features, DEFAULT_LIMITS.max_bins,
        DEFAULT_LIMITS.max_categories, DEFAULT_LIMITS.max_value_length)  # fmt: skip


# --------------------------------------------------------------------------- through instrument()
@pytest.fixture
def data():
    X, y = load_breast_cancer(return_X_y=True)
    return X, y


@pytest.fixture
def fresh_hub():
    yield
    hub().configure(store="memory")


def _rows(session, name):
    return sum(p.value for _, _, a, p in session.points(semconv.DATA_ROW_COUNT.name) if a.get(semconv.ML_MODEL_NAME) == name)


def _psi(session, name):
    return [p.value for _, _, a, p in session.points(semconv.DRIFT_SCORE.name)
            if a.get(semconv.ML_MODEL_NAME) == name and a.get(semconv.ML_DRIFT_METHOD) == "psi"]  # fmt: skip


def test_predict_never_waits_for_a_profile_that_is_loading(make_telemetry, tmp_path, data, fresh_hub):
    """The profile file is a FIFO nobody has written yet: its load cannot finish. The first calls
    return at once and are not profiled; once the profile is written, later calls get drift."""
    X, y = data
    model = otel_mlmon.set_model_info(LogisticRegression(max_iter=5000).fit(X, y), name="slow-profile")
    text = build_profile(X, predictions=model.predict(X)).to_json()
    fifo = tmp_path / "slow-profile.json"
    os.mkfifo(fifo)
    session = make_telemetry(profile_dir=str(tmp_path), label_store="memory", drift_max_rows_per_second=1e9)
    try:
        started = time.perf_counter()
        model.predict(X[:100])
        assert time.perf_counter() - started < 0.5, "the first predict waited"
        for _ in range(5):
            model.predict(X[:100])
        session.instrumentor.force_flush()  # the worker gives the load 1 s, then profiles without it
        assert _rows(session, "slow-profile") == 0 and _psi(session, "slow-profile") == []
        with open(fifo, "w", encoding="utf-8") as fh:  # the loader thread, blocked on the FIFO, reads it now
            fh.write(text)
        deadline = time.monotonic() + 20
        while not _psi(session, "slow-profile") and time.monotonic() < deadline:
            model.predict(X[:100])
            session.instrumentor.force_flush()
        assert _psi(session, "slow-profile"), "drift once the profile is loaded"
        assert _rows(session, "slow-profile") > 0
    finally:  # a failed test must not leave the loader thread blocked on the FIFO
        try:  # a reader blocked in open() gets end-of-file
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # no reader yet: none will come, the path is gone
            pass
        fifo.unlink()


def test_the_first_predict_does_not_pay_for_a_large_attached_profile(make_telemetry, fresh_hub):
    """A valid 1000-feature profile (~6 MB) attached to a model: the first call returns in a
    fraction of the time the profile takes to parse; the profile is used once loaded."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 1000))
    y = (X[:, 0] > 0).astype(int)
    model = otel_mlmon.set_model_info(LogisticRegression(max_iter=200).fit(X, y), name="wide")
    profile = build_profile(X, predictions=model.predict(X))
    attach_profile(model, profile)
    text = profile.to_json()
    started = time.perf_counter()
    ReferenceProfile.from_json(text)
    parse_s = time.perf_counter() - started
    session = make_telemetry(label_store="memory", drift_max_rows_per_second=1e9)
    started = time.perf_counter()
    model.predict(X[:200])
    first_s = time.perf_counter() - started
    assert first_s < parse_s / 2, f"first predict {first_s * 1000:.0f} ms, parsing the profile {parse_s * 1000:.0f} ms"
    session.instrumentor.force_flush()
    assert _rows(session, "wide") == 200, "the worker waited for the load: the first call was profiled"
    assert _psi(session, "wide")


def test_a_profile_beyond_the_limits_is_counted_and_never_raised(make_telemetry, tmp_path, data, fresh_hub):
    X, y = data
    model = otel_mlmon.set_model_info(LogisticRegression(max_iter=5000).fit(X, y), name="too-fine")
    build_profile(X, n_bins=10).save(tmp_path / "too-fine.json")
    expected = model.predict(X[:50])
    session = make_telemetry(profile_dir=str(tmp_path), profile_max_bins=8, label_store="memory",
                             drift_max_rows_per_second=1e9)  # fmt: skip
    for _ in range(3):
        np.testing.assert_array_equal(model.predict(X[:50]), expected)
    session.instrumentor.force_flush()
    errors = [(a, p.value) for _, _, a, p in session.points(semconv.MONITOR_ERROR_COUNT.name)]
    assert [(a[semconv.ML_MONITOR_STAGE], a[semconv.ERROR_TYPE], v) for a, v in errors] == [("profile_load", "ValueError", 1)]
    assert _psi(session, "too-fine") == [], "no drift without a profile"
    assert _rows(session, "too-fine") == 150, "data quality is still monitored"


def test_no_profile_is_captured_at_fit_for_data_wider_than_the_limit(make_telemetry, fresh_hub):
    make_telemetry(label_store="memory")
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, DEFAULT_LIMITS.max_features + 1))
    model = LogisticRegression(max_iter=100).fit(X, (X[:, 0] > 0).astype(int))
    assert "_otel_mlmon_profile" not in model.__dict__
    narrow = LogisticRegression(max_iter=100).fit(X[:, :5], (X[:, 0] > 0).astype(int))
    assert "_otel_mlmon_profile" in narrow.__dict__


def test_a_forked_child_loads_profiles_with_its_own_loader(base, tmp_path):
    """A load running in the parent when it forks (blocked on a FIFO) is not lost in the child,
    and the child's other loads do not wait behind it (several loader threads)."""
    from otel_mlmon._internal.model_profiles import ProfileLoad, start_load

    fifo = tmp_path / "blocked.json"
    os.mkfifo(fifo)
    blocked = start_load(ProfileLoad(("file", fifo), DEFAULT_LIMITS, lambda profile, digest: profile))
    time.sleep(0.2)  # the parent's loader thread is now blocked in open()
    try:
        pid = os.fork()
        if pid == 0:  # the child: a profile attached to a model loads at once
            status = 1
            try:
                load = start_load(ProfileLoad(("text", json.dumps(base)), DEFAULT_LIMITS, lambda p, d: p))
                status = 0 if load.done.wait(10) and load.error is None and len(load.result[0].features) == 2 else 1
            finally:
                os._exit(status)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # watchdog: the child must not hang
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the child hung")
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        fifo.unlink()
    assert blocked.done.wait(10) and isinstance(blocked.error, ValueError), "the parent's load ends (empty file)"
