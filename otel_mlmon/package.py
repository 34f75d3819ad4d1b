"""The libraries this distribution instruments (contrib convention: ``_instruments_any``).

One distribution carries both instrumentors; either library alone is enough for
auto-instrumentation. Each instrumentor also names its own library in
``instrumentation_dependencies()``.
"""

_instruments_sklearn = ("scikit-learn >= 1.2",)
_instruments_torch = ("torch >= 2.0",)

_instruments = ()
_instruments_any = _instruments_sklearn + _instruments_torch
