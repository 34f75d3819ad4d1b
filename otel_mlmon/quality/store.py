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
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from itertools import repeat
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from otel_mlmon.quality.ids import IdBlock, normalize_ids

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_MAX_JOINED",
    "DEFAULT_TTL_S",
    "MemoryStore",
    "ModelKey",
    "PredictionStore",
    "SQLiteStore",
    "StoredPrediction",
    "TakeResult",
    "default_path",
    "model_key_of",
]

DEFAULT_MAX_ENTRIES = 1_000_000
DEFAULT_TTL_S = 7 * 86400.0
DEFAULT_MAX_JOINED = 100_000
DEFAULT_EVICT_BATCH = 10_000

ModelKey = tuple  # (name: str, version: str | None)


def model_key_of(model: Any) -> ModelKey:
    """``"name"``, ``("name", "version")`` or ``("name", None)`` as ``(str, str | None)``."""
    if isinstance(model, str):
        return (model, None)
    if isinstance(model, tuple) and len(model) == 2 and isinstance(model[0], str):
        version = model[1]
        if version is not None and not isinstance(version, str):
            raise ValueError(f"model version must be a str or None, got {version!r}")
        return (model[0], version)
    raise ValueError(f"model must be a name or a (name, version) tuple, got {model!r}")


def default_path() -> str:
    """``$XDG_CACHE_HOME/otel-mlmon/predictions.sqlite`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "otel-mlmon", "predictions.sqlite")


class StoredPrediction(NamedTuple):
    id: str
    model_key: ModelKey
    timestamp: float
    y_pred: Any  # predicted label or value (None when only probabilities were recorded)
    proba: np.ndarray | None  # probability vector of the row (float64), or None
    score: float | None  # binary decision score, or None


class TakeResult(NamedTuple):
    """Outcome of :meth:`PredictionStore.take_many`, by position in the ids given."""

    joined: list[tuple[int, StoredPrediction]]  # removed from the store
    unknown: list[int]  # never stored, evicted or expired
    duplicate: list[tuple[int, ModelKey]]  # already joined (recently), once per model
    rejected: list[tuple[int, StoredPrediction]]  # refused by ``accept``: still stored


def _y_values(y_pred: Any, n: int) -> list[Any]:
    if y_pred is None:
        return [None] * n
    array = np.asarray(y_pred)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.shape != (n,):
        raise ValueError(f"y_pred must have {n} rows, got shape {array.shape}")
    values = array.tolist()
    if array.dtype.kind in "OuV":  # objects, or uint64 beyond SQLite's int64
        values = [_scalar(v) for v in values]
    return values


def _scalar(value: Any) -> Any:
    if value is None or type(value) in (str, float, bool):
        return value
    if type(value) is int:
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, np.generic):
        return _scalar(value.item())
    return str(value)


def _proba_blobs(proba: Any, n: int) -> list[bytes | None]:
    if proba is None:
        return [None] * n
    array = np.ascontiguousarray(proba, dtype="<f8")
    if array.ndim != 2 or array.shape[0] != n:
        raise ValueError(f"proba must have shape ({n}, n_classes), got {array.shape}")
    data, k = array.tobytes(), 8 * array.shape[1]
    return [data[i * k : (i + 1) * k] for i in range(n)]


def _scores(scores: Any, n: int) -> list[float | None]:
    if scores is None:
        return [None] * n
    array = np.asarray(scores, dtype=float)
    if array.shape != (n,):
        raise ValueError(f"scores must have shape ({n},), got {array.shape}")
    return array.tolist()


def _timestamps(timestamp: Any, n: int) -> Iterable[float]:
    if timestamp is None:
        return repeat(time.time(), n)
    if np.ndim(timestamp) == 0:
        return repeat(float(timestamp), n)
    array = np.asarray(timestamp, dtype=float)
    if array.shape != (n,):
        raise ValueError(f"timestamp must be a number or have shape ({n},), got {array.shape}")
    return array.tolist()


def _decode(blob: Any) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype="<f8")


class Batch(NamedTuple):
    """One :meth:`PredictionStore.put_many` call's arguments, for :meth:`put_batches`."""

    model_key: ModelKey
    ids: Any
    y_pred: Any = None
    proba: Any = None
    scores: Any = None
    timestamp: Any = None


def _rows_of(batch: Batch) -> tuple[list[str], list, list, list, Iterable[float]]:
    ids = batch.ids.tolist() if isinstance(batch.ids, IdBlock) else normalize_ids(batch.ids)
    n = len(ids)
    return (ids, _y_values(batch.y_pred, n), _proba_blobs(batch.proba, n), _scores(batch.scores, n),
            _timestamps(batch.timestamp, n))  # fmt: skip


class PredictionStore:
    """Interface of the stores. Every method is thread-safe."""

    max_entries: int
    ttl_s: float
    max_joined: int

    def __init__(self, max_entries: int, ttl_s: float, max_joined: int, evict_batch: int) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be an int >= 1, got {max_entries!r}")
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float)) or not ttl_s > 0:
            raise ValueError(f"ttl_s must be a positive number, got {ttl_s!r}")
        if isinstance(max_joined, bool) or not isinstance(max_joined, int) or max_joined < 0:
            raise ValueError(f"max_joined must be an int >= 0, got {max_joined!r}")
        if isinstance(evict_batch, bool) or not isinstance(evict_batch, int) or evict_batch < 1:
            raise ValueError(f"evict_batch must be an int >= 1, got {evict_batch!r}")
        self.max_entries = max_entries
        self.ttl_s = float(ttl_s)
        self.max_joined = max_joined
        self.evict_batch = evict_batch

    def put_many(self, model_key: ModelKey, ids: Any, y_pred: Any = None, proba: Any = None,
                 scores: Any = None, timestamp: Any = None) -> int:  # fmt: skip
        """Store one call's rows; returns how many new rows were added.

        ``y_pred`` (labels or values), ``proba`` (n, classes) and ``scores`` (n,) are each
        optional and per row. A row whose ``(id, model)`` is already pending is merged: a
        ``predict`` and a ``predict_proba`` of the same ids give one row with both (a value
        given again replaces the stored one; the first timestamp is kept).
        """
        return self.put_batches([Batch(model_key, ids, y_pred, proba, scores, timestamp)])

    def put_batches(self, batches: Sequence[Batch]) -> int:
        """Several :meth:`put_many` calls in one transaction; returns the new rows."""
        raise NotImplementedError

    def take_many(self, ids: Any, model_key: ModelKey | None = None,
                  accept: Callable[[int, StoredPrediction], bool] | None = None) -> TakeResult:  # fmt: skip
        """Join: remove and return the pending rows of ``ids`` (all models, or ``model_key``'s).

        ``accept(position, prediction)`` may refuse a row (a label invalid for its model); a
        refused row stays stored. Positions whose id is pending nowhere are ``duplicate`` if
        the id was joined recently (also earlier in the same ``ids``), else ``unknown``.
        """
        raise NotImplementedError

    def pending(self) -> int:
        """Rows stored and waiting for a label."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self.pending()

    def evict_expired(self, now: float | None = None, limit: int | None = None) -> int:
        """Delete rows older than ``ttl_s`` (at most about ``limit``); returns how many."""
        raise NotImplementedError

    def set_model_info(self, model_key: ModelKey, info: dict[str, Any]) -> None:
        """Persist what the hub needs to judge a label for this model (JSON-able dict)."""
        raise NotImplementedError

    def model_infos(self) -> dict[ModelKey, dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Idempotent."""

    def _take_arguments(self, ids: Any, model_key: ModelKey | None,
                        accept: Callable[[int, StoredPrediction], bool] | None) -> tuple:  # fmt: skip
        """``take_many``'s arguments, normalised: ids as text, the accept callback, the model."""
        return normalize_ids(ids), accept or self._accept_all, None if model_key is None else model_key_of(model_key)

    def _accept_all(self, position: int, prediction: StoredPrediction) -> bool:
        return True


def _truncate(rows: list, limit: int) -> list:
    return rows[-limit:] if len(rows) > limit else rows


class MemoryStore(PredictionStore):
    """Bounded in-process store (lost at exit). About 0.35 kB of memory per pending row of a
    binary classifier (``benchmarks/bench_labels.py``): prefer :class:`SQLiteStore` for
    large bounds.

    >>> store = MemoryStore(max_entries=2)
    >>> store.put_many(("m", None), ["a", "b"], y_pred=[0, 1])
    2
    >>> store.put_many(("m", None), ["c"], y_pred=[1])
    1
    >>> store.pending()                       # "a", the oldest, was evicted
    2
    >>> r = store.take_many(["b", "b", "a"])
    >>> [p.y_pred for _, p in r.joined], r.duplicate, r.unknown
    ([1], [(1, ('m', None))], [2])
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, ttl_s: float = DEFAULT_TTL_S,
                 max_joined: int = DEFAULT_MAX_JOINED, evict_batch: int = DEFAULT_EVICT_BATCH) -> None:  # fmt: skip
        super().__init__(max_entries, ttl_s, max_joined, evict_batch)
        self._lock = threading.RLock()
        # id -> (model index, timestamp, y_pred, proba blob, score), oldest id first; an id
        # predicted by several models maps to {model index: that tuple}. Compact on purpose.
        self._rows: OrderedDict[str, tuple | dict[int, tuple]] = OrderedDict()
        self._count = 0
        self._joined: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._keys: list[ModelKey] = []
        self._index: dict[ModelKey, int] = {}
        self._infos: dict[ModelKey, dict[str, Any]] = {}
        self._ttl_checked = 0.0
        ref = weakref.ref(self)
        if hasattr(os, "register_at_fork"):  # a lock held by another thread at fork time
            os.register_at_fork(after_in_child=lambda: (s := ref()) is not None and s._after_fork())

    def _after_fork(self) -> None:
        self._lock = threading.RLock()

    def _model_index(self, key: ModelKey) -> int:
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self._keys)
            self._keys.append(key)
        return index

    def put_batches(self, batches: Sequence[Batch]) -> int:
        prepared = []
        for batch in batches:  # validation first: a bad batch changes nothing
            key = model_key_of(batch.model_key)
            prepared.append((key, *_rows_of(batch)))
        added = 0
        with self._lock:
            for key, ids, ys, blobs, scores, stamps in prepared:
                m = self._model_index(key)
                rows = self._rows
                for i, y, blob, score, ts in _truncate(list(zip(ids, ys, blobs, scores, stamps)), self.max_entries):
                    value = rows.get(i)
                    if value is None:
                        rows[i] = (m, ts, y, blob, score)
                        added += 1
                        continue
                    entry = value if type(value) is tuple else value.get(m)
                    if entry is None or entry[0] != m:  # another model's prediction of this id
                        models = {value[0]: value} if type(value) is tuple else value
                        models[m] = (m, ts, y, blob, score)
                        rows[i] = models
                        added += 1
                        continue
                    merged = (m, entry[1], entry[2] if y is None else y, entry[3] if blob is None else blob,
                              entry[4] if score is None else score)  # fmt: skip
                    if type(value) is tuple:
                        rows[i] = merged
                    else:
                        value[m] = merged
            self._count += added
            while self._count > self.max_entries:
                _, value = self._rows.popitem(last=False)
                self._count -= 1 if type(value) is tuple else len(value)
            now = time.time()
            if now - self._ttl_checked >= 1.0:
                self._ttl_checked = now
                self._evict_expired(now, self.evict_batch)
        return added

    @staticmethod
    def _entries(value: tuple | dict[int, tuple] | None) -> list[tuple]:
        if value is None:
            return []
        return [value] if type(value) is tuple else list(value.values())

    def _evict_expired(self, now: float, limit: int | None) -> int:
        cutoff, removed, ids = now - self.ttl_s, 0, 0
        while self._rows and (limit is None or ids < limit):
            entries = self._entries(next(iter(self._rows.values())))
            if min(entry[1] for entry in entries) >= cutoff:
                break
            self._rows.popitem(last=False)
            removed += len(entries)
            ids += 1
        self._count -= removed
        return removed

    def evict_expired(self, now: float | None = None, limit: int | None = None) -> int:
        with self._lock:
            return self._evict_expired(time.time() if now is None else now, limit)

    def take_many(self, ids: Any, model_key: ModelKey | None = None,
                  accept: Callable[[int, StoredPrediction], bool] | None = None) -> TakeResult:  # fmt: skip
        ids, accept, only = self._take_arguments(ids, model_key, accept)
        result = TakeResult([], [], [], [])
        with self._lock:
            only_index = None if only is None else self._index.get(only, -1)
            cutoff = time.time() - self.ttl_s
            consumed: set[tuple[str, int]] = set()
            # Decide everything first, change the state after: an exception in ``accept``
            # leaves the store as it was (like the SQLite store's rolled-back transaction).
            for position, i in enumerate(ids):
                found = False
                for m, ts, y, blob, score in self._entries(self._rows.get(i)):
                    if (only_index is not None and m != only_index) or ts < cutoff or (i, m) in consumed:
                        continue
                    found = True
                    prediction = StoredPrediction(i, self._keys[m], ts, y, _decode(blob), score)
                    if accept(position, prediction):
                        consumed.add((i, m))
                        result.joined.append((position, prediction))
                    else:
                        result.rejected.append((position, prediction))
                if found:
                    continue
                duplicate = [m for m in range(len(self._keys)) if (only_index is None or m == only_index)
                             and ((i, m) in consumed or (i, m) in self._joined)]  # fmt: skip
                if duplicate:
                    result.duplicate.extend((position, self._keys[m]) for m in duplicate)
                else:
                    result.unknown.append(position)
            for i, m in consumed:
                value = self._rows[i]
                if type(value) is tuple:
                    del self._rows[i]
                else:
                    del value[m]
                    if len(value) == 1:
                        self._rows[i] = next(iter(value.values()))
                self._count -= 1
            for position, prediction in result.joined:
                self._remember(prediction.id, self._index[prediction.model_key])
        return result

    def _remember(self, i: str, m: int) -> None:
        if self.max_joined == 0:
            return
        key = (i, m)
        self._joined[key] = None
        self._joined.move_to_end(key)
        while len(self._joined) > self.max_joined:
            self._joined.popitem(last=False)

    def pending(self) -> int:
        with self._lock:
            return self._count

    def set_model_info(self, model_key: ModelKey, info: dict[str, Any]) -> None:
        with self._lock:
            self._infos[model_key_of(model_key)] = json.loads(json.dumps(info))

    def model_infos(self) -> dict[ModelKey, dict[str, Any]]:
        with self._lock:
            return dict(self._infos)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    id TEXT NOT NULL,
    model INTEGER NOT NULL,
    ts REAL NOT NULL,
    y_pred,
    proba BLOB,
    score REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS pending_id ON pending (id, model);
CREATE TABLE IF NOT EXISTS joined (id TEXT NOT NULL, model INTEGER NOT NULL, ts REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS joined_id ON joined (id, model);
CREATE TABLE IF NOT EXISTS models (idx INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, info TEXT);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (k, v) VALUES ('schema', 1), ('pending', 0), ('joined', 0);
"""
_CHUNK = 500  # ids per SELECT ... IN (...)
_DELETE_OLDEST = "DELETE FROM pending WHERE rowid IN (SELECT rowid FROM pending ORDER BY rowid LIMIT ?)"


class SQLiteStore(PredictionStore):
    """Persistent store in one SQLite file (WAL mode, ``synchronous=NORMAL``).

    Rows are inserted in one transaction per write; lookups go through a unique index on
    ``(id, model)``; the pending and joined counts are kept in the file, updated in the same
    transactions, so they stay exact when several processes share the file. The file does not
    shrink, but space freed by joins and evictions is reused: its size follows the peak row
    count, which ``max_entries`` bounds.

    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> writer = SQLiteStore(os.path.join(tmp.name, "p.sqlite"))
    >>> writer.put_many(("m", "1"), ["a", "b"], y_pred=[0.5, 2.0])
    2
    >>> writer.close()
    >>> store = SQLiteStore(os.path.join(tmp.name, "p.sqlite"))   # after a restart
    >>> [(i, p.y_pred) for i, p in store.take_many(["b"]).joined]
    [(0, 2.0)]
    >>> store.pending()
    1
    >>> store.close(); tmp.cleanup()
    """

    def __init__(self, path: str | os.PathLike | None = None, max_entries: int = DEFAULT_MAX_ENTRIES,
                 ttl_s: float = DEFAULT_TTL_S, max_joined: int = DEFAULT_MAX_JOINED,
                 evict_batch: int = DEFAULT_EVICT_BATCH, timeout_s: float = 5.0) -> None:  # fmt: skip
        super().__init__(max_entries, ttl_s, max_joined, evict_batch)
        self.path = os.fspath(default_path() if path is None else path)
        self.timeout_s = float(timeout_s)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._index: dict[ModelKey, int] = {}
        self._keys: dict[int, ModelKey] = {}
        self._ttl_checked = 0.0
        self._closed = False
        self._connect()
        ref = weakref.ref(self)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: (s := ref()) is not None and s._after_fork())

    # ------------------------------------------------------------------ connection
    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("the store is closed")
        conn = self._conn
        if conn is not None:
            return conn
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA journal_size_limit=67108864")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.strip().split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._load_models(conn)
        return conn

    def _after_fork(self) -> None:
        # An inherited SQLite connection must not be used (nor closed) in the child.
        self._lock = threading.RLock()
        self._conn = None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn.cursor()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _load_models(self, conn: sqlite3.Connection) -> None:
        for idx, key in conn.execute("SELECT idx, key FROM models"):
            name, version = json.loads(key)
            self._index[(name, version)] = idx
            self._keys[idx] = (name, version)

    def _model_index(self, cur: sqlite3.Cursor, key: ModelKey) -> int:
        index = self._index.get(key)
        if index is None:
            text = json.dumps(list(key))
            cur.execute("INSERT OR IGNORE INTO models (key) VALUES (?)", (text,))
            index = cur.execute("SELECT idx FROM models WHERE key = ?", (text,)).fetchone()[0]
            self._index[key] = index
            self._keys[index] = key
        return index

    def _key_of(self, cur: sqlite3.Cursor, index: int) -> ModelKey:
        key = self._keys.get(index)
        if key is None:  # added by another process
            self._load_models(cur.connection)
            key = self._keys.get(index, ("_unknown", None))
        return key

    @staticmethod
    def _meta(cur: sqlite3.Cursor, name: str) -> int:
        return cur.execute("SELECT v FROM meta WHERE k = ?", (name,)).fetchone()[0]

    # ------------------------------------------------------------------ writes
    def put_batches(self, batches: Sequence[Batch]) -> int:
        prepared = [(model_key_of(b.model_key), *_rows_of(b)) for b in batches]
        with self._lock, self._write() as cur:
            rows: list[tuple] = []
            for key, ids, ys, blobs, scores, stamps in prepared:
                m = self._model_index(cur, key)
                rows.extend(zip(ids, repeat(m), stamps, ys, blobs, scores))
            rows = _truncate(rows, self.max_entries)
            cur.executemany(
                "INSERT OR IGNORE INTO pending (id, model, ts, y_pred, proba, score) VALUES (?, ?, ?, ?, ?, ?)", rows
            )
            added = cur.rowcount
            if added < len(rows):  # merges (predict + predict_proba of the same ids)
                cur.executemany(
                    "UPDATE pending SET y_pred = coalesce(?4, y_pred), proba = coalesce(?5, proba), "
                    "score = coalesce(?6, score) WHERE id = ?1 AND model = ?2",
                    rows,
                )
            count = self._meta(cur, "pending") + added
            while count > self.max_entries:
                n = min(count - self.max_entries, self.evict_batch)
                cur.execute(_DELETE_OLDEST, (n,))
                count -= cur.rowcount
                if cur.rowcount == 0:  # the count was wrong (edited file): recount
                    count = cur.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
                    break
            now = time.time()
            if now - self._ttl_checked >= 1.0:
                self._ttl_checked = now
                count -= self._evict_expired_batch(cur, now)
            cur.execute("UPDATE meta SET v = ? WHERE k = 'pending'", (count,))
        return added

    def _evict_expired_batch(self, cur: sqlite3.Cursor, now: float) -> int:
        """Delete the leading run of expired rows among the ``evict_batch`` oldest."""
        cutoff = now - self.ttl_s
        last = None
        oldest = cur.execute("SELECT rowid, ts FROM pending ORDER BY rowid LIMIT ?", (self.evict_batch,)).fetchall()
        for rowid, ts in oldest:
            if ts >= cutoff:
                break
            last = rowid
        if last is None:
            return 0
        cur.execute("DELETE FROM pending WHERE rowid <= ?", (last,))
        return cur.rowcount

    def evict_expired(self, now: float | None = None, limit: int | None = None) -> int:
        now = time.time() if now is None else now
        removed = 0
        while limit is None or removed < limit:
            with self._lock, self._write() as cur:
                n = self._evict_expired_batch(cur, now)
                if n:
                    cur.execute("UPDATE meta SET v = v - ? WHERE k = 'pending'", (n,))
            removed += n
            if n < self.evict_batch:
                break
        return removed

    def take_many(self, ids: Any, model_key: ModelKey | None = None,
                  accept: Callable[[int, StoredPrediction], bool] | None = None) -> TakeResult:  # fmt: skip
        ids, accept, only = self._take_arguments(ids, model_key, accept)
        result = TakeResult([], [], [], [])
        unique = list(dict.fromkeys(ids))
        with self._lock, self._write() as cur:
            only_index = None if only is None else self._index.get(only, -1)
            found: dict[str, list[list]] = {}
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                select = f"SELECT rowid, id, model, ts, y_pred, proba, score FROM pending WHERE id IN ({marks})"
                for row in cur.execute(select, chunk):
                    if only_index is None or row[2] == only_index:
                        found.setdefault(row[1], []).append(list(row))
            cutoff = time.time() - self.ttl_s
            deleted: list[tuple[int]] = []
            joined: list[tuple[str, int, float]] = []
            consumed: dict[str, list[int]] = {}
            missing: list[int] = []
            for position, i in enumerate(ids):
                rows = [r for r in found.get(i, ()) if r[0] is not None and r[3] >= cutoff]
                if not rows:
                    missing.append(position)
                    continue
                for row in rows:
                    rowid, _, m, ts, y, blob, score = row
                    prediction = StoredPrediction(i, self._key_of(cur, m), ts, y, _decode(blob), score)
                    if accept(position, prediction):
                        row[0] = None  # consumed: a later position with this id is a duplicate
                        deleted.append((rowid,))
                        joined.append((i, m, ts))
                        consumed.setdefault(i, []).append(m)
                        result.joined.append((position, prediction))
                    else:
                        result.rejected.append((position, prediction))
            if missing:
                recent = self._recently_joined(cur, [ids[p] for p in missing], only_index)
                for position in missing:
                    i = ids[position]
                    models = consumed.get(i, []) + recent.get(i, [])
                    if models:
                        result.duplicate.extend((position, self._key_of(cur, m)) for m in dict.fromkeys(models))
                    else:
                        result.unknown.append(position)
            if deleted:
                cur.executemany("DELETE FROM pending WHERE rowid = ?", deleted)
                cur.execute("UPDATE meta SET v = v - ? WHERE k = 'pending'", (len(deleted),))
                self._remember(cur, joined)
        return result

    def _recently_joined(self, cur: sqlite3.Cursor, ids: list[str], only_index: int | None) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for i, m in cur.execute(f"SELECT id, model FROM joined WHERE id IN ({marks})", chunk):
                if only_index is None or m == only_index:
                    out.setdefault(i, []).append(m)
        return out

    def _remember(self, cur: sqlite3.Cursor, joined: list[tuple[str, int, float]]) -> None:
        if self.max_joined == 0:
            return
        joined = _truncate(joined, self.max_joined)
        cur.executemany("INSERT OR IGNORE INTO joined (id, model, ts) VALUES (?, ?, ?)", joined)
        count = self._meta(cur, "joined") + cur.rowcount
        if count > self.max_joined:
            cur.execute("DELETE FROM joined WHERE rowid IN (SELECT rowid FROM joined ORDER BY rowid LIMIT ?)",
                        (count - self.max_joined,))  # fmt: skip
            count -= cur.rowcount
        cur.execute("UPDATE meta SET v = ? WHERE k = 'joined'", (count,))

    # ------------------------------------------------------------------ reads
    def pending(self) -> int:
        with self._lock:
            conn = self._connect()
            return conn.execute("SELECT v FROM meta WHERE k = 'pending'").fetchone()[0]

    def set_model_info(self, model_key: ModelKey, info: dict[str, Any]) -> None:
        key = model_key_of(model_key)
        text = json.dumps(info)
        with self._lock, self._write() as cur:
            m = self._model_index(cur, key)
            cur.execute("UPDATE models SET info = ? WHERE idx = ?", (text, m))

    def model_infos(self) -> dict[ModelKey, dict[str, Any]]:
        with self._lock:
            conn = self._connect()
            out = {}
            for key, info in conn.execute("SELECT key, info FROM models WHERE info IS NOT NULL"):
                name, version = json.loads(key)
                out[(name, version)] = json.loads(info)
            return out

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
