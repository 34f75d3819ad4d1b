"""``SQLiteStore``: the pending predictions in one SQLite file, shared by processes, kept
across restarts."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from itertools import repeat
from typing import Any, Callable, Iterator, Sequence

from otel_mlmon import _lifecycle
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
    decode,
    default_path,
    model_key_of,
    rows_of,
    truncate,
)

__all__ = ["SQLiteStore"]

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
_INHERITED: list[sqlite3.Connection] = []  # connections of a parent process, never closed here
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
        # Held across fork, so no transaction is open then (see otel_mlmon._lifecycle).
        _lifecycle.register(self, _lifecycle.STORE, lock="_lock", child=SQLiteStore._after_fork)

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

    def _after_fork(self, quiesced: bool = True) -> None:
        """In a forked child: the connection inherited from the parent is never used; the child
        opens its own on first use.

        When the fork happened outside any transaction (``quiesced``: the store's lock was held
        across it), the inherited handle is closed, which only resets this process's copy of
        SQLite's lock bookkeeping, so the child's own connection takes its file locks for real
        (a child sharing that stale bookkeeping would hold none, and the parent could then
        checkpoint and delete the WAL under it). POSIX record locks belong to the process that
        took them: the child holds none of the parent's, and closing releases none of them; no
        transaction is open, so there is nothing to roll back, and the closing connection
        cannot get the exclusive lock it would need to checkpoint while the parent's
        connection is open. Otherwise (a transaction may be half-way) the handle is kept
        referenced for the life of the process, neither used nor closed.
        """
        conn, self._conn = self._conn, None
        self._lock = threading.RLock()
        if conn is None:
            return
        if quiesced:
            try:
                conn.close()
                return
            except Exception:  # noqa: BLE001
                pass
        _INHERITED.append(conn)

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
        prepared = [(model_key_of(b.model_key), *rows_of(b)) for b in batches]
        with self._lock, self._write() as cur:
            rows: list[tuple] = []
            for key, ids, ys, blobs, scores, stamps in prepared:
                m = self._model_index(cur, key)
                rows.extend(zip(ids, repeat(m), stamps, ys, blobs, scores))
            rows = truncate(rows, self.max_entries)
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
                    prediction = StoredPrediction(i, self._key_of(cur, m), ts, y, decode(blob), score)
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
        joined = truncate(joined, self.max_joined)
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
