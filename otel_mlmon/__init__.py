"""otel-mlmon: OpenTelemetry-native monitoring of ML model inference.

Public API::

    from otel_mlmon import SklearnInstrumentor, TorchInstrumentor, set_model_info

``import otel_mlmon`` imports neither scikit-learn nor PyTorch.
"""

from otel_mlmon.instrumentation.sklearn import SklearnInstrumentor
from otel_mlmon.instrumentation.torch import TorchInstrumentor
from otel_mlmon.model_info import ModelInfo, get_model_info, set_model_info
from otel_mlmon.version import __version__

__all__ = [
    "ModelInfo",
    "SklearnInstrumentor",
    "TorchInstrumentor",
    "__version__",
    "get_model_info",
    "set_model_info",
]
