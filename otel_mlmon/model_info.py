"""Model identity: the name and version that spans and metrics carry."""

from __future__ import annotations

from typing import Any

from otel_mlmon._internal.model_info import ATTR, TASKS, ModelInfo, get_model_info
from otel_mlmon._internal.state import forget

__all__ = ["TASKS", "ModelInfo", "get_model_info", "set_model_info"]

_MAX_LEN = 256


def _check(label: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_LEN:
        raise ValueError(f"{label} must be a non-empty string of at most {_MAX_LEN} characters, got {value!r}")
    return value


def set_model_info(
    model: Any, name: str | None = None, version: str | None = None, task: str | None = None
) -> Any:
    """Name (and version) a model for its spans and metrics; returns the model.

    The information is kept on the model object itself, so it survives ``pickle``, ``joblib``
    and ``torch.save`` round trips. Without it the class name is used. ``task`` is a hint for
    models whose outputs do not say what they are (PyTorch modules): ``"classification"``
    turns on class counts and confidence statistics of their (batch, classes) outputs.

    >>> from sklearn.linear_model import LinearRegression
    >>> model = set_model_info(LinearRegression(), name="churn-model", version="3")
    >>> get_model_info(model)
    ModelInfo(name='churn-model', version='3', task=None)
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    info = ModelInfo(_check("name", name), _check("version", version), task)
    try:
        object.__setattr__(model, ATTR, info._asdict())
    except (AttributeError, TypeError) as exc:
        raise ValueError(f"cannot attach model information to {type(model).__name__}: {exc}") from None
    forget(model)
    return model

