"""Pending predictions: stored until their ground-truth label arrives, bounded in size and age.

Two stores with one interface:

* :class:`SQLiteStore` (default): an embedded SQLite file (WAL mode). Predictions survive a
  restart of the process, so labels that arrive after a deploy still join; several processes
  (gunicorn workers) can share one file, and a label recorded in any of them joins a
  prediction made in any other.
* :class:`MemoryStore`: a bounded in-process dict, lost at exit (tests, read-only disks).

What is stored per prediction row, and nothing else: its id (text), the model's name and
version, the prediction time, the predicted label or value, and the probability vector (or
the binary decision score) when the model returned one. Inputs are never stored. The values
stay on the machine: nothing in a store is ever exported; only aggregates (quality metrics,
counts) leave the process as OpenTelemetry metrics.

Bounds, both enforced on every write:

* ``max_entries`` rows (default 1,000,000): the oldest rows are evicted first, in batches of
  at most ``evict_batch`` rows per statement.
* ``ttl_s`` seconds (default 7 days): an expired row never joins (its label counts as
  ``unknown_id``); expired rows are deleted oldest-first, at most ``evict_batch`` per write
  plus whatever :meth:`~PredictionStore.evict_expired` removes.

Joining a label removes its row and remembers ``(id, model)`` in a bounded record of recently
joined ids (``max_joined``, default 100,000), so a second label for the same id is counted as
``duplicate`` rather than ``unknown_id``.

Every write is one transaction: a failure (bad value, disk full, another process holding the
lock past ``timeout_s``) rolls it back and raises to the caller (the :class:`QualityHub`,
which counts and logs it); what was stored before is never lost.

Both stores are thread-safe: each serialises its operations with its own lock.

The interface and the row encoding are in :mod:`~otel_mlmon.quality.prediction_store`, the
stores in :mod:`~otel_mlmon.quality.memory_store` and :mod:`~otel_mlmon.quality.sqlite_store`;
this module re-exports them.
"""

from __future__ import annotations

from otel_mlmon.quality.memory_store import MemoryStore
from otel_mlmon.quality.prediction_store import (
    DEFAULT_EVICT_BATCH,
    DEFAULT_MAX_ENTRIES,
    DEFAULT_MAX_JOINED,
    DEFAULT_TTL_S,
    Batch,
    ModelKey,
    PredictionStore,
    StoredPrediction,
    TakeResult,
    default_path,
    model_key_of,
)
from otel_mlmon.quality.sqlite_store import SQLiteStore

__all__ = [
    "DEFAULT_EVICT_BATCH",
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_MAX_JOINED",
    "DEFAULT_TTL_S",
    "Batch",
    "MemoryStore",
    "ModelKey",
    "PredictionStore",
    "SQLiteStore",
    "StoredPrediction",
    "TakeResult",
    "default_path",
    "model_key_of",
]
