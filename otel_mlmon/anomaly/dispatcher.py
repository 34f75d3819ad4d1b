"""``AlertDispatcher``: alerts delivered to every sink on a daemon thread, through a bounded queue."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Sequence

from otel_mlmon import _lifecycle
from otel_mlmon.anomaly._workers import register_at_fork, start_daemon
from otel_mlmon.anomaly.alert import Alert
from otel_mlmon.anomaly.delivery import QUEUE, QUEUE_FULL, SHUTDOWN, error_type_of, sink_kind

__all__ = ["AlertDispatcher"]

_logger = logging.getLogger("otel_mlmon.anomaly.sinks")  # the logger of every sink, one name


class AlertDispatcher:
    """Delivers alerts to ``sinks`` on a daemon worker thread, through a bounded queue.

    ``submit`` is O(1) and never blocks: when ``max_queue`` alerts are waiting, the new one is
    dropped and counted in ``dropped``. Each sink is called in its own ``try``; a failure is
    counted in ``failed`` (and per sink in ``sink_failures``) and logged once per sink.
    ``delivered`` counts alerts handed to every sink. The worker starts on the first alert and
    is started anew in a forked child (whose queue starts empty: the parent delivers its own).
    Each alert dropped, and each sink failure, is also passed to ``on_dropped(sink, reason,
    count)`` when set (exported as ``ml.alert.dropped.count``, :mod:`~otel_mlmon.anomaly.delivery`).
    """

    def __init__(self, sinks: Sequence[Callable[[Alert], Any]], max_queue: int = 1000) -> None:
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise ValueError(f"max_queue must be a positive int, got {max_queue!r}")
        sinks = tuple(sinks)
        for sink in sinks:
            if not callable(sink):
                raise ValueError(f"sinks must be callable, got {sink!r}")
        self.sinks = sinks
        self.max_queue = max_queue
        self.submitted = 0
        self.delivered = 0
        self.dropped = 0
        self.failed = 0
        self.sink_failures = [0] * len(sinks)
        self._warned: set[int] = set()
        self._warned_full = False
        self.on_dropped: Any = None  # (sink, reason, count) -> None
        self._is_shutdown = False
        self._shutdown_result = True
        self._init_state()
        register_at_fork(self)
        # Held across fork (otel_mlmon._lifecycle): no delivery (an SDK log record, a callback)
        # is half-way in the parent's worker at that moment; a slow callback delays a fork by
        # FORK_TIMEOUT_S at most.
        _lifecycle.register(self, _lifecycle.ALERTS, lock="_delivering")

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._delivering = threading.Lock()  # held by the worker while it calls the sinks
        self._queue: deque[Alert] = deque()
        self._busy = False
        self._worker: threading.Thread | None = None

    def _at_fork_reinit(self) -> None:
        self._init_state()

    @property
    def pending(self) -> int:
        """Alerts waiting for the worker (including one being delivered)."""
        return len(self._queue) + self._busy

    def submit(self, alert: Alert) -> bool:
        """Queue ``alert`` for the sinks; False if it was dropped (queue full or shut down)."""
        with self._cond:
            if self._is_shutdown or len(self._queue) >= self.max_queue:
                self.dropped += 1
                self._report(QUEUE, SHUTDOWN if self._is_shutdown else QUEUE_FULL)
                warn = not self._is_shutdown and not self._warned_full
                self._warned_full = self._warned_full or warn
            else:
                self._queue.append(alert)
                self.submitted += 1
                if self._worker is None:
                    self._worker = start_daemon(self._run, "otel-mlmon-alerts")
                self._cond.notify()
                return True
        if warn:
            _logger.warning("otel-mlmon: alert queue full (%d); alerts are dropped and counted", self.max_queue)
        return False

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._is_shutdown:
                        self._cond.wait()
                    if not self._queue:
                        return
                    alert = self._queue.popleft()
                    self._busy = True
                try:
                    with self._delivering:
                        self._deliver(alert)
                finally:
                    with self._cond:
                        self._busy = False
                        self.delivered += 1
                        self._cond.notify_all()
        finally:
            with self._cond:
                if self._worker is threading.current_thread():
                    self._worker = None  # a later submit starts a new worker
                self._cond.notify_all()

    def _deliver(self, alert: Alert) -> None:
        for index, sink in enumerate(self.sinks):
            try:
                sink(alert)
            except Exception as exc:  # noqa: BLE001 - one sink must not affect the others
                self._report(sink_kind(sink), error_type_of(exc))
                with self._lock:
                    self.failed += 1
                    self.sink_failures[index] += 1
                    first = index not in self._warned
                    self._warned.add(index)
                if first:
                    _logger.warning(
                        "otel-mlmon: alert sink %r failed; its further failures are counted, not logged",
                        sink, exc_info=True,
                    )  # fmt: skip

    def _report(self, sink: str, reason: str) -> None:
        on_dropped = self.on_dropped
        if on_dropped is not None:
            try:
                on_dropped(sink, reason, 1)
            except Exception:  # noqa: BLE001
                _logger.debug("otel-mlmon: on_dropped of %r failed", self, exc_info=True)

    def force_flush(self, timeout_millis: float = 30_000) -> bool:
        """Wait until queued alerts reached every sink, then flush the sinks that buffer."""
        deadline = time.monotonic() + max(timeout_millis, 0) / 1e3
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or threading.current_thread() is self._worker:
                    return False
                self._cond.wait(remaining)
        return self._call_sinks("force_flush", deadline)

    def shutdown(self, timeout_millis: float = 30_000) -> bool:
        """Deliver what is queued (within the timeout), stop the worker, shut the sinks down.
        Idempotent: later calls return the first call's result."""
        deadline = time.monotonic() + max(timeout_millis, 0) / 1e3
        with self._cond:
            if self._is_shutdown:
                return self._shutdown_result
            self._is_shutdown = True
            self._cond.notify_all()
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(deadline - time.monotonic(), 0))
        ok = not self._queue and not self._busy
        ok = self._call_sinks("shutdown", deadline) and ok
        self._shutdown_result = ok
        return ok

    def _call_sinks(self, method: str, deadline: float) -> bool:
        ok = True
        for sink in self.sinks:
            call = getattr(sink, method, None)
            if call is None:
                continue
            try:
                ok = call(max(deadline - time.monotonic(), 0) * 1e3) is not False and ok
            except Exception:  # noqa: BLE001
                _logger.debug("otel-mlmon: %s of alert sink %r failed", method, sink, exc_info=True)
                ok = False
        return ok

    def __repr__(self) -> str:
        return f"AlertDispatcher({list(self.sinks)!r}, max_queue={self.max_queue})"
