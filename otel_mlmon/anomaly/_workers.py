"""The daemon threads of the alert sinks: started without raising, rebuilt after ``fork``."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any, Callable

_logger = logging.getLogger("otel_mlmon.anomaly.sinks")  # the logger of every sink, one name


def register_at_fork(instance: Any) -> None:
    """Call ``instance._at_fork_reinit()`` in forked children, without keeping it alive."""
    if hasattr(os, "register_at_fork"):
        ref = weakref.WeakMethod(instance._at_fork_reinit)  # noqa: SLF001

        def reinit() -> None:
            method = ref()
            if method is not None:
                method()

        os.register_at_fork(after_in_child=reinit)


def start_daemon(target: Callable[[], None], name: str) -> threading.Thread | None:
    thread = threading.Thread(target=target, name=name, daemon=True)
    try:
        thread.start()
    except RuntimeError:  # interpreter shutting down, or no more threads
        _logger.debug("otel-mlmon: could not start thread %s", name, exc_info=True)
        return None
    return thread
