"""Reference profiles: JSON round trip and strict validation, merge and chunking equivalences,
fixed size, attachment through pickle/joblib, names and kinds, the ``profile`` CLI."""

from __future__ import annotations

import argparse
import json
import pickle
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from otel_mlmon.drift import ProfileBuilder, ReferenceProfile, attach_profile, build_profile, get_profile, load_profile
from otel_mlmon.drift import cli
from otel_mlmon.drift.profile import PROFILE_ATTRIBUTE


def mixed_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.normal(40, 12, n),
        "income": rng.lognormal(10, 1, n),
        "children": rng.integers(0, 4, n),
        "city": rng.choice(["paris", "lyon", "nice", "lille"], n, p=[0.4, 0.3, 0.2, 0.1]),
        "plan": pd.Categorical(rng.choice(["free", "pro"], n)),
        "active": rng.random(n) < 0.7,
    })  # fmt: skip
    frame.loc[frame.index[::50], "age"] = np.nan
    frame.loc[frame.index[::70], "city"] = None
    return frame


def quantile_error(profile_a, profile_b, values, name):
    """Largest difference of the share of ``values`` below each edge of two profiles' features."""
    a, b = profile_a.feature(name), profile_b.feature(name)
    finite = values[np.isfinite(values)]
    share = lambda edges: np.searchsorted(np.sort(finite), edges, side="left") / finite.size  # noqa: E731
    return float(np.abs(share(a.edges) - share(b.edges)).max())


# --------------------------------------------------------------------------- JSON
def test_json_round_trip_keeps_everything():
    frame = mixed_frame(5000)
    y = (frame["age"].fillna(40) > 40).astype(int)
    profile = build_profile(frame, y=y, predictions=np.linspace(0, 1, len(frame)))
    text = profile.to_json()
    again = ReferenceProfile.from_json(text)
    assert again == profile and again.to_json() == text
    assert again.named and again.feature_names == tuple(frame.columns)
    assert again.output.kind == "numeric" and again.target.kind == "categorical"
    assert np.array_equal(again.feature("age").edges, profile.feature("age").edges)
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def test_save_load_and_load_profile(tmp_path):
    profile = build_profile(np.random.default_rng(1).normal(size=(3000, 3)))
    path = tmp_path / "profile.json"
    profile.save(path)
    assert load_profile(path) == profile == ReferenceProfile.load(str(path))


def test_profile_contents_are_right():
    frame = mixed_frame(20_000)
    profile = build_profile(frame)
    kinds = {f.name: f.kind for f in profile.features}
    assert kinds == {"age": "numeric", "income": "numeric", "children": "numeric", "city": "categorical",
                     "plan": "categorical", "active": "categorical"}  # fmt: skip
    age = profile.feature("age")
    finite = frame["age"].dropna().to_numpy()
    assert age.nan == frame["age"].isna().sum() and age.count == finite.size and age.rows == len(frame)
    assert age.minimum == finite.min() and age.maximum == finite.max()
    assert age.mean == pytest.approx(finite.mean()) and age.std == pytest.approx(finite.std())
    assert np.array_equal(age.counts, np.bincount(np.searchsorted(age.edges, finite, side="right"), minlength=age.n_bins))
    assert np.abs(age.counts / age.count - 0.1).max() < 0.005  # deciles
    city = profile.feature("city")
    assert city.missing == frame["city"].isna().sum() and city.values[0] == "paris" and city.complete
    assert dict(zip(city.values, city.counts.tolist())) == frame["city"].value_counts().to_dict()
    assert profile.feature("active").values == ("True", "False")
    children = profile.feature("children")  # few distinct values: exact edges at the values
    assert set(children.edges.tolist()) <= {0.0, 1.0, 2.0, 3.0} and children.counts.sum() == len(frame)


def test_top_k_and_other_bin():
    rng = np.random.default_rng(0)
    values = rng.zipf(1.5, 20_000).astype(str).astype(object)
    profile = build_profile({"v": values}, top_k=5, max_categories=50)
    f = profile.feature("v")
    assert f.n_bins == 6 and len(f.values) <= 50 and not f.complete
    assert f.bin_counts.sum() == 20_000 and f.bin_counts[-1] == 20_000 - f.counts[:5].sum()


MALFORMED = [
    ("not json", "not valid JSON"),
    ('{"format": "something-else", "version": 1}', "not an otel-mlmon reference profile"),
    ("[1, 2]", "must be an object"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_text_is_rejected_clearly(text, message):
    with pytest.raises(ValueError, match=message):
        ReferenceProfile.from_json(text)


def _mutations():
    def set_(path, value):
        def apply(d):
            target = d
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        return apply

    def delete(path):
        def apply(d):
            target = d
            for key in path[:-1]:
                target = target[key]
            del target[path[-1]]
        return apply

    return [
        (set_(["version"], 2), "unsupported reference profile version 2"),
        (delete(["rows"]), "missing field 'rows'"),
        (set_(["rows"], -1), "rows must be an integer"),
        (set_(["features", 0, "edges"], [3.0, 1.0]), r"features\[0\].edges must be strictly increasing"),
        (set_(["features", 0, "counts"], [1, 2]), r"features\[0\].counts must have len\(edges\) \+ 1"),
        (set_(["features", 0, "kind"], "ordinal"), r"features\[0\].kind must be one of"),
        (set_(["features", 0, "mean"], "high"), r"features\[0\].mean must be a finite number"),
        (set_(["features", 0, "surprise"], 1), r"unknown field\(s\) features\[0\].surprise"),
        (set_(["features", 1, "name"], "x0"), "feature names must be unique"),
        (set_(["features", 2, "values"], ["a", "a"]), r"features\[2\].values must be a list of distinct strings"),
        (set_(["features", 0, "sketch"], None), r"features\[0\].sketch is required"),
        (set_(["named"], "yes"), "named must be true or false"),
    ]


@pytest.mark.parametrize(("mutate", "message"), _mutations())
def test_malformed_profiles_are_rejected_clearly(mutate, message):
    rng = np.random.default_rng(0)
    data = {"x0": rng.normal(size=500), "x1": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)}
    good = build_profile(data).to_dict()
    ReferenceProfile.from_dict(good)  # the unmodified profile is valid
    mutate(good)
    with pytest.raises(ValueError, match=message):
        ReferenceProfile.from_json(json.dumps(good))


def test_nan_in_json_is_rejected():
    text = build_profile(np.arange(100.0).reshape(-1, 1)).to_json().replace('"mean":49.5', '"mean":NaN')
    with pytest.raises(ValueError, match="must not contain NaN"):
        ReferenceProfile.from_json(text)


# --------------------------------------------------------------------------- merge and chunking
def test_merge_equals_build_on_concatenation_exactly_for_exact_grids():
    frame = mixed_frame(30_000)
    frame["age"] = frame["age"].round()  # few distinct values: exact fine grids
    frame["income"] = (frame["income"] // 1000) * 1000
    a, b = frame.iloc[:12_000], frame.iloc[12_000:]
    merged = ProfileBuilder().update(a).merge(ProfileBuilder().update(b)).finish()
    whole = build_profile(frame)
    for f, g in zip(merged.features, whole.features):
        assert np.array_equal(f.edges, g.edges) and np.array_equal(f.counts, g.counts), f.name
        assert f.values == g.values and (f.nan, f.missing, f.count, f.rows) == (g.nan, g.missing, g.count, g.rows)
        if f.kind == "numeric":
            assert (f.minimum, f.maximum) == (g.minimum, g.maximum)
            assert f.mean == pytest.approx(g.mean, rel=1e-12) and f.std == pytest.approx(g.std, rel=1e-12)
    assert merged.rows == whole.rows


def test_spawned_shards_merge_exactly_into_the_concatenation():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60_000, 3)) * [1, 10, 0.1]
    first = ProfileBuilder().update(X[:20_000])
    shard = first.spawn().update(X[20_000:])
    merged = first.merge(shard).finish()
    whole = ProfileBuilder().update(X[:20_000]).update(X[20_000:]).finish()
    for f, g in zip(merged.features, whole.features):
        assert np.array_equal(f.edges, g.edges) and np.array_equal(f.counts, g.counts)
        assert f.mean == pytest.approx(g.mean, rel=1e-12)


def test_independent_merge_and_profile_merge_match_the_concatenation_closely():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(40_000, 2))
    b = rng.normal(loc=0.7, scale=2.0, size=(30_000, 2))
    whole_data = np.vstack((a, b))
    whole = build_profile(whole_data)
    by_builders = ProfileBuilder().update(a).merge(ProfileBuilder().update(b)).finish()
    by_profiles = build_profile(a).merge(build_profile(b))
    for merged in (by_builders, by_profiles):
        assert merged.rows == whole.rows
        for j, name in enumerate(whole.feature_names):
            f = merged.feature(name)
            assert f.count == 70_000 and f.counts.sum() == 70_000
            assert quantile_error(merged, whole, whole_data[:, j], name) < 0.01
            assert f.mean == pytest.approx(whole_data[:, j].mean(), rel=1e-9)
            assert f.std == pytest.approx(whole_data[:, j].std(), rel=1e-9)
            assert (f.minimum, f.maximum) == (whole_data[:, j].min(), whole_data[:, j].max())


def test_chunked_build_equals_one_shot():
    frame = mixed_frame(50_000, seed=5)
    one_shot = build_profile(frame, chunk_size=len(frame))
    chunked = build_profile(frame, chunk_size=7_000)
    for f, g in zip(chunked.features, one_shot.features):
        assert (f.name, f.kind, f.count, f.nan, f.missing, f.rows) == (g.name, g.kind, g.count, g.nan, g.missing, g.rows)
        assert f.values == g.values and np.array_equal(f.counts if f.kind == "categorical" else [], g.counts if g.kind == "categorical" else [])
        if f.kind == "numeric":
            assert (f.minimum, f.maximum) == (g.minimum, g.maximum) and f.mean == pytest.approx(g.mean, rel=1e-12)
            assert quantile_error(chunked, one_shot, frame[f.name].to_numpy(dtype=float), f.name) < 0.005
    small = frame.iloc[:5_000]  # below the sketch buffer: identical, edges included
    assert_same(build_profile(small, chunk_size=333), build_profile(small))


def assert_same(a: ReferenceProfile, b: ReferenceProfile) -> None:
    """Equal profiles, but for the last bits of floating-point moments (summation order)."""
    da, db = a.to_dict(), b.to_dict()
    for fa, fb in zip(da["features"], db["features"]):
        for key in ("mean", "std"):
            if key in fa:
                assert fa.pop(key) == pytest.approx(fb.pop(key), rel=1e-12)
    assert da == db


def test_sorted_input_still_gets_quantile_edges():
    values = np.sort(np.random.default_rng(6).exponential(size=200_000))
    profile = build_profile(values.reshape(-1, 1), chunk_size=10_000)
    f = profile.feature("x0")
    assert np.abs(f.counts / f.count - 0.1).max() < 0.01


def test_size_is_independent_of_rows():
    rng = np.random.default_rng(7)
    small = len(build_profile(rng.normal(size=(3_000, 5))).to_json())
    large = len(build_profile(rng.normal(size=(300_000, 5)), chunk_size=50_000).to_json())
    assert large < 1.3 * small and large < 5 * 8_000


# --------------------------------------------------------------------------- models
def test_attach_travels_through_pickle_and_joblib(tmp_path):
    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(500, 4)), rng.integers(0, 2, 500)
    model = LogisticRegression().fit(X, y)
    profile = build_profile(X, y, predictions=model.predict_proba(X))
    assert attach_profile(model, profile) is model
    assert isinstance(model.__dict__[PROFILE_ATTRIBUTE], str)
    assert get_profile(pickle.loads(pickle.dumps(model))) == profile
    joblib.dump(model, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    assert get_profile(loaded) == profile and np.array_equal(loaded.predict(X), model.predict(X))
    assert "_otel_mlmon_profile" not in model.get_params() and get_profile(clone(model)) is None
    assert get_profile(LogisticRegression()) is None
    assert get_profile(model) is get_profile(model)  # parsed once


def test_attach_and_get_errors():
    profile = build_profile(np.zeros((10, 1)))
    with pytest.raises(TypeError):
        attach_profile(LogisticRegression(), {"not": "a profile"})
    with pytest.raises(ValueError, match="cannot attach"):
        attach_profile(object(), profile)
    model = LogisticRegression()
    model.__dict__[PROFILE_ATTRIBUTE] = '{"format": "otel-mlmon.reference-profile", "version": 99}'
    with pytest.raises(ValueError, match="unsupported reference profile version"):
        get_profile(model)


# --------------------------------------------------------------------------- names and kinds
def test_dataframe_names_versus_positional():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(200, 3))
    assert build_profile(X).feature_names == ("x0", "x1", "x2") and not build_profile(X).named
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    assert build_profile(frame).feature_names == ("a", "b", "c") and build_profile(frame).named
    assert build_profile(pd.DataFrame(X)).feature_names == ("x0", "x1", "x2")  # integer labels
    named = build_profile(X, feature_names=["u", "v", "w"])
    assert named.feature_names == ("u", "v", "w") and named.named
    with pytest.raises(ValueError, match="differ"):
        build_profile(frame, feature_names=["u", "v", "w"])
    builder = ProfileBuilder().update(frame)
    builder.update(frame[["c", "a", "b"]])  # columns matched by name
    assert builder.finish().feature("a").count == 400
    with pytest.raises(ValueError, match="differ"):
        builder.update(frame.rename(columns={"a": "z"}))
    with pytest.raises(ValueError, match="expected 3 columns"):
        builder.update(X[:, :2])


def test_kinds_from_dtypes_and_override():
    data = {
        "num_obj": np.array([1, 2.5, None, 4] * 50, dtype=object),
        "text": np.array(["a", "b", None, "a"] * 50, dtype=object),
        "code": np.array([10, 20, 30, 10] * 50),
    }
    profile = build_profile(data, categorical=["code"])
    assert [f.kind for f in profile.features] == ["numeric", "categorical", "categorical"]
    assert profile.feature("num_obj").missing == 50 and profile.feature("text").missing == 50
    assert profile.feature("code").values == ("10", "20", "30")
    with pytest.raises(ValueError, match="unknown features"):
        build_profile(data, categorical=["nope"])


def test_output_vector_rules():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(300, 2))
    proba = rng.dirichlet([1, 1, 1], 300)
    assert build_profile(X, predictions=proba).output.maximum == proba.max(axis=1).max()
    binary = rng.dirichlet([1, 1], 300)
    assert build_profile(X, predictions=binary).output.maximum == binary[:, 1].max()
    labels = np.array(["yes", "no"])[rng.integers(0, 2, 300)]
    assert build_profile(X, predictions=labels).output.kind == "categorical"
    with pytest.raises(ValueError, match="rows"):
        build_profile(X, predictions=labels[:10])


def test_builder_validates_arguments():
    for kwargs in ({"n_bins": 1}, {"top_k": 0}, {"max_categories": 3, "top_k": 5}, {"output_kind": "text"}):
        with pytest.raises(ValueError):
            ProfileBuilder(**kwargs)
    with pytest.raises(ValueError, match="no rows"):
        ProfileBuilder().finish()


# --------------------------------------------------------------------------- CLI
def _args(path, **kwargs):
    parser = argparse.ArgumentParser()
    cli.add_profile_parser(parser.add_subparsers())
    argv = ["profile", str(path)]
    for key, value in kwargs.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return parser.parse_args(argv)


def test_cli_builds_a_profile_from_csv(tmp_path, capsys):
    frame = mixed_frame(3_000)
    frame["label"] = np.arange(len(frame)) % 3
    frame["score"] = np.linspace(0, 1, len(frame))
    csv_path = tmp_path / "train.csv"
    frame.to_csv(csv_path, index=False)
    out = tmp_path / "profile.json"
    args = _args(csv_path, output=out, target="label", prediction="score", chunk_size=700, categorical="children")
    assert args.func(args) == 0
    profile = load_profile(out)
    assert profile.rows == 3_000 and "label" not in profile.feature_names and "score" not in profile.feature_names
    assert profile.feature("children").kind == "categorical" and profile.target.values == ("0", "1", "2")
    assert profile.output.kind == "numeric" and profile.feature("city").missing == frame["city"].isna().sum()
    assert "3000 rows in 5 chunk(s)" in capsys.readouterr().out


def test_cli_standard_library_csv_reader_matches_pandas(tmp_path):
    frame = mixed_frame(2_500)[["age", "income", "city"]]
    csv_path = tmp_path / "train.csv"
    frame.to_csv(csv_path, index=False)
    chunks = list(cli._csv_chunks_stdlib(str(csv_path), 1_000, ",", []))
    assert [len(c["age"]) for c in chunks] == [1_000, 1_000, 500]
    builder = ProfileBuilder()
    for chunk in chunks:
        builder.update(chunk)
    via_stdlib = builder.finish()
    via_pandas = build_profile(pd.read_csv(csv_path))
    for name in ("age", "income", "city"):
        f, g = via_stdlib.feature(name), via_pandas.feature(name)
        assert (f.kind, f.count, f.nan, f.missing, f.values) == (g.kind, g.count, g.nan, g.missing, g.values)
        assert np.allclose(f.edges, g.edges) and np.array_equal(f.counts, g.counts)


def test_cli_errors_are_clear(tmp_path, capsys, monkeypatch):
    csv_path = tmp_path / "train.csv"
    pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}).to_csv(csv_path, index=False)
    args = _args(csv_path, output=tmp_path / "p.json", target="nope")
    assert args.func(args) == 2 and "column 'nope' not found" in capsys.readouterr().err
    args = _args(tmp_path / "missing.csv")
    assert args.func(args) == 2 and "no such file" in capsys.readouterr().err
    parquet = tmp_path / "train.parquet"
    parquet.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    args = _args(parquet, output=tmp_path / "p.json")
    assert args.func(args) == 2 and "needs pyarrow" in capsys.readouterr().err


def test_cli_main_entry(tmp_path):
    csv_path = tmp_path / "d.csv"
    pd.DataFrame({"a": np.arange(100.0)}).to_csv(csv_path, index=False)
    assert cli.main(["profile", str(csv_path), "--output", str(tmp_path / "o.json"), "--bins", "4"]) == 0
    assert load_profile(tmp_path / "o.json").feature("a").n_bins == 4
