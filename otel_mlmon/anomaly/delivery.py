"""Alerts that never reached a sink, exported as ``ml.alert.dropped.count``.

The dispatcher and the sinks report each alert they give up on through an ``on_dropped``
callback, ``(sink, reason, count)``; :data:`DROPS` adds them up per meter provider and exports
them at collection time, by ``ml.alert.sink`` and ``error.type``:

* ``ml.alert.sink``: ``queue`` (the dispatcher's queue, before any sink), ``log``, ``callback``,
  ``webhook``;
* ``error.type``: ``queue_full``, ``shutdown`` (after shutdown, or not attempted before its
  deadline), ``timeout``, an HTTP status code the webhook gave up on (``"503"`` after its
  retries, ``"404"`` at once), or the exception's class (``ConnectionRefusedError``; a failing
  callback's own exception class).

Cardinality is bounded: at most :data:`MAX_SERIES` (sink, error.type) pairs per meter provider;
later reasons are counted as ``_OTHER`` (the OpenTelemetry fallback value of ``error.type``). The
counts of a meter provider are dropped when it is garbage collected.
"""

from __future__ import annotations

import threading
import urllib.error
import weakref
from typing import Any, Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Observation, get_meter

from otel_mlmon import semconv
from otel_mlmon.version import __version__

QUEUE, LOG, CALLBACK, WEBHOOK = "queue", "log", "callback", "webhook"
QUEUE_FULL, SHUTDOWN, TIMEOUT, OTHER_ERROR = "queue_full", "shutdown", "timeout", "_OTHER"
MAX_SERIES = 64  # (sink, error.type) pairs per meter provider

Reporter = Callable[[str, str, int], None]


def sink_kind(sink: Any) -> str:
    """``log``, ``webhook`` or ``callback`` (any other callable)."""
    kind = getattr(sink, "kind", None)
    return kind if kind in (LOG, WEBHOOK, CALLBACK) else CALLBACK


def error_type_of(exc: BaseException) -> str:
    """The class of a delivery failure: ``timeout``, or the exception's (or the wrapped
    reason's, for a ``URLError``) class name."""
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    if isinstance(exc, TimeoutError):
        return TIMEOUT
    return type(exc).__qualname__


def http_status(code: Any) -> str:
    """An HTTP status code as ``error.type`` (three digits), else ``_OTHER``."""
    return str(code) if isinstance(code, int) and 100 <= code <= 599 else OTHER_ERROR


class DropCounts:
    """Process-wide counts of undelivered alerts, exported once per meter provider."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple, int] = {}  # (provider key, sink, reason) -> alerts
        self._series: dict[Any, int] = {}  # provider key -> series
        self._keys: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # provider -> key
        self._global_registered = False

    def add(self, provider_key: Any, sink: str, reason: str, count: int = 1) -> None:
        if count <= 0:
            return
        key = (provider_key, sink, reason)
        with self._lock:
            if key not in self._counts:
                if self._series.get(provider_key, 0) >= MAX_SERIES:
                    key = (provider_key, sink, OTHER_ERROR)
                if key not in self._counts:
                    self._series[provider_key] = self._series.get(provider_key, 0) + 1
            self._counts[key] = self._counts.get(key, 0) + count

    def _forget(self, provider_key: Any) -> None:
        with self._lock:
            self._series.pop(provider_key, None)
            for key in [k for k in self._counts if k[0] is provider_key]:
                del self._counts[key]

    def register(self, meter_provider: Any = None) -> Reporter:
        """Export the drops reported for ``meter_provider`` (the global one when None); returns
        the ``on_dropped`` callback to give the dispatcher and sinks. Never raises."""
        with self._lock:
            if meter_provider is None:
                provider_key: Any = "global"
                known = self._global_registered
                self._global_registered = True
            else:
                provider_key = self._keys.get(meter_provider)
                known = provider_key is not None
                if not known:
                    provider_key = self._keys[meter_provider] = object()
                    weakref.finalize(meter_provider, self._forget, provider_key)  # its counts go with it

        def report(sink: str, reason: str, count: int = 1) -> None:
            try:
                self.add(provider_key, sink, reason, count)
            except Exception:  # noqa: BLE001, S110 - counting must not break delivery
                pass

        if known:
            return report

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                counts = [(k, n) for k, n in self._counts.items() if k[0] == provider_key]
            return [Observation(n, {semconv.ML_ALERT_SINK: sink, semconv.ERROR_TYPE: reason})
                    for (_, sink, reason), n in counts]  # fmt: skip

        try:
            meter = get_meter("otel_mlmon", __version__, meter_provider)
            spec = semconv.ALERT_DROPPED_COUNT
            meter.create_observable_counter(spec.name, [observe], unit=spec.unit, description=spec.description)
        except Exception:  # noqa: BLE001, S110 - alerts go on without the metric
            pass
        return report


DROPS = DropCounts()
