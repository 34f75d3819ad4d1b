"""Lazy re-exports for the public subpackages: names are imported on first use, so importing a
subpackage (``otel_mlmon.anomaly``, ``.drift``, ``.quality``) loads none of its modules. A leaf
module (it imports nothing from otel_mlmon), so every layer may use it."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str], namespace: dict[str, Any]) -> tuple[
        list[str], Callable[[str], Any], Callable[[], list[str]]]:  # fmt: skip
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``; ``exports`` maps each public
    name to the module that defines it; ``namespace`` is the package's ``globals()``."""
    names = sorted(exports)

    def __getattr__(name: str) -> Any:  # noqa: N807
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807
        return names

    return names, __getattr__, __dir__
