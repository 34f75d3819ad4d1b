"""Bad inputs behave exactly as without otel-mlmon.

Each call is made once with instrumentation off, then once with it on, on the same fitted model:
the result must be bitwise identical, or the exception must have the same type and message (and
the same cause), and the same warnings must be emitted. The instrumented call yields exactly one
span; a failing call's span has ERROR status and ``error.type``.
"""

from __future__ import annotations

import functools
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from opentelemetry.trace import StatusCode
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from helpers import assert_identical

from otel_mlmon import SklearnInstrumentor, semconv

METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "score_samples")
N_FEATURES = 5
COLUMNS = [f"f{i}" for i in range(N_FEATURES)]

Xc, yc = make_classification(
    n_samples=60, n_features=N_FEATURES, n_informative=3, n_redundant=0, random_state=0
)
Xr, yr = make_regression(n_samples=60, n_features=N_FEATURES, random_state=0)
X = Xc[:6].copy()  # the rows every bad input is derived from


# ------------------------------------------------------------------------------------ models
# Fitted lazily, on first use, which is always before instrument() (see _outcomes).
MODELS = {
    "LogisticRegression": lambda: LogisticRegression().fit(Xc, yc),
    "RandomForestClassifier": lambda: RandomForestClassifier(n_estimators=5, random_state=0).fit(Xc, yc),
    "HistGradientBoostingClassifier": lambda: HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(
        Xc, yc
    ),
    "KNeighborsClassifier": lambda: KNeighborsClassifier().fit(Xc, yc),
    "SVC": lambda: SVC(random_state=0).fit(Xc, yc),
    "LinearRegression": lambda: LinearRegression().fit(Xr, yr),
    "Pipeline": lambda: Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression())]).fit(Xc, yc),
    # Fitted on DataFrames: they know their feature names.
    "LogisticRegression[df]": lambda: LogisticRegression().fit(pd.DataFrame(Xc, columns=COLUMNS), yc),
    "HistGradientBoostingRegressor[df]": lambda: HistGradientBoostingRegressor(
        max_iter=5, random_state=0
    ).fit(pd.DataFrame(Xr, columns=COLUMNS), yr),
    # Object-dtype string labels.
    "LogisticRegression[str-labels]": lambda: LogisticRegression().fit(
        Xc, np.array(["neg", "pos"], dtype=object)[yc]
    ),
    # Never fitted: NotFittedError everywhere.
    "LogisticRegression[unfitted]": lambda: LogisticRegression(),
}


@functools.cache
def fitted(name):
    assert not SklearnInstrumentor().is_instrumented_by_opentelemetry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MODELS[name]()


# ------------------------------------------------------------------------------------ inputs
def _with(value, row=1, col=2):
    out = X.copy()
    out[row, col] = value
    return out


def _df(columns=COLUMNS, data=None):
    data = X if data is None else data
    return pd.DataFrame(data[:, : len(columns)] if data.shape[1] >= len(columns) else data, columns=columns)


# name -> (args, kwargs). Every input is built fresh per call (no state shared between the runs).
INPUTS = {
    # Shapes.
    "too-few-columns": lambda: ((X[:, :3],), {}),
    "too-many-columns": lambda: ((np.hstack([X, X[:, :2]]),), {}),
    "zero-columns": lambda: ((np.empty((3, 0)),), {}),
    "1-d": lambda: ((X[0].copy(),), {}),
    "1-d-length-1": lambda: ((np.array([1.0]),), {}),
    "3-d": lambda: ((X[None, :, :].copy(),), {}),
    "3-d-trailing": lambda: ((X[:, :, None].copy(),), {}),
    "0-d": lambda: ((np.array(1.0),), {}),
    "empty-rows": lambda: ((X[:0].copy(),), {}),
    "empty-rows-and-columns": lambda: ((np.empty((0, 0)),), {}),
    # Values.
    "nan": lambda: ((_with(np.nan),), {}),
    "all-nan": lambda: ((np.full_like(X, np.nan),), {}),
    "inf": lambda: ((_with(np.inf),), {}),
    "-inf": lambda: ((_with(-np.inf),), {}),
    "huge": lambda: ((_with(1e308),), {}),
    "float32": lambda: ((X.astype(np.float32),), {}),
    "float16": lambda: ((X.astype(np.float16),), {}),
    "int": lambda: ((np.round(X * 10).astype(np.int64),), {}),
    "bool": lambda: ((X > 0,), {}),
    "complex": lambda: ((X.astype(np.complex128),), {}),
    "fortran-order": lambda: ((np.asfortranarray(X),), {}),
    "non-contiguous": lambda: ((np.repeat(X, 2, axis=0)[::2],), {}),
    "read-only": lambda: ((_read_only(X.copy()),), {}),
    # Object dtype and strings.
    "object-numeric": lambda: ((X.astype(object),), {}),
    "object-with-string": lambda: ((_object_with("oops"),), {}),
    "object-with-none": lambda: ((_object_with(None),), {}),
    "numeric-strings": lambda: ((X.astype(str),), {}),
    "bytes": lambda: ((X.astype(bytes),), {}),
    "string": lambda: (("not an array",), {}),
    # Python containers and scalars.
    "list-of-lists": lambda: ((X.tolist(),), {}),
    "tuple-of-tuples": lambda: ((tuple(map(tuple, X.tolist())),), {}),
    "flat-list": lambda: ((X[0].tolist(),), {}),
    "ragged-list": lambda: (([[1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0]],), {}),
    "empty-list": lambda: (([],), {}),
    "list-of-empty-lists": lambda: (([[], []],), {}),
    "scalar": lambda: ((5.0,), {}),
    "none": lambda: ((None,), {}),
    "dict": lambda: (({"a": 1},), {}),
    "generator": lambda: (((row for row in X.tolist()),), {}),
    # Sparse.
    "sparse-csr": lambda: ((sp.csr_matrix(X),), {}),
    "sparse-csr-array": lambda: ((sp.csr_array(X),), {}),
    # pandas.
    "df-right-columns": lambda: ((_df(),), {}),
    "df-renamed-columns": lambda: ((_df([f"g{i}" for i in range(N_FEATURES)]),), {}),
    "df-reordered-columns": lambda: ((_df(COLUMNS)[COLUMNS[::-1]],), {}),
    "df-missing-column": lambda: ((_df(COLUMNS)[COLUMNS[:-1]],), {}),
    "df-extra-column": lambda: ((_df(COLUMNS).assign(extra=1.0),), {}),
    "df-integer-columns": lambda: ((pd.DataFrame(X),), {}),
    "df-string-column": lambda: ((_df(COLUMNS).assign(f2="x"),), {}),
    "df-nullable-with-na": lambda: ((_nullable_with_na(),), {}),
    "df-categorical-column": lambda: ((_df(COLUMNS).assign(f2=pd.Categorical(["a", "b"] * 3)),), {}),
    "df-empty": lambda: ((_df(COLUMNS).iloc[:0],), {}),
    "series": lambda: ((pd.Series(X[0], index=COLUMNS),), {}),
    # Call signature.
    "keyword-X": lambda: ((), {"X": X.copy()}),
    "no-argument": lambda: ((), {}),
    "unexpected-keyword": lambda: ((X.copy(),), {"no_such_option": 1}),
    "extra-positional": lambda: ((X.copy(), X.copy()), {}),
}


def _read_only(a):
    a.setflags(write=False)
    return a


def _nullable_with_na():
    frame = _df(COLUMNS).round().astype("Int64")
    frame.iloc[1, 2] = pd.NA
    return frame


def _object_with(value):
    out = X.astype(object)
    out[1, 2] = value
    return out


# --------------------------------------------------------------------------------- comparison
def _call(model, method, make_input):
    """(outcome, warnings): outcome is ('ok', result) or ('raise', type, message, cause type)."""
    args, kwargs = make_input()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome = ("ok", getattr(model, method)(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - compared between the two runs
            cause = exc.__cause__ if exc.__cause__ is not None else exc.__context__
            args = tuple(_no_address(a) if isinstance(a, str) else a for a in exc.args)
            outcome = ("raise", type(exc), _no_address(str(exc)), type(cause), args)
    return outcome, [(w.category, str(w.message)) for w in caught]


def _no_address(text):
    """Messages may show an input's repr, e.g. ``<generator object ... at 0x7f...>``: a fresh
    input is built for each run, so its address differs; everything else must be equal."""
    return re.sub(r" at 0x[0-9a-fA-F]+>", " at 0x...>", text)


def _methods(model):
    return [m for m in METHODS if hasattr(model, m)]


def _error_type(cls):
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _outcomes(model, make_input):
    return {method: _call(model, method, make_input) for method in _methods(model)}


# ------------------------------------------------------------------------------------- tests
CASES = [pytest.param(m, i, id=f"{m}-{i}") for m in MODELS for i in INPUTS]


def test_the_inputs_exercise_both_outcomes():
    """Sanity: the bad inputs do make calls fail (and some succeed), uninstrumented."""
    outcomes = [
        outcome[0]
        for model in ("LogisticRegression", "LogisticRegression[df]", "HistGradientBoostingClassifier")
        for make_input in INPUTS.values()
        for outcome, _ in _outcomes(fitted(model), make_input).values()
    ]
    assert outcomes.count("raise") > 100 and outcomes.count("ok") > 50


@pytest.mark.parametrize(("model_name", "input_name"), CASES)
def test_bad_input_behaves_as_uninstrumented(model_name, input_name, make_telemetry):
    model = fitted(model_name)
    make_input = INPUTS[input_name]
    methods = _methods(model)
    assert methods

    # Off, then on, the same calls on the same model.
    assert not SklearnInstrumentor().is_instrumented_by_opentelemetry
    expected = _outcomes(model, make_input)
    telemetry = make_telemetry()
    assert _methods(model) == methods

    for method in methods:
        where = f"{model_name}.{method}({input_name})"
        telemetry.clear()
        (before, warned_before) = expected[method]
        after, warned_after = _call(model, method, make_input)

        assert after[0] == before[0], f"{where}: uninstrumented {before[:3]}, instrumented {after[:3]}"
        if before[0] == "ok":
            assert_identical(before[1], after[1], where)
        else:
            assert after[1] is before[1], f"{where}: exception type {after[1]} != {before[1]}"
            assert after[2] == before[2], f"{where}: message {after[2]!r} != {before[2]!r}"
            assert after[3] is before[3], f"{where}: cause {after[3]} != {before[3]}"
            assert_identical(before[4], after[4], f"{where}: exception args")
        assert warned_after == warned_before, f"{where}: warnings differ"

        spans = telemetry.spans()
        assert len(spans) == 1, f"{where}: {len(spans)} spans"
        span = spans[0]
        assert span.attributes[semconv.ML_OPERATION] == method
        if before[0] == "ok":
            assert span.status.status_code is StatusCode.UNSET, where
            assert semconv.ERROR_TYPE not in span.attributes
        else:
            assert span.status.status_code is StatusCode.ERROR, where
            assert span.attributes[semconv.ERROR_TYPE] == _error_type(before[1]), where
            assert span.status.description == _error_type(before[1])  # no message by default
            (event,) = [e for e in span.events if e.name == "exception"]
            assert event.attributes["exception.type"] == _error_type(before[1])
            assert "exception.message" not in event.attributes

        args, kwargs = make_input()
        data = args[0] if args else kwargs.get("X")
        shape = getattr(data, "shape", None)
        if isinstance(shape, tuple) and len(shape) >= 1:
            assert span.attributes[semconv.ML_BATCH_SIZE] == shape[0], where
            if len(shape) == 2:
                assert span.attributes[semconv.ML_INPUT_FEATURE_COUNT] == shape[1], where
            else:
                assert semconv.ML_INPUT_FEATURE_COUNT not in span.attributes, where

    assert telemetry.instrumentor.force_flush()
    internal = [attrs for _, _, attrs, _ in telemetry.points(semconv.MONITOR_ERROR_COUNT.name)]
    assert not internal, f"otel-mlmon internal errors: {internal}"


FAILING = [
    ("LogisticRegression", "too-few-columns"),
    ("LogisticRegression", "nan"),
    ("LogisticRegression", "string"),
    ("LogisticRegression[df]", "df-renamed-columns"),
    ("LogisticRegression[unfitted]", "list-of-lists"),
    ("Pipeline", "3-d"),
    ("LinearRegression", "no-argument"),
]


@pytest.mark.parametrize(("model_name", "input_name"), FAILING, ids=["-".join(c) for c in FAILING])
def test_failing_call_with_exception_message_captured(model_name, input_name, make_telemetry):
    model = fitted(model_name)
    (before, _) = _call(model, "predict", INPUTS[input_name])
    assert before[0] == "raise"
    telemetry = make_telemetry(capture_exception_message=True)
    (after, _) = _call(model, "predict", INPUTS[input_name])
    assert after[1:3] == before[1:3]
    (span,) = telemetry.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == f"{before[1].__name__}: {before[2]}"
    assert span.attributes[semconv.ERROR_TYPE] == _error_type(before[1])
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.message"] == before[2]
    assert event.attributes["exception.type"] in (before[1].__name__, _error_type(before[1]))
