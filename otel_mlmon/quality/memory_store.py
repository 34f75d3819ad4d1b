"""``MemoryStore``: the pending predictions in a bounded in-process dict (lost at exit)."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Sequence

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
    model_key_of,
    rows_of,
    truncate,
)

__all__ = ["MemoryStore"]


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
        # Held across fork (otel_mlmon._lifecycle): the rows are never half-written then.
        _lifecycle.register(self, _lifecycle.STORE, lock="_lock", child=MemoryStore._after_fork)

    def _after_fork(self, quiesced: bool = True) -> None:
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
            prepared.append((key, *rows_of(batch)))
        added = 0
        with self._lock:
            for key, ids, ys, blobs, scores, stamps in prepared:
                m = self._model_index(key)
                rows = self._rows
                for i, y, blob, score, ts in truncate(list(zip(ids, ys, blobs, scores, stamps)), self.max_entries):
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
                    prediction = StoredPrediction(i, self._keys[m], ts, y, decode(blob), score)
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
