"""Where a model's name, version and task are kept, and how they are read back.

The public side (validation, :func:`otel_mlmon.set_model_info`) is ``otel_mlmon.model_info``;
this module is what the per-model cache (``_internal/state.py``) and the instrumentation read,
so that nothing in ``_internal`` imports a public module.
"""

from __future__ import annotations

from typing import Any, NamedTuple

# Stored in the model's instance ``__dict__`` so that it travels with pickle, joblib and
# ``torch.save``; not a parameter, so ``get_params``/``clone`` and fitted-state checks ignore it.
# A plain dict, so that a pickled model still loads where otel-mlmon is not installed.
ATTR = "_otel_mlmon_model_info"

TASKS = ("classification", "regression")


class ModelInfo(NamedTuple):
    name: str | None
    version: str | None
    task: str | None = None


def get_model_info(model: Any) -> ModelInfo:
    """The :class:`ModelInfo` set on ``model``, or ``ModelInfo(None, None, None)``."""
    info = getattr(model, "__dict__", {}).get(ATTR)
    if isinstance(info, dict):
        return ModelInfo(info.get("name"), info.get("version"), info.get("task"))
    return ModelInfo(None, None, None)
