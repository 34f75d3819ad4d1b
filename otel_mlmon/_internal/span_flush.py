"""``TracerProvider.force_flush()`` and ``shutdown()`` end the spans still queued for the worker.

The recording worker ends each call's span after judging it (so the span carries the verdict).
A provider flush or shutdown (``force_flush()`` in a test, the SDK's exit hook) must first let
the worker end the spans queued so far, or they would miss that flush. The hook is a span
processor placed first among the provider's processors; the anomaly processor, when installed,
is that first processor and carries the hook itself (no extra per-span call).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor

_lock = threading.Lock()


class FlushFirst(SpanProcessor):
    """Runs the registered recorders' ``flush`` on ``force_flush`` and ``shutdown``; per span it
    does nothing."""

    def __init__(self) -> None:
        self._recorders: dict[int, tuple[weakref.ref, int]] = {}

    def add(self, recorder: Any) -> None:
        with _lock:
            _, users = self._recorders.get(id(recorder), (None, 0))
            self._recorders[id(recorder)] = (weakref.ref(recorder), users + 1)

    def remove(self, recorder: Any) -> bool:
        """Unregister one user of ``recorder``; whether any recorder is left."""
        with _lock:
            entry = self._recorders.pop(id(recorder), None)
            if entry is not None and entry[1] > 1:
                self._recorders[id(recorder)] = (entry[0], entry[1] - 1)
            return bool(self._recorders)

    def flush_recorders(self) -> None:
        with _lock:
            refs = [ref for ref, _ in self._recorders.values()]
        for ref in refs:
            recorder = ref()
            if recorder is not None:
                recorder.flush()  # never raises

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: Any) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flush_recorders()
        return True

    def shutdown(self) -> None:
        self.flush_recorders()


def _processors(tracer_provider: Any) -> Any:
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    active = getattr(provider, "_active_span_processor", None)
    if not isinstance(getattr(active, "_span_processors", None), tuple) or getattr(active, "_lock", None) is None:
        return None
    return active


def register(tracer_provider: Any, recorder: Any, anomaly_processor: Any = None) -> Any:
    """Make the provider's flush and shutdown flush ``recorder`` first; returns the hook (for
    :func:`unregister`), None if the provider is not an SDK one (then spans wait for the worker's
    next drain, at most the flush interval)."""
    if anomaly_processor is not None:
        with _lock:
            hook = next((getattr(h, "__self__", None) for h in anomaly_processor.before_flush
                         if isinstance(getattr(h, "__self__", None), FlushFirst)), None)
            if hook is None:
                hook = FlushFirst()
                anomaly_processor.before_flush.append(hook.flush_recorders)
        hook.add(recorder)
        return hook
    active = _processors(tracer_provider)
    if active is None:
        return None
    with active._lock:  # noqa: SLF001
        processors = active._span_processors  # noqa: SLF001
        hook = processors[0] if processors and isinstance(processors[0], FlushFirst) else None
        if hook is None:
            hook = FlushFirst()
            active._span_processors = (hook, *processors)  # noqa: SLF001
    hook.add(recorder)
    return hook


def unregister(tracer_provider: Any, hook: Any, recorder: Any) -> None:
    if hook is None or hook.remove(recorder):
        return
    active = _processors(tracer_provider)
    if active is None:
        return
    with active._lock:  # noqa: SLF001
        active._span_processors = tuple(p for p in active._span_processors if p is not hook)  # noqa: SLF001
