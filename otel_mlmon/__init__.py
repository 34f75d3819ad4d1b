"""otel-mlmon: OpenTelemetry-native monitoring of ML model inference.

Public API::

    from otel_mlmon import SklearnInstrumentor, TorchInstrumentor, set_model_info
    from otel_mlmon import prediction_ids, last_prediction_ids, record_ground_truth
    from otel_mlmon import build_profile, attach_profile, load_profile

``import otel_mlmon`` imports neither scikit-learn nor PyTorch.
"""

from otel_mlmon.instrumentation.sklearn import SklearnInstrumentor
from otel_mlmon.instrumentation.torch import TorchInstrumentor
from otel_mlmon.model_info import ModelInfo, get_model_info, set_model_info
from otel_mlmon.quality.ids import last_prediction_ids, prediction_ids
from otel_mlmon.version import __version__


def record_ground_truth(ids, y_true, timestamp=None, model=None):
    """Report the true outcomes of earlier predictions, possibly hours later.

    ``ids``: prediction ids (yours, given with :class:`prediction_ids`, or those returned by
    :func:`last_prediction_ids`); ``y_true``: one label per id. Returns a ``LabelResult`` with
    counts by outcome (joined, unknown_id, duplicate, invalid). Mismatched lengths raise
    ``ValueError`` and change nothing. See ``docs/ground-truth.md``.
    """
    from otel_mlmon.quality.tracker import record_ground_truth as record  # noqa: PLC0415

    return record(ids, y_true, timestamp=timestamp, model=model)


def build_profile(X, y=None, predictions=None, **options):
    """A reference profile (fixed size, JSON) of training data; see ``docs/drift.md``."""
    from otel_mlmon.drift import build_profile as build  # noqa: PLC0415

    return build(X, y=y, predictions=predictions, **options)


def attach_profile(model, profile):
    """Attach a reference profile to a model (it travels with pickle/joblib)."""
    from otel_mlmon.drift import attach_profile as attach  # noqa: PLC0415

    return attach(model, profile)


def load_profile(path):
    """Load a reference profile written by ``otel-mlmon profile`` or ``profile.save``."""
    from otel_mlmon.drift import load_profile as load  # noqa: PLC0415

    return load(path)

__all__ = [
    "ModelInfo",
    "attach_profile",
    "build_profile",
    "last_prediction_ids",
    "load_profile",
    "prediction_ids",
    "record_ground_truth",
    "SklearnInstrumentor",
    "TorchInstrumentor",
    "__version__",
    "get_model_info",
    "set_model_info",
]
