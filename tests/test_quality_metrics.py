"""Realized quality metrics equal sklearn.metrics on the same sliding window.

Every value is compared with ``==``: the implementation follows scikit-learn's formulas and
order of floating-point operations. Windows slide: batches of random size are appended and
the metrics are checked against scikit-learn on the last ``size`` rows after every batch.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from otel_mlmon.quality.metrics import (
    ClassificationWindow,
    RegressionWindow,
    binary_roc_auc,
    classification_metrics,
    regression_metrics,
)


def _sk(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def _check(ours: dict, name: str, expected: float) -> None:
    """Equal to scikit-learn, or omitted where scikit-learn's value is undefined (NaN)."""
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        assert name not in ours, f"{name}: expected omitted, got {ours.get(name)!r}"
    else:
        assert name in ours, f"{name} missing, sklearn gives {expected!r}"
        assert ours[name] == float(expected), f"{name}: {ours[name]!r} != sklearn {float(expected)!r}"


def _binary_expected(y_true, y_pred, proba_pos, pos_label, labels):
    neg = [c for c in labels if c != pos_label][0]
    tn, fp, fn, tp = skm.confusion_matrix(y_true, y_pred, labels=[neg, pos_label]).ravel()
    expected = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision": _sk(skm.precision_score, y_true, y_pred, pos_label=pos_label, zero_division=np.nan),
        "recall": _sk(skm.recall_score, y_true, y_pred, pos_label=pos_label, zero_division=np.nan),
        "f1": _sk(skm.f1_score, y_true, y_pred, pos_label=pos_label, zero_division=np.nan),
        "tpr": _sk(skm.recall_score, y_true, y_pred, pos_label=pos_label, zero_division=np.nan),
        "fpr": float(fp / (fp + tn)) if fp + tn else None,
    }
    positive = np.asarray(y_true) == pos_label
    expected["roc_auc"] = _sk(skm.roc_auc_score, positive, proba_pos) if 0 < positive.sum() < positive.size else None
    return expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_sliding_window_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    size = 1000
    window = ClassificationWindow(size)
    y_true_all, y_pred_all, proba_all = [], [], []
    classes = [0, 1]
    for _ in range(12):
        n = int(rng.integers(1, 400))
        p1 = np.round(rng.beta(2, 2, n), int(rng.integers(1, 4)))  # rounding makes score ties
        proba = np.column_stack([1 - p1, p1])
        y_pred = (p1 > 0.5).astype(int)
        y_true = (rng.random(n) < p1).astype(int)
        window.extend(y_true, y_pred, proba)
        y_true_all.append(y_true), y_pred_all.append(y_pred), proba_all.append(proba)
        yt = np.concatenate(y_true_all)[-size:]
        yp = np.concatenate(y_pred_all)[-size:]
        pr = np.concatenate(proba_all)[-size:]
        ours = window.metrics(classes)
        assert len(window) == yt.size
        for name, value in _binary_expected(yt, yp, pr[:, 1], 1, classes).items():
            _check(ours, name, value)
        _check(ours, "log_loss", skm.log_loss(yt, y_proba=pr, labels=classes))
    assert len(window) == size


def test_binary_string_labels_custom_pos_label_and_decision_scores():
    rng = np.random.default_rng(7)
    classes = ["ham", "spam"]
    n = 700
    score = rng.normal(size=n)
    y_true = np.where(rng.random(n) < 1 / (1 + np.exp(-2 * score)), "spam", "ham")
    y_pred = np.where(score > 0.3, "spam", "ham")
    codes = {c: i for i, c in enumerate(classes)}
    window = ClassificationWindow(500)
    window.extend([codes[v] for v in y_true], [codes[v] for v in y_pred], score=score)
    yt, yp, sc = y_true[-500:], y_pred[-500:], score[-500:]
    # Default positive class: the second of the sorted classes ("spam"); AUC from the score.
    ours = window.metrics(classes)
    for name, value in _binary_expected(yt, yp, sc, "spam", classes).items():
        _check(ours, name, value)
    assert "log_loss" not in ours  # no probabilities recorded
    # pos_label="ham": precision/recall/F1/FPR of "ham"; the score grows with "spam".
    ours = window.metrics(classes, pos_label="ham")
    for name, value in _binary_expected(yt, yp, -sc, "ham", classes).items():
        _check(ours, name, value)


def test_binary_undefined_metrics_are_omitted_not_nan():
    window = ClassificationWindow(10)
    window.extend(np.zeros(5, int), np.zeros(5, int), np.tile([0.8, 0.2], (5, 1)))
    ours = window.metrics([0, 1])
    assert ours["accuracy"] == 1.0
    for undefined in ("precision", "recall", "f1", "tpr", "roc_auc"):
        assert undefined not in ours  # no positive predicted nor true, one class only
    assert ours["fpr"] == 0.0
    assert ours["log_loss"] == skm.log_loss(np.zeros(5, int), y_proba=np.tile([0.8, 0.2], (5, 1)), labels=[0, 1])
    assert all(not math.isnan(v) for v in ours.values())


def _multiclass_expected(yt, yp, proba, labels):
    present = np.unique(np.concatenate([yt, yp]))
    mcm = skm.multilabel_confusion_matrix(yt, yp, labels=present)
    fp, tn = mcm[:, 0, 1], mcm[:, 0, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = np.where(fp + tn > 0, fp / np.where(fp + tn > 0, fp + tn, 1), np.nan)
    recall = _sk(skm.recall_score, yt, yp, average="macro", zero_division=np.nan)
    expected = {
        "accuracy": skm.accuracy_score(yt, yp),
        "precision": _sk(skm.precision_score, yt, yp, average="macro", zero_division=np.nan),
        "recall": recall,
        "f1": _sk(skm.f1_score, yt, yp, average="macro", zero_division=np.nan),
        "tpr": recall,
        "fpr": float(np.nanmean(fpr)) if not np.all(np.isnan(fpr)) else None,
        "log_loss": skm.log_loss(yt, y_proba=proba, labels=labels),
    }
    if set(np.unique(yt)) == set(labels):
        expected["roc_auc"] = skm.roc_auc_score(yt, proba, multi_class="ovr", average="macro", labels=labels)
    else:
        expected["roc_auc"] = None
    return expected


@pytest.mark.parametrize("seed", [0, 1])
def test_multiclass_sliding_window_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = [0, 1, 2, 3]
    size = 1200
    window = ClassificationWindow(size)
    history = {"yt": [], "yp": [], "proba": []}
    for step in range(10):
        n = int(rng.integers(50, 500))
        proba = rng.dirichlet([1.0, 2.0, 0.5, 1.5], size=n)
        if step % 3 == 0:  # coarse probabilities (multiples of 1/20): many tied scores
            proba = np.array([rng.multinomial(20, row) for row in proba]) / 20
        yp = np.argmax(proba, axis=1)
        yt = np.array([rng.choice(4, p=row / row.sum()) for row in proba])
        window.extend(yt, yp, proba)
        for key, value in (("yt", yt), ("yp", yp), ("proba", proba)):
            history[key].append(value)
        yt_w = np.concatenate(history["yt"])[-size:]
        yp_w = np.concatenate(history["yp"])[-size:]
        pr_w = np.concatenate(history["proba"])[-size:]
        ours = window.metrics(labels)
        for name, value in _multiclass_expected(yt_w, yp_w, pr_w, labels).items():
            _check(ours, name, value)


def test_multiclass_window_missing_classes_and_unsorted_codes():
    """Macro averages run over labels present in the window, as sklearn's default; classes
    learned in first-seen order (codes) are mapped to sorted order; AUC needs every class."""
    rng = np.random.default_rng(3)
    classes = ["dog", "cat", "bird", "fish"]  # code order, not sorted
    sorted_labels = sorted(classes)
    n = 300
    proba_sorted = rng.dirichlet([1, 1, 1, 1], size=n)
    proba_sorted[:, sorted_labels.index("fish")] = 0.0  # "fish" never predicted nor true
    proba_sorted /= proba_sorted.sum(axis=1, keepdims=True)
    yt = np.array([sorted_labels[rng.choice(4, p=row)] for row in proba_sorted])
    yp = np.array([sorted_labels[i] for i in np.argmax(proba_sorted, axis=1)])
    code = {c: i for i, c in enumerate(classes)}
    proba_codes = proba_sorted[:, [sorted_labels.index(c) for c in classes]]
    window = ClassificationWindow(n)
    window.extend([code[v] for v in yt], [code[v] for v in yp], proba_codes)
    ours = window.metrics(classes)
    expected = _multiclass_expected(yt, yp, proba_sorted, sorted_labels)
    assert expected["roc_auc"] is None  # "fish" absent from y_true: sklearn gives NaN
    for name, value in expected.items():
        _check(ours, name, value)


def test_rows_without_probabilities_or_predicted_label():
    """Label metrics use rows with a predicted label; probability metrics rows with proba."""
    rng = np.random.default_rng(11)
    n = 400
    p1 = rng.random(n)
    proba = np.column_stack([1 - p1, p1])
    yt = (rng.random(n) < p1).astype(int)
    yp = (p1 > 0.5).astype(int)
    has_pred = rng.random(n) < 0.7
    has_proba = rng.random(n) < 0.6
    window = ClassificationWindow(n)
    window.extend(yt, np.where(has_pred, yp, -1), np.where(has_proba[:, None], proba, np.nan))
    ours = window.metrics([0, 1])
    for name, value in _binary_expected(yt[has_pred], yp[has_pred], p1[has_pred], 1, [0, 1]).items():
        if name != "roc_auc":
            _check(ours, name, value)
    _check(ours, "roc_auc", skm.roc_auc_score(yt[has_proba], p1[has_proba]))
    _check(ours, "log_loss", skm.log_loss(yt[has_proba], y_proba=proba[has_proba], labels=[0, 1]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_sliding_window_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    size = 1000
    window = RegressionWindow(size)
    truth, predicted = [], []
    for _ in range(8):
        n = int(rng.integers(1, 450))
        y = rng.normal(50, 20, n)
        y_hat = y + rng.normal(0, 5, n)
        if seed == 2:  # integer targets go through the float path too
            y, y_hat = np.round(y), np.round(y_hat)
        window.extend(y, y_hat)
        truth.append(y), predicted.append(y_hat)
        yt, yp = np.concatenate(truth)[-size:], np.concatenate(predicted)[-size:]
        ours = window.metrics()
        _check(ours, "mae", skm.mean_absolute_error(yt, yp))
        _check(ours, "rmse", skm.root_mean_squared_error(yt, yp))
        r2 = _sk(skm.r2_score, yt, yp, force_finite=False)
        _check(ours, "r2", r2 if np.isfinite(r2) else None)


def test_regression_undefined_r2_omitted():
    assert "r2" not in regression_metrics(np.array([3.0]), np.array([2.0]))  # one row
    ours = regression_metrics(np.array([2.0, 2.0, 2.0]), np.array([1.0, 2.0, 3.0]))  # constant truth
    assert "r2" not in ours and ours["mae"] == skm.mean_absolute_error([2, 2, 2], [1, 2, 3])
    assert regression_metrics(np.array([]), np.array([])) == {}


def test_binary_roc_auc_matches_sklearn_on_many_tied_scores():
    rng = np.random.default_rng(5)
    for _ in range(20):
        n = int(rng.integers(2, 300))
        positive = rng.random(n) < rng.random()
        score = rng.integers(0, int(rng.integers(1, 8)), n).astype(float)
        expected = _sk(skm.roc_auc_score, positive, score) if 0 < positive.sum() < n else None
        _check({"roc_auc": v} if (v := binary_roc_auc(positive, score)) is not None else {}, "roc_auc", expected)


def test_classification_metrics_function_on_ranks():
    y_true = np.array([0, 1, 2, 2, 1])
    y_pred = np.array([0, 2, 2, 2, 1])
    ours = classification_metrics(y_true, y_pred, n_classes=3, pos=None)
    _check(ours, "f1", skm.f1_score(y_true, y_pred, average="macro"))
    _check(ours, "accuracy", skm.accuracy_score(y_true, y_pred))


def test_window_is_bounded_and_validates_size():
    window = ClassificationWindow(5)
    window.extend(np.arange(12) % 2, np.arange(12) % 2)
    assert len(window) == 5
    y_true, y_pred, proba, score = window.arrays()
    assert y_true.tolist() == [1, 0, 1, 0, 1] and proba is None and score.shape == (5,)
    with pytest.raises(ValueError, match="window"):
        RegressionWindow(0)

