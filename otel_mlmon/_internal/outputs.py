"""Model outputs as numbers, shared by the recorder (output statistics) and the data plane
(drift of outputs, the output signal): floats from arrays or tensors, probabilities from
scores, the labels probabilities predict, one flush's output point. NumPy only; a torch tensor
is recognised without importing torch."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_float(array: Any) -> np.ndarray:
    """The array (or a tensor, on any device) as floats; one without numbers gives an empty one."""
    if hasattr(array, "detach") and hasattr(array, "cpu"):  # a torch tensor: no torch import here
        array = array.detach().cpu()
        if not array.dtype.is_floating_point or array.dtype.itemsize < 4:
            array = array.double()
        array = array.numpy()
    try:
        return np.asarray(array, dtype=float)
    except (TypeError, ValueError):
        return np.empty((0,) + tuple(getattr(array, "shape", (0,))[1:]))


def probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows that already are probabilities stay; other scores (logits) go through softmax."""
    if scores.size and scores.min() >= 0 and scores.max() <= 1 and np.allclose(scores.sum(axis=1), 1, atol=1e-3):
        return scores
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def softmax(scores: Any) -> np.ndarray | None:
    """Probabilities of a (batch, classes) output of logits; None for any other shape."""
    array = as_float(scores)
    if array.ndim != 2 or not array.size:
        return None
    return probabilities(array)


def classes_list(classes: Any) -> list | None:
    """A single-output classifier's ``classes_`` as a list; None otherwise (multi-output)."""
    if classes is None or isinstance(classes, list):
        return None
    array = np.asarray(classes, dtype=object) if not isinstance(classes, np.ndarray) else classes
    return array.tolist() if array.ndim == 1 else None


def predicted_labels(proba: Any, classes: list) -> np.ndarray | None:
    """The labels a classifier's probabilities predict (argmax over ``classes``), so that
    ``predict_proba`` calls are compared with a reference of labels (the profile's output, or
    its target for a profile made from a file); None when they do not match the classes."""
    array = np.asarray(proba)
    if array.ndim != 2 or array.shape[1] != len(classes) or not array.size or array.dtype.kind not in "fiu":
        return None
    return np.asarray(classes)[array.argmax(axis=1)]


def output_sum(arrays: list[Any]) -> tuple[float, int] | None:
    """Sum and count of the finite regressor outputs or confidences in ``arrays`` (one numpy pass)."""
    try:
        first = np.asarray(arrays[0])
        if first.ndim == 2:
            values = np.concatenate([np.asarray(a) for a in arrays if np.ndim(a) == 2 and np.shape(a)[1] == first.shape[1]])
            values = values.max(axis=1) if values.size else values
        else:
            values = np.concatenate([np.asarray(a).ravel() for a in arrays if np.ndim(a) == 1])
        if values.dtype.kind not in "fiu":
            return None
        values = values[np.isfinite(values)]
    except (TypeError, ValueError):
        return None
    return (float(values.sum()), int(values.size)) if values.size else None
