"""The quality state of one model: its kind and classes, how a label is checked against them,
the realized-quality window and the label-free estimate (CBPE)."""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from otel_mlmon.quality.cbpe import CBPE
from otel_mlmon.quality.metrics import ClassificationWindow, RegressionWindow
from otel_mlmon.quality.prediction_store import ModelKey, StoredPrediction

__all__ = ["CLASSIFICATION", "REGRESSION", "HubSettings", "ModelQuality", "is_number"]

CLASSIFICATION, REGRESSION = "classification", "regression"


class HubSettings(Protocol):
    """The settings of the :class:`~otel_mlmon.quality.tracker.QualityHub` a model reads."""

    window: int
    calibrate: bool
    max_classes: int
    pos_label: Any


def is_number(value: Any) -> bool:
    if type(value) in (int, float):
        return True
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def _family(value: Any) -> str:
    if isinstance(value, (bool, int, float, np.number, np.bool_)):
        return "number"
    return type(value).__name__


class ModelQuality:
    """Per-model state: kind, classes, windows, cached metrics."""

    def __init__(self, key: ModelKey, kind: str, classes: list[Any] | None, fixed: bool, hub: HubSettings) -> None:
        self.key = key
        self.kind = kind
        self.fixed = fixed
        self._hub = hub
        self.classes: list[Any] = []
        self.code_of: dict[Any, int] = {}
        self.families: set[str] = set()
        self.revision = 1  # of the info (kind, classes); persisted up to ``saved``
        self.saved = 0
        self._pos_cache: tuple[Any, int] | None = None
        if classes:
            self._set_classes(classes)
        self._new_windows()

    def _new_windows(self) -> None:
        size = self._hub.window
        self.window: ClassificationWindow | RegressionWindow = (
            ClassificationWindow(size) if self.kind == CLASSIFICATION else RegressionWindow(size)
        )
        self.cbpe = CBPE(size, calibrate=self._hub.calibrate) if self.kind == CLASSIFICATION else None
        self.cache_version = -1
        self.cache: dict[str, float] = {}
        self.calibrated_version = -1

    def _set_classes(self, classes: list[Any]) -> None:
        self.classes = []
        self.code_of = {}
        self.families = set()
        for value in classes:
            self._add_class(value)

    def _add_class(self, value: Any) -> int | None:
        try:
            code = self.code_of.get(value)
        except TypeError:
            return None
        if code is None:
            if len(self.classes) >= self._hub.max_classes:
                return None
            code = self.code_of[value] = len(self.classes)
            self.classes.append(value)
            self.families.add(_family(value))
            self.revision += 1
        return code

    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, "classes": list(self.classes), "fixed": self.fixed}

    def reset(self, kind: str, classes: list[Any] | None, fixed: bool) -> None:
        self.kind, self.fixed = kind, fixed
        self._set_classes(classes or [])
        self.revision += 1
        self._new_windows()

    # -------------------------------------------------------------- labels
    def label(self, value: Any) -> Any:
        """The label as the window stores it (class code or float), or None if invalid."""
        if self.kind == REGRESSION:
            if not is_number(value):
                return None
            number = float(value)
            return number if math.isfinite(number) else None
        if isinstance(value, float) and math.isnan(value):
            return None
        try:
            code = self.code_of.get(value)
        except TypeError:
            return None
        if code is None and not self.fixed and value is not None and _family(value) in self.families:
            code = self._add_class(value)
        return code

    def predicted_code(self, y_pred: Any, proba: np.ndarray | None) -> int:
        if y_pred is not None:
            try:
                code = self.code_of.get(y_pred)
            except TypeError:
                code = None
            if code is not None:
                return code
        if proba is not None and proba.size == len(self.classes):
            return int(np.argmax(proba))
        return -1

    def pos_code(self) -> int:
        """Column of the positive class (binary models); cached per classes and setting."""
        cache_key = (self.revision, self._hub.pos_label)
        if self._pos_cache is not None and self._pos_cache[0] == cache_key:
            return self._pos_cache[1]
        code = self._pos_code()
        self._pos_cache = (cache_key, code)
        return code

    def _pos_code(self) -> int:
        pos_label = self._hub.pos_label
        if pos_label is not None:
            try:
                code = self.code_of.get(pos_label)
            except TypeError:
                code = None
            if code is not None:
                return code
        try:
            order = sorted(range(len(self.classes)), key=lambda c: self.classes[c])
        except TypeError:
            order = list(range(len(self.classes)))
        return order[1] if len(order) > 1 else 0

    def metrics(self) -> dict[str, float]:
        window = self.window
        if window.version != self.cache_version:
            if isinstance(window, ClassificationWindow):
                self.cache = window.metrics(self.classes, self._hub.pos_label)
            else:
                self.cache = window.metrics()
            self.cache_version = window.version
        return self.cache

    def estimated(self) -> dict[str, float]:
        cbpe = self.cbpe
        if cbpe is None or len(cbpe) == 0:
            return {}
        window = self.window
        if cbpe.calibrate and isinstance(window, ClassificationWindow) and window.version != self.calibrated_version:
            y_true, _, proba, _ = window.arrays()
            if proba is not None and proba.shape[1] == len(self.classes):
                rows = ~np.isnan(proba).any(axis=1)
                cbpe.fit_calibration(proba[rows], y_true[rows])
            self.calibrated_version = window.version
        return cbpe.estimate()

    def add_labels(self, rows: list[tuple[int, StoredPrediction]], converted: dict[tuple[int, ModelKey], Any]) -> None:
        """Joined predictions into the realized-quality window: ``rows`` are (position in the
        labels, stored prediction); ``converted[(position, key)]`` is the label as :meth:`label`
        returned it."""
        key, state = self.key, self
        if state.kind == REGRESSION:
            pairs = [(converted[(p, key)], pred.y_pred) for p, pred in rows if is_number(pred.y_pred)]
            if pairs:
                truth, predicted = zip(*pairs)
                state.window.extend(np.array(truth, dtype=float), np.array(predicted, dtype=float))
            return
        n_classes = len(state.classes)
        y_true = np.array([converted[(p, key)] for p, _ in rows], dtype=np.int32)
        y_pred = np.array([state.predicted_code(pred.y_pred, pred.proba) for _, pred in rows], dtype=np.int32)
        proba = None
        if any(pred.proba is not None and pred.proba.size == n_classes for _, pred in rows):
            proba = np.full((len(rows), n_classes), np.nan)
            for j, (_, pred) in enumerate(rows):
                if pred.proba is not None and pred.proba.size == n_classes:
                    proba[j] = pred.proba
        score = np.array([np.nan if pred.score is None else pred.score for _, pred in rows], dtype=float)
        window = state.window
        assert isinstance(window, ClassificationWindow)
        window.extend(y_true, y_pred, proba, score)
