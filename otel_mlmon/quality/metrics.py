"""Realized quality metrics over a sliding window of labelled predictions (numpy only).

Each value equals what ``sklearn.metrics`` returns on the same window: the same formulas, in
the same order of floating-point operations (the test suite checks equality). Definitions:

Classification (labels are compared in sorted order, as scikit-learn does):

* ``accuracy``: share of rows whose predicted label equals the true one.
* Binary models (two classes): ``precision``, ``recall`` (= ``tpr``), ``f1`` and ``fpr`` of the
  positive class, by default the second of the sorted classes (``1`` for ``{0, 1}``, as
  scikit-learn's ``pos_label=1``), configurable (``pos_label``). ``roc_auc`` from the positive
  class's probability (or the decision score when no probability was recorded).
* Multiclass models: ``precision``, ``recall``, ``f1`` are macro averages over the labels that
  occur in the window (as true or predicted label), like ``average="macro"``; ``tpr`` is macro
  recall and ``fpr`` the macro average of one-vs-rest false positive rates over the same labels.
  ``roc_auc`` is one-vs-rest, macro-averaged over all the model's classes
  (``multi_class="ovr"``), from probabilities.
* ``log_loss`` from probabilities (clipped to ``[eps, 1 - eps]`` as scikit-learn does).

Regression: ``mae``, ``rmse``, ``r2``.

Undefined values are omitted, never NaN: a per-class precision/recall/F1/FPR whose denominator
is zero is left out of the macro average (scikit-learn's ``zero_division=np.nan``), and the
metric is omitted when no class is defined; ``roc_auc`` needs both outcomes of every class in
the window; ``r2`` needs two rows and a non-constant truth.

Windows are bounded ring buffers: appending is O(rows), computing is O(window) and happens at
collection time, not per prediction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "ClassificationWindow",
    "RegressionWindow",
    "binary_roc_auc",
    "classification_metrics",
    "regression_metrics",
]

_EPS = float(np.finfo(np.float64).eps)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` as float64, NaN where the denominator is 0."""
    denominator = np.asarray(denominator, dtype=np.float64).copy()
    mask = denominator == 0
    denominator[mask] = 1
    result = np.asarray(numerator, dtype=np.float64) / denominator
    result[mask] = np.nan
    return result


def _nanmean(values: np.ndarray) -> float | None:
    if values.size == 0 or np.all(np.isnan(values)):
        return None
    return float(np.nanmean(values))


def binary_roc_auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve of ``score`` for the boolean truth ``positive``.

    The construction of ``sklearn.metrics.roc_curve`` (distinct thresholds, collinear points
    dropped) followed by the trapezoidal rule. ``None`` unless both outcomes occur.

    >>> binary_roc_auc(np.array([False, False, True, True]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    n = positive.size
    if n == 0 or positive.all() or not positive.any() or not np.isfinite(score).all():
        return None
    order = np.argsort(score, kind="stable")[::-1]
    score = score[order]
    truth = positive[order].astype(np.float64)
    distinct = np.nonzero(np.diff(score))[0]
    thresholds = np.concatenate([distinct, [n - 1]])
    tps = np.cumsum(truth, dtype=np.float64)[thresholds]
    fps = 1 + thresholds.astype(np.float64) - tps
    if fps.shape[0] > 2:
        keep = np.where(np.concatenate([[True], np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), [True]]))[0]
        fps, tps = fps[keep], tps[keep]
    tps = np.concatenate([[0.0], tps])
    fps = np.concatenate([[0.0], fps])
    fpr, tpr = fps / fps[-1], tps / tps[-1]
    return float(np.trapezoid(tpr, fpr))


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray | None,
    n_classes: int,
    pos: int | None = 1,
    proba: np.ndarray | None = None,
    score: np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics of one window. Labels are ranks: ``0 .. n_classes - 1`` in sorted label order.

    ``y_pred`` is -1 on rows without a predicted label, ``proba`` (rows, n_classes; columns in
    rank order) is NaN on rows without probabilities, ``score`` (binary: a score that grows
    with the positive class, e.g. ``decision_function``) NaN on rows without one; it is used
    for ``roc_auc`` only when no row has probabilities. ``pos`` is the rank of the positive
    class of a binary model.
    """
    out: dict[str, float] = {}
    y_true = np.asarray(y_true, dtype=np.intp)
    if y_pred is not None:
        y_pred = np.asarray(y_pred, dtype=np.intp)
        has = y_pred >= 0
        yt, yp = (y_true, y_pred) if has.all() else (y_true[has], y_pred[has])
        if yt.size:
            out.update(_label_metrics(yt, yp, n_classes, pos))
    if proba is not None:
        proba = np.asarray(proba, dtype=np.float64)
        rows = ~np.isnan(proba).any(axis=1)
        proba, yt = (proba, y_true) if rows.all() else (proba[rows], y_true[rows])
        if yt.size and proba.shape[1] == n_classes:
            out.update(_proba_metrics(yt, proba, n_classes, pos))
        else:
            proba = None
    if proba is None and score is not None and n_classes == 2 and pos is not None:
        score = np.asarray(score, dtype=np.float64)
        rows = ~np.isnan(score)
        auc = binary_roc_auc(y_true[rows] == pos, score[rows])
        if auc is not None:
            out["roc_auc"] = auc
    return out


def _label_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, pos: int | None) -> dict[str, float]:
    out = {"accuracy": float(np.average(y_true == y_pred))}
    size = max(n_classes, int(y_true.max()) + 1, int(y_pred.max()) + 1)
    true_sum = np.bincount(y_true, minlength=size)
    pred_sum = np.bincount(y_pred, minlength=size)
    tp_sum = np.bincount(y_true[y_true == y_pred], minlength=size)
    if n_classes == 2 and pos is not None:
        labels = np.array([pos])
    else:
        labels = np.flatnonzero((true_sum > 0) | (pred_sum > 0))
    tp, pred, true = tp_sum[labels], pred_sum[labels], true_sum[labels]
    n = y_true.size
    fp = pred - tp
    tn = n - true - fp
    precision = _divide(tp, pred)
    recall = _divide(tp, true)
    f1 = _divide(2.0 * tp.astype(np.float64), 1.0 * true.astype(np.float64) + pred.astype(np.float64))
    fpr = _divide(fp, fp + tn)
    for name, values in (("precision", precision), ("recall", recall), ("f1", f1), ("fpr", fpr), ("tpr", recall)):
        value = _nanmean(values)
        if value is not None:
            out[name] = value
    return out


def _proba_metrics(y_true: np.ndarray, proba: np.ndarray, n_classes: int, pos: int | None) -> dict[str, float]:
    out: dict[str, float] = {}
    clipped = np.clip(proba, _EPS, 1 - _EPS)
    loss = -np.log(clipped[np.arange(y_true.size), y_true])
    out["log_loss"] = float(np.average(loss))
    if n_classes == 2:
        if pos is not None:
            auc = binary_roc_auc(y_true == pos, proba[:, pos])
            if auc is not None:
                out["roc_auc"] = auc
    elif n_classes > 2:
        scores = np.zeros(n_classes)
        for c in range(n_classes):
            auc = binary_roc_auc(y_true == c, proba[:, c])
            if auc is None:
                return out
            scores[c] = auc
        out["roc_auc"] = float(np.average(scores))
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² (R² omitted with fewer than 2 rows or a constant truth)."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape((-1, 1))
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape((-1, 1))
    if y_true.size == 0:
        return {}
    out = {
        "mae": float(np.average(np.average(np.abs(y_pred - y_true), axis=0))),
        "rmse": float(np.average(np.sqrt(np.average((y_true - y_pred) ** 2, axis=0)))),
    }
    if y_true.shape[0] >= 2:
        numerator = np.sum(1.0 * (y_true - y_pred) ** 2, axis=0)
        denominator = np.sum(1.0 * (y_true - np.average(y_true, axis=0)) ** 2, axis=0)
        if denominator[0] != 0:
            out["r2"] = float(np.average(1 - (numerator / denominator)))
    return out


class _Ring:
    """Fixed-size ring of rows; ``view()`` returns them oldest first."""

    __slots__ = ("size", "_data", "_head", "_full")

    def __init__(self, size: int, shape: tuple[int, ...], dtype: Any, fill: Any) -> None:
        self.size = size
        self._data = np.full((size, *shape), fill, dtype=dtype)
        self._head = 0
        self._full = False

    def extend(self, values: np.ndarray) -> None:
        n = values.shape[0]
        if n >= self.size:
            self._data[:] = values[n - self.size :]
            self._head, self._full = 0, True
            return
        end = self._head + n
        if end <= self.size:
            self._data[self._head : end] = values
        else:
            split = self.size - self._head
            self._data[self._head :] = values[:split]
            self._data[: n - split] = values[split:]
        if end >= self.size:
            self._full = True
        self._head = end % self.size

    def __len__(self) -> int:
        return self.size if self._full else self._head

    def view(self) -> np.ndarray:
        if not self._full:
            return self._data[: self._head]
        if self._head == 0:
            return self._data
        return np.concatenate((self._data[self._head :], self._data[: self._head]))


def _check_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"window must be an int >= 1, got {size!r}")
    return size


class ClassificationWindow:
    """The last ``size`` labelled predictions of a classifier, as class codes.

    Codes index the model's ``classes`` list (any order; probability columns follow it);
    ``metrics`` maps them to sorted ranks. Rows may lack a predicted label (code -1),
    probabilities, or a binary decision score (which grows with ``classes[1]``, as
    scikit-learn's ``decision_function``).

    >>> w = ClassificationWindow(size=3)
    >>> w.extend(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]))   # the first row slides out
    >>> w.metrics(["no", "yes"])["accuracy"]
    0.6666666666666666
    """

    def __init__(self, size: int = 1000) -> None:
        self.size = _check_size(size)
        self._true = _Ring(self.size, (), np.int32, -1)
        self._pred = _Ring(self.size, (), np.int32, -1)
        self._score = _Ring(self.size, (), np.float64, np.nan)
        self._proba: _Ring | None = None
        self.version = 0

    def __len__(self) -> int:
        return len(self._true)

    def extend(self, y_true: np.ndarray, y_pred: np.ndarray | None = None,
               proba: np.ndarray | None = None, score: np.ndarray | None = None) -> None:  # fmt: skip
        y_true = np.asarray(y_true, dtype=np.int32)
        n = y_true.shape[0]
        if n == 0:
            return
        if proba is not None:
            proba = np.asarray(proba, dtype=np.float64)
            if self._proba is None or self._proba._data.shape[1] != proba.shape[1]:
                # Rows already in the window have no probabilities (of this width).
                self._proba = _Ring(self.size, (proba.shape[1],), np.float64, np.nan)
                self._proba.extend(np.full((len(self._true), proba.shape[1]), np.nan))
        self._true.extend(y_true)
        self._pred.extend(np.full(n, -1, np.int32) if y_pred is None else np.asarray(y_pred, dtype=np.int32))
        self._score.extend(np.full(n, np.nan) if score is None else np.asarray(score, dtype=np.float64))
        if self._proba is not None:
            width = self._proba._data.shape[1]
            self._proba.extend(np.full((n, width), np.nan) if proba is None else proba)
        self.version += 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """``(y_true codes, y_pred codes, proba or None, score)``, oldest first."""
        proba = None if self._proba is None else self._proba.view()
        return self._true.view(), self._pred.view(), proba, self._score.view()

    def metrics(self, classes: list[Any], pos_label: Any = None) -> dict[str, float]:
        """Metrics of the window for a model with these ``classes`` (codes index them)."""
        if len(self) == 0:
            return {}
        n_classes = len(classes)
        try:
            order = sorted(range(n_classes), key=lambda c: classes[c])
        except TypeError:  # labels of mixed types: keep the model's order
            order = list(range(n_classes))
        rank = np.empty(n_classes, dtype=np.intp)
        rank[order] = np.arange(n_classes)
        y_true, y_pred, proba, score = self.arrays()
        pos = None
        if n_classes == 2:
            pos = 1
            if pos_label is not None:
                matches = [c for c in range(2) if classes[c] == pos_label]
                pos = int(rank[matches[0]]) if matches else 1
        yt = rank[y_true]
        yp = np.where(y_pred >= 0, rank[np.maximum(y_pred, 0)], -1)
        if proba is not None and proba.shape[1] == n_classes:
            proba = proba[:, order]
        elif proba is not None:
            proba = None
        if pos is not None and rank[1] != pos:  # the score grows with classes[1]
            score = -score
        return classification_metrics(yt, yp, n_classes, pos, proba, score)


class RegressionWindow:
    """The last ``size`` labelled predictions of a regressor.

    >>> w = RegressionWindow(size=2)
    >>> w.extend(np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 2.0]))
    >>> w.metrics()
    {'mae': 0.5, 'rmse': 0.7071067811865476, 'r2': -1.0}
    """

    def __init__(self, size: int = 1000) -> None:
        self.size = _check_size(size)
        self._true = _Ring(self.size, (), np.float64, np.nan)
        self._pred = _Ring(self.size, (), np.float64, np.nan)
        self.version = 0

    def __len__(self) -> int:
        return len(self._true)

    def extend(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        y_true = np.asarray(y_true, dtype=np.float64)
        if y_true.shape[0] == 0:
            return
        self._true.extend(y_true)
        self._pred.extend(np.asarray(y_pred, dtype=np.float64))
        self.version += 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self._true.view(), self._pred.view()

    def metrics(self) -> dict[str, float]:
        return regression_metrics(*self.arrays())
