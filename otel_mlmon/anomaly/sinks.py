"""Alerts and where they go: a bounded dispatcher thread, user callbacks, and a webhook.

An :class:`Alert` is raised once per incident by
:class:`~otel_mlmon.anomaly.processor.AnomalyDetectionSpanProcessor`. It reaches the sinks
through an :class:`AlertDispatcher`: ``submit`` appends to a bounded queue (a full queue drops
and counts, it never blocks) and a daemon worker calls each sink in turn, each in its own
``try``, so a failing sink affects neither the model call nor the other sinks.

A sink is any callable taking an :class:`Alert`; it may also have ``force_flush(timeout_millis)``
and ``shutdown(timeout_millis)``, which the dispatcher calls on its own ``force_flush`` and
``shutdown``. :class:`WebhookSink` only enqueues in ``__call__``: the HTTP POST, its retries and
their backoff run on the sink's own daemon thread, so a slow or absent receiver never holds up
the dispatcher (nor, a fortiori, ``predict``).
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value

from otel_mlmon.version import __version__

__all__ = ["Alert", "AlertDispatcher", "CallbackSink", "WebhookSink"]

_logger = logging.getLogger(__name__)
_MAX_KEYS = 10_000  # incident keys remembered by a webhook for de-duplication


@dataclass(frozen=True)
class Alert:
    """One alert: the first anomalous span of an incident (a model and a signal).

    ``timestamp`` is in seconds since the epoch; ``trace_id`` (32 hex digits) and ``span_id``
    (16 hex digits) identify the span that raised it; ``attributes`` carries a few more span
    attributes (model version, operation, framework).
    """

    key: tuple[str, str]
    model: str
    signal: str
    detector: str
    score: float
    timestamp: float
    trace_id: str | None = None
    span_id: str | None = None
    attributes: dict = field(default_factory=dict, hash=False)

    @property
    def text(self) -> str:
        """A one-line human-readable summary."""
        score = f"{self.score:.3f}" if isinstance(self.score, (int, float)) else repr(self.score)
        return f"ML anomaly: {self.signal} of model {self.model} (score {score}, {self.detector})"

    def as_dict(self) -> dict[str, Any]:
        """The alert as JSON-compatible data (non-finite numbers become ``None``)."""
        try:
            time_iso = datetime.fromtimestamp(self.timestamp, timezone.utc).isoformat().replace("+00:00", "Z")
        except (OverflowError, OSError, ValueError):
            time_iso = None
        return {
            "key": list(self.key),
            "model": self.model,
            "signal": self.signal,
            "detector": self.detector,
            "score": _jsonable(self.score),
            "timestamp": _jsonable(self.timestamp),
            "time": time_iso,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "attributes": _jsonable(dict(self.attributes)),
            "text": self.text,
        }

    def to_json(self) -> str:
        """The alert as a JSON object (the body a :class:`WebhookSink` posts)."""
        return json.dumps(self.as_dict(), sort_keys=True, allow_nan=False, default=str)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def _register_at_fork(instance: Any) -> None:
    """Call ``instance._at_fork_reinit()`` in forked children, without keeping it alive."""
    if hasattr(os, "register_at_fork"):
        ref = weakref.WeakMethod(instance._at_fork_reinit)  # noqa: SLF001

        def reinit() -> None:
            method = ref()
            if method is not None:
                method()

        os.register_at_fork(after_in_child=reinit)


def _start_daemon(target: Callable[[], None], name: str) -> threading.Thread | None:
    thread = threading.Thread(target=target, name=name, daemon=True)
    try:
        thread.start()
    except RuntimeError:  # interpreter shutting down, or no more threads
        _logger.debug("otel-mlmon: could not start thread %s", name, exc_info=True)
        return None
    return thread


class CallbackSink:
    """Calls ``fn(alert)`` for each alert (on the dispatcher's thread, never on the caller's)."""

    def __init__(self, fn: Callable[[Alert], Any]) -> None:
        if not callable(fn):
            raise ValueError(f"callback must be callable, got {fn!r}")
        self.fn = fn

    def __call__(self, alert: Alert) -> None:
        self.fn(alert)

    def __repr__(self) -> str:
        return f"CallbackSink({self.fn!r})"


class AlertDispatcher:
    """Delivers alerts to ``sinks`` on a daemon worker thread, through a bounded queue.

    ``submit`` is O(1) and never blocks: when ``max_queue`` alerts are waiting, the new one is
    dropped and counted in ``dropped``. Each sink is called in its own ``try``; a failure is
    counted in ``failed`` (and per sink in ``sink_failures``) and logged once per sink.
    ``delivered`` counts alerts handed to every sink. The worker starts on the first alert and
    is started anew in a forked child (whose queue starts empty: the parent delivers its own).
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
        self._is_shutdown = False
        self._shutdown_result = True
        self._init_state()
        _register_at_fork(self)

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
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
                warn = not self._is_shutdown and not self._warned_full
                self._warned_full = self._warned_full or warn
            else:
                self._queue.append(alert)
                self.submitted += 1
                if self._worker is None:
                    self._worker = _start_daemon(self._run, "otel-mlmon-alerts")
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
            except Exception:  # noqa: BLE001 - one sink must not affect the others
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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an error (HTTPError 3xx): alerts are not re-posted elsewhere


_OK, _RETRY, _REJECT = "ok", "retry", "reject"
_RETRY_STATUS = frozenset({408, 425, 429})


class WebhookSink:
    """POSTs each alert as JSON to ``url``, once per incident, with bounded retries.

    * De-duplication: an alert whose ``key`` (model, signal) was accepted less than
      ``cooldown_s`` before (by alert timestamp) is not sent again (counted in ``deduplicated``).
    * ``__call__`` only appends to a bounded queue of ``max_pending`` alerts (when full the
      oldest is dropped and counted in ``dropped``); a daemon thread POSTs them in order.
    * A failed POST (connection error, timeout, 5xx, 408, 425, 429) is retried after an
      exponential backoff (``backoff_s``, doubling up to ``max_backoff_s``) shared by the
      whole queue, so a receiver that is down is probed, not hammered; an alert gets at most
      ``1 + max_retries`` attempts, then it is counted in ``failed``. Once the receiver is
      back, the next attempt succeeds and the queued alerts follow at once. Other 4xx and 3xx
      answers are not retried (``failed``). ``sent`` counts 2xx answers, ``attempts`` POSTs.
    * ``shutdown`` gives each queued alert one last attempt (none once one fails), within its
      timeout; the POST runs with instrumentation suppressed, so it is never traced itself.
    """

    def __init__(
        self,
        url: str,
        cooldown_s: float = 0.0,
        timeout_s: float = 2.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_pending: int = 100,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"url must be an http(s) URL, got {url!r}")
        _check_number("cooldown_s", cooldown_s, allow_zero=True, allow_inf=True)
        _check_number("timeout_s", timeout_s)
        _check_number("backoff_s", backoff_s)
        _check_number("max_backoff_s", max_backoff_s)
        if max_backoff_s < backoff_s:
            raise ValueError(f"max_backoff_s ({max_backoff_s!r}) must be >= backoff_s ({backoff_s!r})")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a non-negative int, got {max_retries!r}")
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ValueError(f"max_pending must be a positive int, got {max_pending!r}")
        headers = dict(headers or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise ValueError(f"headers must map str to str, got {headers!r}")
        self.url = url
        self.cooldown_s = float(cooldown_s)
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.max_pending = max_pending
        self.headers = {"Content-Type": "application/json", "User-Agent": f"otel-mlmon/{__version__}", **headers}
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.deduplicated = 0
        self.attempts = 0
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._last_sent: OrderedDict[tuple, float] = OrderedDict()
        self._warned: set[str] = set()
        self._is_shutdown = False
        self._shutdown_result = True
        self._deadline = math.inf
        self._init_state()
        _register_at_fork(self)

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: deque[list] = deque()  # [alert, body, attempts]
        self._inflight: list | None = None
        self._failures = 0  # consecutive failed attempts: the backoff exponent
        self._next_attempt = 0.0  # monotonic time before which nothing is posted
        self._worker: threading.Thread | None = None

    def _at_fork_reinit(self) -> None:
        self._init_state()

    @property
    def pending(self) -> int:
        """Alerts not yet sent nor given up (queued or being posted)."""
        return len(self._queue) + (self._inflight is not None)

    # ------------------------------------------------------------------ enqueue
    def __call__(self, alert: Alert) -> None:
        body = alert.to_json().encode("utf-8")
        dropped = False
        with self._cond:
            if self._is_shutdown:
                self.dropped += 1
                return
            last = self._last_sent.get(alert.key)
            if last is not None and alert.timestamp - last < self.cooldown_s:
                self.deduplicated += 1
                return
            self._last_sent[alert.key] = alert.timestamp
            self._last_sent.move_to_end(alert.key)
            if len(self._last_sent) > _MAX_KEYS:
                self._last_sent.popitem(last=False)
            self._queue.append([alert, body, 0])
            if len(self._queue) > self.max_pending:
                self._queue.popleft()
                self.dropped += 1
                dropped = True
            if self._worker is None:
                self._worker = _start_daemon(self._run, "otel-mlmon-webhook")
            self._cond.notify_all()
        if dropped:
            self._warn_once("full", "otel-mlmon: webhook %s has %d alerts pending; the oldest are dropped",
                            self.url, self.max_pending)  # fmt: skip

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._is_shutdown:
                        if self._queue:
                            wait = self._next_attempt - time.monotonic()
                            if wait <= 0:
                                break
                            self._cond.wait(wait)
                        else:
                            self._cond.wait()
                    if self._is_shutdown:
                        break
                    entry = self._inflight = self._queue.popleft()
                outcome = self._post(entry[1], self.timeout_s)
                with self._cond:
                    self._inflight = None
                    self._settle(entry, outcome)
                    self._cond.notify_all()
            self._last_pass()
        finally:
            with self._cond:
                if self._worker is threading.current_thread():
                    self._worker = None
                self._cond.notify_all()

    def _settle(self, entry: list, outcome: str) -> None:
        """Account for one POST of ``entry`` (lock held)."""
        if outcome == _OK:
            self.sent += 1
            self._failures = 0
            self._next_attempt = 0.0
        elif outcome == _REJECT:
            self.failed += 1
        else:
            entry[2] += 1
            self._failures += 1
            delay = min(self.backoff_s * 2.0 ** min(self._failures - 1, 60), self.max_backoff_s)
            self._next_attempt = time.monotonic() + delay
            if entry[2] > self.max_retries:
                self.failed += 1
            else:
                self._queue.appendleft(entry)  # keeps its place: alerts go out in order
                if len(self._queue) > self.max_pending:
                    self._queue.popleft()
                    self.dropped += 1

    def _last_pass(self) -> None:
        """On shutdown: one attempt per queued alert until one fails or the deadline passes."""
        while True:
            with self._cond:
                if not self._queue:
                    return
                remaining = self._deadline - time.monotonic()
                if remaining <= 0:
                    self.failed += len(self._queue)
                    self._queue.clear()
                    return
                entry = self._inflight = self._queue.popleft()
            outcome = self._post(entry[1], min(self.timeout_s, remaining))
            with self._cond:
                self._inflight = None
                if outcome == _OK:
                    self.sent += 1
                else:
                    self.failed += 1 + (len(self._queue) if outcome == _RETRY else 0)
                    if outcome == _RETRY:
                        self._queue.clear()
                self._cond.notify_all()

    def _post(self, body: bytes, timeout: float) -> str:
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            with self._lock:
                self.attempts += 1
            with self._opener.open(request, timeout=timeout) as response:
                response.read(65536)
                status = response.status
            if 200 <= status < 300:
                return _OK
            self._warn_once("status", "otel-mlmon: webhook %s answered %s; alert not re-sent", self.url, status)
            return _REJECT
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code >= 500 or exc.code in _RETRY_STATUS:
                self._warn_once("retry", "otel-mlmon: webhook %s answered %s; retrying with backoff",
                                self.url, exc.code)  # fmt: skip
                return _RETRY
            self._warn_once("status", "otel-mlmon: webhook %s answered %s; alert not re-sent", self.url, exc.code)
            return _REJECT
        except (OSError, http.client.HTTPException) as exc:
            self._warn_once("retry", "otel-mlmon: webhook %s unreachable (%s); retrying with backoff", self.url, exc)
            return _RETRY
        except Exception:  # noqa: BLE001 - never let the worker die
            _logger.debug("otel-mlmon: webhook POST failed", exc_info=True)
            return _RETRY
        finally:
            detach(token)

    def _warn_once(self, kind: str, message: str, *args: Any) -> None:
        if kind in self._warned:
            _logger.debug(message, *args)
        else:
            self._warned.add(kind)
            _logger.warning(message + " (logged once)", *args)

    # ------------------------------------------------------------------ lifecycle
    def force_flush(self, timeout_millis: float = 30_000) -> bool:
        """Wait until every queued alert was sent or given up; False on timeout."""
        deadline = time.monotonic() + max(timeout_millis, 0) / 1e3
        with self._cond:
            while self._queue or self._inflight is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self._worker is None and self._inflight is None):
                    return False
                self._cond.wait(remaining)
        return True

    def shutdown(self, timeout_millis: float = 30_000) -> bool:
        """Give queued alerts a last attempt within the timeout and stop. Idempotent."""
        deadline = time.monotonic() + max(timeout_millis, 0) / 1e3
        with self._cond:
            if self._is_shutdown:
                return self._shutdown_result
            self._is_shutdown = True
            self._deadline = deadline
            worker = self._worker
            if worker is None and self._queue:  # no worker to make the last pass
                self.failed += len(self._queue)
                self._queue.clear()
            self._cond.notify_all()
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(deadline - time.monotonic(), 0))
        self._shutdown_result = self.pending == 0
        return self._shutdown_result

    def __repr__(self) -> str:
        return f"WebhookSink({self.url!r}, cooldown_s={self.cooldown_s}, max_retries={self.max_retries})"


def _check_number(name: str, value: Any, allow_zero: bool = False, allow_inf: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    ok = ok and (value >= 0 if allow_zero else value > 0) and (allow_inf or math.isfinite(value))
    if not ok:
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")
