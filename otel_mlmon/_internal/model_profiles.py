"""A model's reference profile: built and attached when the model is fitted
(:func:`capture_profile`, not per call) and found at its first call (:func:`profile_of`: the
profile attached at fit, else ``{profile_dir}/{name}.json``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

from otel_mlmon._internal.samples import strided

PROFILE_MAX_ROWS = 200_000  # rows of the training data profiled at fit (evenly strided)
PROFILE_PREDICT_ROWS = 10_000  # training rows predicted at fit for the output reference


def profile_of(model: Any, name: str, profile_dir: str | None) -> tuple[Any, str | None]:
    """The model's reference profile (attached at fit, else ``{profile_dir}/{name}.json``)."""
    from otel_mlmon.drift import ReferenceProfile, get_profile  # noqa: PLC0415

    target = getattr(model, "_orig_mod", model)
    text = getattr(target, "_otel_mlmon_profile", None)
    if isinstance(text, str):
        return get_profile(target), hashlib.sha1(text.encode()).hexdigest()
    if profile_dir:
        path = Path(profile_dir) / f"{name}.json"
        if path.is_file():
            data = path.read_text(encoding="utf-8")
            return ReferenceProfile.from_json(data), hashlib.sha1(data.encode()).hexdigest()
    return None, None


def capture_profile(model: Any, X: Any, y: Any, run_predict: Callable[[Any], Any]) -> None:
    """Build the reference profile of a model just fitted and attach it (at fit, not per call)."""
    from otel_mlmon.drift import attach_profile, build_profile  # noqa: PLC0415

    Xs = strided(X, PROFILE_MAX_ROWS)
    ys = None if y is None or not hasattr(y, "__len__") or len(y) != _rows(X) else strided(y, PROFILE_MAX_ROWS)
    predictions = None
    try:
        predictions = run_predict(strided(X, PROFILE_PREDICT_ROWS))
    except Exception:  # noqa: BLE001 - some estimators cannot predict their training input
        predictions = None
    profile = build_profile(Xs, y=ys, predictions=predictions)
    attach_profile(model, profile)


def _rows(X: Any) -> int:
    shape = getattr(X, "shape", None)
    return shape[0] if shape else len(X)
