"""Every scikit-learn classifier and regressor gives bitwise-identical outputs when instrumented.

For each estimator of ``sklearn.utils.all_estimators(type_filter=["classifier", "regressor"])``:
fit it with instrumentation OFF, call every available inference method (``predict``,
``predict_proba``, ``predict_log_proba``, ``decision_function``, ``score_samples``) with
instrumentation OFF, then instrument and call them again on the same fitted object. The
results (or exceptions) must be identical bit for bit, and each call must produce exactly one
span.

Estimators are built with default parameters. Meta-estimators that require a sub-estimator get a
simple one (``BUILDERS``); estimators that need a particular kind of data (non-negative
features, positive or multi-output targets, one feature) get it (``DATA``). Nothing is dropped
silently: ``EXCLUDED`` lists every estimator left out, with the reason, and the number covered is
asserted.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from opentelemetry.trace import StatusCode
from sklearn.base import is_classifier, is_regressor
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils import all_estimators

from helpers import assert_identical

from otel_mlmon import SklearnInstrumentor, semconv

METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "score_samples")
MIN_COVERED = 60
N_TRAIN, N_TEST, N_FEATURES = 60, 20, 5

ALL = dict(all_estimators(type_filter=["classifier", "regressor"]))

# Estimators left out, each with its reason. Keep it empty unless an estimator genuinely cannot be
# built with default parameters (plus a simple sub-estimator) and fitted on a small dataset.
EXCLUDED: dict[str, str] = {}


# ------------------------------------------------------------------------------------- data
def _split(X, y):
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


def _classification(n_classes):
    # n_redundant=0 keeps every class covariance full rank (QuadraticDiscriminantAnalysis).
    X, y = make_classification(
        n_samples=N_TRAIN + N_TEST, n_features=N_FEATURES, n_informative=3, n_redundant=0,
        n_classes=n_classes, n_clusters_per_class=1, random_state=0,
    )  # fmt: skip
    return X, y


def _nonnegative(X):
    return X - X.min(axis=0)


def make_data(kind):
    """(X_train, y_train, X_test) for a data kind."""
    if kind in ("binary", "multiclass"):
        X, y = _classification(2 if kind == "binary" else 3)
    elif kind in ("binary-nonneg", "multiclass-nonneg"):
        X, y = _classification(2 if kind.startswith("binary") else 3)
        X = _nonnegative(X)
    elif kind in ("binary-categorical", "multiclass-categorical"):
        X, y = _classification(2 if kind.startswith("binary") else 3)
        X = np.floor(_nonnegative(X)).astype(np.int64)
    elif kind == "multilabel":
        X, y = make_multilabel_classification(
            n_samples=N_TRAIN + N_TEST, n_features=N_FEATURES, n_classes=3, random_state=0
        )
    elif kind == "regression":
        X, y = make_regression(n_samples=N_TRAIN + N_TEST, n_features=N_FEATURES, noise=1.0, random_state=0)
    elif kind == "regression-positive":
        X, y = make_regression(n_samples=N_TRAIN + N_TEST, n_features=N_FEATURES, noise=1.0, random_state=0)
        y = np.exp(y / np.abs(y).max())  # strictly positive targets (Gamma, Poisson)
    elif kind == "regression-multioutput":
        X, y = make_regression(
            n_samples=N_TRAIN + N_TEST, n_features=N_FEATURES, n_targets=2, noise=1.0, random_state=0
        )
    elif kind == "regression-1feature":
        X, y = make_regression(n_samples=N_TRAIN + N_TEST, n_features=1, noise=1.0, random_state=0)
    else:  # pragma: no cover
        raise AssertionError(kind)
    X_train, y_train, X_test, _ = _split(X, y)
    return X_train, y_train, X_test


# Data kinds an estimator is tested on, when not the default (classifiers: binary and multiclass;
# regressors: single-output regression).
DATA: dict[str, tuple[str, ...]] = {
    # Non-negative (count-like) features.
    "MultinomialNB": ("binary-nonneg", "multiclass-nonneg"),
    "ComplementNB": ("binary-nonneg", "multiclass-nonneg"),
    "CategoricalNB": ("binary-categorical", "multiclass-categorical"),
    # Targets in the loss's domain (y > 0).
    "GammaRegressor": ("regression-positive",),
    "PoissonRegressor": ("regression-positive",),
    # Multi-output targets.
    "MultiTaskElasticNet": ("regression-multioutput",),
    "MultiTaskElasticNetCV": ("regression-multioutput",),
    "MultiTaskLasso": ("regression-multioutput",),
    "MultiTaskLassoCV": ("regression-multioutput",),
    "CCA": ("regression-multioutput",),  # default n_components=2 needs two targets
    "PLSCanonical": ("regression-multioutput",),  # idem
    "MultiOutputRegressor": ("regression-multioutput",),
    "RegressorChain": ("regression-multioutput",),
    "MultiOutputClassifier": ("multilabel",),
    "ClassifierChain": ("multilabel",),
    # One feature only.
    "IsotonicRegression": ("regression-1feature",),
    # Binary classification only.
    "FixedThresholdClassifier": ("binary",),
    "TunedThresholdClassifierCV": ("binary",),
}


# ------------------------------------------------------------------------------- estimators
def _lr():
    return LogisticRegression()


# Meta-estimators that cannot be built without a sub-estimator (or whose default sub-estimator is
# None and required): built with a simple base estimator, all other parameters default.
BUILDERS = {
    "ClassifierChain": lambda cls: cls(_lr()),
    "MultiOutputClassifier": lambda cls: cls(_lr()),
    "MultiOutputRegressor": lambda cls: cls(Ridge()),
    "RegressorChain": lambda cls: cls(Ridge()),
    "OneVsOneClassifier": lambda cls: cls(_lr()),
    "OneVsRestClassifier": lambda cls: cls(_lr()),
    "OutputCodeClassifier": lambda cls: cls(_lr()),
    "FixedThresholdClassifier": lambda cls: cls(_lr()),
    "TunedThresholdClassifierCV": lambda cls: cls(_lr()),
    "SelfTrainingClassifier": lambda cls: cls(_lr()),  # estimator=None is rejected at fit
    "StackingClassifier": lambda cls: cls([("lr", _lr()), ("tree", DecisionTreeClassifier())]),
    "StackingRegressor": lambda cls: cls([("lin", LinearRegression()), ("tree", DecisionTreeRegressor())]),
    "VotingClassifier": lambda cls: cls([("lr", _lr()), ("tree", DecisionTreeClassifier())]),
    "VotingRegressor": lambda cls: cls([("lin", LinearRegression()), ("tree", DecisionTreeRegressor())]),
}

# Extra inference calls with keyword arguments (tuple outputs), by estimator name.
EXTRA_CALLS = {
    # ("predict", {"return_cov": True}) is in test_tuple_or_list_outputs_do_not_break_output_statistics.
    "GaussianProcessRegressor": [("predict", {"return_std": True})],
    "BayesianRidge": [("predict", {"return_std": True})],
    "ARDRegression": [("predict", {"return_std": True})],
}


def build(name):
    cls = ALL[name]
    estimator = BUILDERS[name](cls) if name in BUILDERS else cls()
    # Fixed random_state everywhere it exists, sub-estimators included.
    seeds = {
        key: 0
        for key in estimator.get_params(deep=True)
        if key == "random_state" or key.endswith("__random_state")
    }
    if seeds:
        estimator.set_params(**seeds)
    return estimator


def _default_kinds(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated estimators are still tested
        estimator = build(name)
    if is_classifier(estimator):
        return ("binary", "multiclass")
    if is_regressor(estimator):
        return ("regression",)
    raise AssertionError(f"{name} is neither a classifier nor a regressor")


def _kinds(name):
    return DATA.get(name) or _default_kinds(name)


CASES = [
    pytest.param(name, kind, id=f"{name}-{kind}")
    for name in sorted(ALL)
    if name not in EXCLUDED
    for kind in _kinds(name)
]
COVERED = sorted({case.values[0] for case in CASES})


# ------------------------------------------------------------------------------- comparison
def _call(estimator, method, X, kwargs):
    """('ok', result) or ('raise', exception type, message)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ("ok", getattr(estimator, method)(X, **kwargs))
        except Exception as exc:  # noqa: BLE001 - compared with the instrumented call
            return ("raise", type(exc), str(exc))


def _calls(estimator, name):
    calls = [(m, {}) for m in METHODS if hasattr(estimator, m)]
    return calls + EXTRA_CALLS.get(name, [])


# ------------------------------------------------------------------------------------ tests
def test_coverage_is_large_and_exclusions_are_explicit():
    assert len(ALL) >= 90, sorted(ALL)  # all_estimators() did find scikit-learn's estimators
    stale = set(EXCLUDED) - set(ALL)
    assert not stale, f"EXCLUDED names not in all_estimators(): {stale}"
    assert all(reason.strip() for reason in EXCLUDED.values())
    assert set(COVERED) | set(EXCLUDED) == set(ALL)
    assert len(COVERED) >= MIN_COVERED, f"only {len(COVERED)} estimators covered"


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_instrumented_outputs_are_bitwise_identical(name, kind, make_telemetry):
    assert not SklearnInstrumentor().is_instrumented_by_opentelemetry  # truly uninstrumented
    X_train, y_train, X_test = make_data(kind)

    # Uninstrumented: fit, then every inference method.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = build(name).fit(X_train, y_train)
    # Inputs: unseen rows, and training rows (which, e.g., RadiusNeighbors* can always score).
    inputs = {"test": X_test, "train": X_train[:N_TEST]}
    calls = [(x, method, kwargs) for x in inputs for method, kwargs in _calls(estimator, name)]
    assert calls and calls[0][1] == "predict", f"{name} has no predict"
    expected = [_call(estimator, method, inputs[x], kwargs) for x, method, kwargs in calls]
    assert any(outcome[0] == "ok" for outcome in expected), f"{name}: every call failed: {expected}"

    # Instrumented: the same calls on the same fitted object.
    telemetry = make_telemetry()
    assert _calls(estimator, name) == [(m, k) for x, m, k in calls if x == "test"]  # same methods
    class_name = f"{type(estimator).__module__}.{type(estimator).__qualname__}"
    for (x, method, kwargs), before in zip(calls, expected):
        telemetry.clear()
        after = _call(estimator, method, inputs[x], kwargs)
        where = f"{name}.{method}(X_{x}{', ' if kwargs else ''}{kwargs or ''})"
        assert after[0] == before[0], f"{where}: {before[:1]} uninstrumented, {after} instrumented"
        if before[0] == "ok":
            assert_identical(before[1], after[1], where)
        else:
            assert after[1:] == before[1:], where

        spans = telemetry.spans()
        assert len(spans) == 1, f"{where}: {len(spans)} spans: {[s.name for s in spans]}"
        span = spans[0]
        assert span.name == f"{method} {type(estimator).__name__}"
        assert span.attributes[semconv.ML_OPERATION] == method
        assert span.attributes[semconv.ML_MODEL_CLASS] == class_name
        assert span.attributes[semconv.ML_BATCH_SIZE] == N_TEST
        if before[0] == "ok":
            assert span.status.status_code is StatusCode.UNSET
        else:
            assert span.status.status_code is StatusCode.ERROR
            assert semconv.ERROR_TYPE in span.attributes

    # otel-mlmon must not have failed internally on any of these outputs.
    assert telemetry.instrumentor.force_flush()
    internal = telemetry.points(semconv.MONITOR_ERROR_COUNT.name)
    assert not internal, f"{name}: otel-mlmon internal errors: {[(a, p.value) for _, _, a, p in internal]}"


# ------------------------------------------------------------------------------- known bugs
def _gpr_return_cov():
    X_train, y_train, X_test = make_data("regression")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build("GaussianProcessRegressor").fit(X_train, y_train)
    return model, "predict", X_test, {"return_cov": True}  # -> (mean (n,), cov (n, n))


def _multioutput_proba_mixed_classes():
    X, y = _classification(3)
    Y = np.column_stack([y % 2, y])  # output 0 has two classes, output 1 three
    model = build("MultiOutputClassifier").fit(X[:N_TRAIN], Y[:N_TRAIN])
    return model, "predict_proba", X[N_TRAIN:], {}  # -> [(n, 2), (n, 3)]


@pytest.mark.parametrize("make_case", [_gpr_return_cov, _multioutput_proba_mixed_classes])
def test_tuple_or_list_outputs_do_not_break_output_statistics(make_case, make_telemetry):
    model, method, X, kwargs = make_case()
    before = _call(model, method, X, kwargs)
    telemetry = make_telemetry()
    after = _call(model, method, X, kwargs)
    assert before[0] == after[0] == "ok"
    assert_identical(before[1], after[1])
    assert len(telemetry.spans()) == 1
    assert telemetry.instrumentor.force_flush()
    assert not telemetry.points(semconv.MONITOR_ERROR_COUNT.name)
