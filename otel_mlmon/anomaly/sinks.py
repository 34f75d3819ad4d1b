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

One sink a module: :mod:`~otel_mlmon.anomaly.alert`, :mod:`~otel_mlmon.anomaly.dispatcher`,
:mod:`~otel_mlmon.anomaly.callback_sink`, :mod:`~otel_mlmon.anomaly.webhook`; this module
re-exports them.
"""

from __future__ import annotations

from otel_mlmon.anomaly.alert import Alert
from otel_mlmon.anomaly.callback_sink import CallbackSink
from otel_mlmon.anomaly.dispatcher import AlertDispatcher
from otel_mlmon.anomaly.webhook import WebhookSink

__all__ = ["Alert", "AlertDispatcher", "CallbackSink", "WebhookSink"]
