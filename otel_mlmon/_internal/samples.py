"""What the hot path keeps of a call's input for the drift monitor: at most ``budget`` evenly
strided rows, copied for NumPy arrays and CPU tensors (so that reusing the input buffer cannot
change the statistics), read by reference for DataFrames and lists (strided on the worker)."""

from __future__ import annotations

from typing import Any

import numpy as np


def strided(X: Any, budget: int) -> Any:
    """At most ``budget`` evenly spaced rows of ``X`` (a view or the object itself)."""
    n = X.shape[0] if hasattr(X, "shape") else len(X)
    if n <= budget:
        return X
    step = -(-n // budget)
    if hasattr(X, "iloc"):
        return X.iloc[::step]
    return X[::step]


def sample_input(X: Any, budget: int) -> Any:
    """What the worker profiles for this call's input; ``None`` when it cannot be profiled."""
    if isinstance(X, np.ndarray):
        if X.ndim != 2:
            return None
        return strided(X, budget).copy()
    if hasattr(X, "detach") and hasattr(X, "device"):  # a torch tensor (no torch import here)
        if X.ndim != 2 or X.device.type != "cpu":
            return None
        return strided(X.detach(), budget).numpy().copy()
    if hasattr(X, "iloc") and hasattr(X, "columns"):  # a DataFrame: sampled on the worker
        return X
    if isinstance(X, list) and X and isinstance(X[0], (list, tuple)):
        return X
    return None


def sample_rows(sample: Any, budget: int) -> int:
    """Rows of a captured sample once strided (DataFrames and lists are strided on the worker)."""
    n = sample.shape[0] if hasattr(sample, "shape") else len(sample)
    return min(n, budget)
