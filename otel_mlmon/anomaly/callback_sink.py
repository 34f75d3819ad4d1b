"""``CallbackSink``: alerts handed to a function of the application."""

from __future__ import annotations

from typing import Any, Callable

from otel_mlmon.anomaly.alert import Alert

__all__ = ["CallbackSink"]


class CallbackSink:
    """Calls ``fn(alert)`` for each alert (on the dispatcher's thread, never on the caller's)."""

    kind = "callback"  # ml.alert.sink of its failures (otel_mlmon.anomaly.delivery)

    def __init__(self, fn: Callable[[Alert], Any]) -> None:
        if not callable(fn):
            raise ValueError(f"callback must be callable, got {fn!r}")
        self.fn = fn

    def __call__(self, alert: Alert) -> None:
        self.fn(alert)

    def __repr__(self) -> str:
        return f"CallbackSink({self.fn!r})"
