"""Label-free estimated quality: confidence-based performance estimation (CBPE).

Before ground truth arrives, a classifier's probabilities already say how often it should be
right, *if they are calibrated*: a row predicted with probability 0.8 is correct 80 % of the
time. Over a sliding window of the most recent ``predict_proba`` outputs (the idea of
NannyML's CBPE):

* ``accuracy`` = mean over rows of P(predicted class is correct) = mean of the maximum
  probability (the predicted class is the arg-max).
* Binary models, with ``p`` the (calibrated) probability of the positive class and the
  predicted class from the arg-max: the expected confusion matrix is ``TP = Σ p`` and
  ``FP = Σ (1 - p)`` over rows predicted positive, ``FN = Σ p`` and ``TN = Σ (1 - p)`` over rows
  predicted negative; expected ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``,
  ``f1 = 2 TP / (2 TP + FP + FN)``.

Calibration (optional, on by default): once ``min_calibration_labels`` labelled rows with
probabilities are available (from the realized-quality window), a histogram-binning
calibrator (Zadrozny & Elkan, 2001) is fitted on them: equal-frequency bins of the
confidence (binary: of the positive-class probability), each mapped to the observed rate of
correct predictions (binary: of positives) in that bin. Estimates then use calibrated
probabilities. Without enough labels the raw probabilities are used, which suits models that
are calibrated already (logistic regression, ``CalibratedClassifierCV``). Binning is coarse
(a step function); it corrects systematic over/under-confidence, not small errors.

The estimate is only as good as the calibration on the *current* data: it reacts to covariate
shift (inputs moving to regions of low confidence) but cannot see concept drift (the same
inputs now meaning other labels).

Cost: ``update`` is O(rows); ``estimate`` is O(window) and runs at collection time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from otel_mlmon.quality.metrics import _Ring, _check_size

__all__ = ["CBPE", "BinningCalibrator"]


class BinningCalibrator:
    """Histogram binning: equal-frequency bins of ``x`` -> mean of the 0/1 outcome ``y``.

    >>> c = BinningCalibrator(n_bins=2, min_per_bin=2).fit(np.array([.1, .2, .8, .9]), np.array([0, 1, 1, 1]))
    >>> c.transform(np.array([0.15, 0.85])).tolist()
    [0.5, 1.0]
    """

    def __init__(self, n_bins: int = 10, min_per_bin: int = 20) -> None:
        if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
            raise ValueError(f"n_bins must be an int >= 1, got {n_bins!r}")
        if isinstance(min_per_bin, bool) or not isinstance(min_per_bin, int) or min_per_bin < 1:
            raise ValueError(f"min_per_bin must be an int >= 1, got {min_per_bin!r}")
        self.n_bins = n_bins
        self.min_per_bin = min_per_bin
        self._edges: np.ndarray | None = None
        self._values: np.ndarray | None = None

    @property
    def fitted(self) -> bool:
        return self._values is not None

    def unfitted(self) -> BinningCalibrator:
        """A fresh calibrator with the same settings."""
        return BinningCalibrator(self.n_bins, self.min_per_bin)

    def fit(self, x: np.ndarray, y: np.ndarray) -> BinningCalibrator:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        bins = min(self.n_bins, x.size // self.min_per_bin)
        if bins < 1:
            self._edges = self._values = None
            return self
        edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
        index = np.searchsorted(edges, x, side="right")
        counts = np.bincount(index, minlength=edges.size + 1)
        sums = np.bincount(index, weights=y, minlength=edges.size + 1)
        values = np.full(edges.size + 1, float(y.mean()))
        filled = counts > 0
        values[filled] = sums[filled] / counts[filled]
        self._edges, self._values = edges, values
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._values is None or self._edges is None:
            return x
        return self._values[np.searchsorted(self._edges, x, side="right")]


class CBPE:
    """Estimated accuracy (and binary precision/recall/F1) of the last ``window`` predictions.

    ``pos`` is the column of the positive class for binary models (default 1).

    >>> est = CBPE(window=4)
    >>> est.update(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]))
    >>> round(est.estimate()["accuracy"], 3)
    0.75
    """

    def __init__(self, window: int = 1000, calibrate: bool = True, n_bins: int = 10,
                 min_calibration_labels: int = 200) -> None:  # fmt: skip
        self.window = _check_size(window)
        if not isinstance(calibrate, bool):
            raise ValueError(f"calibrate must be a bool, got {calibrate!r}")
        minimum = min_calibration_labels
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
            raise ValueError(f"min_calibration_labels must be an int >= 1, got {min_calibration_labels!r}")
        self.calibrate = calibrate
        self.n_bins = n_bins
        self.min_calibration_labels = min_calibration_labels
        self._reset()

    def _reset(self) -> None:
        self._confidence = _Ring(self.window, (), np.float64, np.nan)
        self._positive = _Ring(self.window, (), np.float64, np.nan)  # binary: P(positive)
        self._predicted = _Ring(self.window, (), np.bool_, False)  # binary: arg-max is positive
        self._n_columns: int | None = None
        self._pos = 1
        per_bin = max(1, self.min_calibration_labels // (2 * self.n_bins))
        self._accuracy_calibrator = BinningCalibrator(self.n_bins, per_bin)
        self._positive_calibrator = BinningCalibrator(self.n_bins, per_bin)
        self.version = 0

    def reset(self) -> None:
        self._reset()

    def __len__(self) -> int:
        return len(self._confidence)

    def update(self, proba: np.ndarray, pos: int = 1) -> None:
        """Add the probability rows of one call (columns = the model's classes)."""
        proba = np.asarray(proba, dtype=np.float64)
        if proba.ndim != 2 or proba.shape[0] == 0 or proba.shape[1] < 2:
            return
        finite = np.isfinite(proba).all(axis=1)
        if not finite.all():
            proba = proba[finite]
            if proba.shape[0] == 0:
                return
        if self._n_columns != proba.shape[1] or self._pos != pos:
            self._reset()
            self._n_columns, self._pos = proba.shape[1], pos
        predicted = np.argmax(proba, axis=1)
        self._confidence.extend(proba[np.arange(proba.shape[0]), predicted])
        if proba.shape[1] == 2:
            self._positive.extend(proba[:, pos])
            self._predicted.extend(predicted == pos)
        self.version += 1

    def fit_calibration(self, proba: np.ndarray, y_true: np.ndarray) -> bool:
        """Fit the calibrators on labelled rows (``y_true``: column index of the true class).

        Returns whether calibration is in use (enough rows, ``calibrate=True``).
        """
        proba = np.asarray(proba, dtype=np.float64)
        y_true = np.asarray(y_true, dtype=np.intp)
        keep = np.isfinite(proba).all(axis=1) if proba.ndim == 2 else np.zeros(0, bool)
        if not self.calibrate or proba.ndim != 2 or proba.shape[1] < 2 or keep.sum() < self.min_calibration_labels:
            self._accuracy_calibrator = self._accuracy_calibrator.unfitted()
            self._positive_calibrator = self._positive_calibrator.unfitted()
            return False
        proba, y_true = proba[keep], y_true[keep]
        predicted = np.argmax(proba, axis=1)
        self._accuracy_calibrator.fit(proba[np.arange(proba.shape[0]), predicted], predicted == y_true)
        if proba.shape[1] == 2:
            self._positive_calibrator.fit(proba[:, self._pos], y_true == self._pos)
        return self._accuracy_calibrator.fitted

    @property
    def calibrated(self) -> bool:
        return self._accuracy_calibrator.fitted

    def estimate(self) -> dict[str, float]:
        """``{"accuracy": ..., ["precision", "recall", "f1" for binary models]}``; empty
        before any probabilities. Undefined values (no expected positives) are omitted."""
        if len(self._confidence) == 0:
            return {}
        out: dict[str, Any] = {}
        if self._n_columns == 2:
            p = self._positive_calibrator.transform(self._positive.view())
            predicted = self._predicted.view()
            tp = float(p[predicted].sum())
            fp = float((1 - p[predicted]).sum())
            fn = float(p[~predicted].sum())
            tn = float((1 - p[~predicted]).sum())
            out["accuracy"] = (tp + tn) / p.size
            if tp + fp > 0:
                out["precision"] = tp / (tp + fp)
            if tp + fn > 0:
                out["recall"] = tp / (tp + fn)
            if 2 * tp + fp + fn > 0:
                out["f1"] = 2 * tp / (2 * tp + fp + fn)
        else:
            out["accuracy"] = float(np.mean(self._accuracy_calibrator.transform(self._confidence.view())))
        return out
