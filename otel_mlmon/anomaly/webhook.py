"""``WebhookSink``: each alert POSTed as JSON, once per incident, with bounded retries and backoff."""

from __future__ import annotations

import http.client
import logging
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict, deque
from typing import Any, Mapping

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value

from otel_mlmon.anomaly._workers import register_at_fork, start_daemon
from otel_mlmon.anomaly.alert import Alert
from otel_mlmon.anomaly.delivery import QUEUE_FULL, SHUTDOWN, WEBHOOK, error_type_of, http_status
from otel_mlmon.version import __version__

__all__ = ["WebhookSink"]

_logger = logging.getLogger("otel_mlmon.anomaly.sinks")  # the logger of every sink, one name
_MAX_KEYS = 10_000  # incident keys remembered by a webhook for de-duplication


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
    * Every alert given up (``dropped`` or ``failed``) is also passed to ``on_dropped(sink,
      reason, count)`` when set (the span processor exports them as ``ml.alert.dropped.count``,
      see :mod:`~otel_mlmon.anomaly.delivery`); the reason is ``queue_full``, ``shutdown``, the
      HTTP status given up on, or the connection error's class.
    * ``shutdown`` gives each queued alert one last attempt (none once one fails), within its
      timeout; the POST runs with instrumentation suppressed, so it is never traced itself.
    """

    kind = WEBHOOK  # ml.alert.sink of its undelivered alerts

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
        self.on_dropped: Any = None  # (sink, reason, count) -> None, see anomaly/delivery.py
        self._reason = SHUTDOWN  # why the last POST failed (worker thread only)
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._last_sent: OrderedDict[tuple, float] = OrderedDict()
        self._warned: set[str] = set()
        self._is_shutdown = False
        self._shutdown_result = True
        self._deadline = math.inf
        self._init_state()
        register_at_fork(self)

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
                self._report(SHUTDOWN, 1)
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
                self._report(QUEUE_FULL, 1)
                dropped = True
            if self._worker is None:
                self._worker = start_daemon(self._run, "otel-mlmon-webhook")
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
            self._report(self._reason, 1)
        else:
            entry[2] += 1
            self._failures += 1
            delay = min(self.backoff_s * 2.0 ** min(self._failures - 1, 60), self.max_backoff_s)
            self._next_attempt = time.monotonic() + delay
            if entry[2] > self.max_retries:
                self.failed += 1
                self._report(self._reason, 1)
            else:
                self._queue.appendleft(entry)  # keeps its place: alerts go out in order
                if len(self._queue) > self.max_pending:
                    self._queue.popleft()
                    self.dropped += 1
                    self._report(QUEUE_FULL, 1)

    def _last_pass(self) -> None:
        """On shutdown: one attempt per queued alert until one fails or the deadline passes."""
        while True:
            with self._cond:
                if not self._queue:
                    return
                remaining = self._deadline - time.monotonic()
                if remaining <= 0:
                    self.failed += len(self._queue)
                    self._report(SHUTDOWN, len(self._queue))
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
                    self._report(self._reason, 1)
                    if outcome == _RETRY:
                        self._report(SHUTDOWN, len(self._queue))  # not attempted
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
            self._reason = http_status(status)
            self._warn_once("status", "otel-mlmon: webhook %s answered %s; alert not re-sent", self.url, status)
            return _REJECT
        except urllib.error.HTTPError as exc:
            exc.close()
            self._reason = http_status(exc.code)
            if exc.code >= 500 or exc.code in _RETRY_STATUS:
                self._warn_once("retry", "otel-mlmon: webhook %s answered %s; retrying with backoff",
                                self.url, exc.code)  # fmt: skip
                return _RETRY
            self._warn_once("status", "otel-mlmon: webhook %s answered %s; alert not re-sent", self.url, exc.code)
            return _REJECT
        except (OSError, http.client.HTTPException) as exc:
            self._reason = error_type_of(exc)
            self._warn_once("retry", "otel-mlmon: webhook %s unreachable (%s); retrying with backoff", self.url, exc)
            return _RETRY
        except Exception as exc:  # noqa: BLE001 - never let the worker die
            self._reason = error_type_of(exc)
            _logger.debug("otel-mlmon: webhook POST failed", exc_info=True)
            return _RETRY
        finally:
            detach(token)

    def _report(self, reason: str, count: int) -> None:
        """Hand alerts given up to ``on_dropped`` (never raises; may run under the lock)."""
        on_dropped = self.on_dropped
        if on_dropped is not None and count > 0:
            try:
                on_dropped(WEBHOOK, reason, count)
            except Exception:  # noqa: BLE001
                _logger.debug("otel-mlmon: on_dropped of %r failed", self, exc_info=True)

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
                self._report(SHUTDOWN, len(self._queue))
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
