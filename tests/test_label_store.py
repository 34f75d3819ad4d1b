"""Pending-prediction stores: bounds (max entries, TTL), merge, duplicates, unknown ids,
transactions, and persistence across a process restart (SQLite)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from otel_mlmon.quality.ids import IdBlock
from otel_mlmon.quality.store import Batch, MemoryStore, SQLiteStore, model_key_of
from otel_mlmon.quality.tracker import QualityHub

M = ("churn", "3")
OTHER = ("churn", "4")


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request, tmp_path):
    stores = []

    def make(**kwargs):
        if request.param == "memory":
            store = MemoryStore(**kwargs)
        else:
            store = SQLiteStore(tmp_path / "pending.sqlite", **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def test_put_and_take_round_trip_values(make_store):
    store = make_store()
    proba = np.array([[0.1, 0.9], [0.75, 0.25], [0.5, 0.5]])
    assert store.put_many(M, ["a", "b", "c"], y_pred=[1, 0, 1], proba=proba, timestamp=1000.0 + time.time()) == 3
    assert store.put_many(("reg", None), np.array([7, 8]), y_pred=np.array([1.5, -2.25])) == 2
    assert store.put_many(("txt", None), ("x",), y_pred=np.array(["spam"])) == 1
    assert store.pending() == len(store) == 6
    result = store.take_many(["b", "8", "x", "a"])
    got = {p.id: p for _, p in result.joined}
    assert [pos for pos, _ in result.joined] == [0, 1, 2, 3]
    assert got["b"].y_pred == 0 and got["b"].model_key == M and got["b"].proba.tolist() == [0.75, 0.25]
    assert got["8"].y_pred == -2.25 and got["8"].proba is None and got["8"].model_key == ("reg", None)
    assert got["x"].y_pred == "spam"
    assert got["a"].proba.tolist() == [0.1, 0.9] and got["a"].score is None
    assert not result.unknown and not result.duplicate and store.pending() == 2


def test_predict_and_proba_of_the_same_ids_merge(make_store):
    store = make_store()
    t0 = time.time()
    store.put_many(M, ["a", "b"], y_pred=[1, 0], timestamp=t0)
    assert store.put_many(M, ["a", "b"], proba=[[0.2, 0.8], [0.6, 0.4]], timestamp=t0 + 5) == 0
    store.put_many(M, ["b"], scores=[-1.5])
    assert store.pending() == 2
    rows = {p.id: p for _, p in store.take_many(["a", "b"]).joined}
    assert rows["a"].y_pred == 1 and rows["a"].proba.tolist() == [0.2, 0.8]
    assert rows["b"].y_pred == 0 and rows["b"].proba.tolist() == [0.6, 0.4] and rows["b"].score == -1.5
    assert rows["a"].timestamp == t0  # the first prediction time is kept


def test_duplicates_and_unknown_ids(make_store):
    store = make_store()
    store.put_many(M, ["a", "b", "c"], y_pred=[1, 0, 1])
    first = store.take_many(["a", "zzz", "a"])
    assert [pos for pos, _ in first.joined] == [0]
    assert first.unknown == [1]
    assert first.duplicate == [(2, M)]  # twice in one call
    second = store.take_many(["a", "b", "nope"])
    assert second.duplicate == [(0, M)]  # joined by an earlier call
    assert [pos for pos, _ in second.joined] == [1] and second.unknown == [2]
    assert store.pending() == 1


def test_joined_record_is_bounded(make_store):
    store = make_store(max_joined=3)
    ids = [f"id{i}" for i in range(6)]
    store.put_many(M, ids, y_pred=[0] * 6)
    store.take_many(ids)
    again = store.take_many(ids)
    assert again.unknown == [0, 1, 2]  # forgotten: the record keeps the 3 most recent
    assert [pos for pos, _ in again.duplicate] == [3, 4, 5]


def test_same_id_for_two_models_and_model_filter(make_store):
    store = make_store()
    store.put_many(M, ["r1", "r2"], y_pred=[1, 1])
    store.put_many(OTHER, ["r1"], y_pred=[0])
    assert store.pending() == 3
    only = store.take_many(["r1"], model_key=OTHER)
    assert [(p.model_key, p.y_pred) for _, p in only.joined] == [(OTHER, 0)]
    both = store.take_many(["r1", "r2"])
    assert sorted(p.model_key for _, p in both.joined) == [M, M]
    assert store.take_many(["r2"], model_key=("never", None)).unknown == [0]


def test_accept_refusal_keeps_the_row(make_store):
    store = make_store()
    store.put_many(M, ["a", "b"], y_pred=[1, 0])
    refused = store.take_many(["a", "b"], accept=lambda pos, pred: pred.id == "b")
    assert [p.id for _, p in refused.rejected] == ["a"] and [p.id for _, p in refused.joined] == ["b"]
    assert store.pending() == 1
    assert [p.id for _, p in store.take_many(["a"]).joined] == ["a"]


def test_bounded_by_max_entries_oldest_evicted(make_store):
    store = make_store(max_entries=1000, evict_batch=64)
    for start in range(0, 2500, 250):
        store.put_many(M, [f"p{i}" for i in range(start, start + 250)], y_pred=np.zeros(250, int))
        assert store.pending() <= 1000
    assert store.pending() == 1000
    result = store.take_many(["p0", "p1499", "p1500", "p2499"])
    assert result.unknown == [0, 1] and [pos for pos, _ in result.joined] == [2, 3]
    # One call larger than the bound keeps its newest rows only.
    assert store.put_many(M, [f"q{i}" for i in range(1500)], y_pred=np.zeros(1500, int)) == 1000
    assert store.pending() == 1000


def test_bounded_by_ttl(make_store):
    store = make_store(ttl_s=3600.0)
    now = time.time()
    store.put_many(M, ["old1", "old2"], y_pred=[0, 1], timestamp=now - 7200)
    store.put_many(M, ["new"], y_pred=[1], timestamp=now)
    result = store.take_many(["old1", "new"])
    assert result.unknown == [0]  # expired: never joins (and was evicted by a write)
    assert [pos for pos, _ in result.joined] == [1]
    assert store.pending() == 0
    store.put_many(M, ["aging1", "aging2"], y_pred=[0, 1], timestamp=now - 3000)
    store.put_many(M, ["young"], y_pred=[1], timestamp=now)
    assert store.pending() == 3
    assert store.evict_expired(now=now + 1000) == 2  # older than 3600 s an hour from now
    assert store.pending() == 1


def test_bad_input_changes_nothing(make_store):
    store = make_store()
    store.put_many(M, ["a", "b"], y_pred=[1, 0])
    with pytest.raises(ValueError, match="y_pred"):
        store.put_many(M, ["c", "d"], y_pred=[1])
    with pytest.raises(ValueError, match="proba"):
        store.put_batches([Batch(M, ["e"], [1]), Batch(M, ["f", "g"], None, np.ones((3, 2)))])
    assert store.pending() == 2

    def explode(position, prediction):
        if position == 1:
            raise RuntimeError("boom")
        return True

    with pytest.raises(RuntimeError):
        store.take_many(["a", "b"], accept=explode)
    assert store.pending() == 2  # the join was rolled back
    assert sorted(p.id for _, p in store.take_many(["a", "b"]).joined) == ["a", "b"]


def test_id_blocks_and_id_normalisation(make_store):
    store = make_store()
    block = IdBlock(3)
    store.put_many(M, block, y_pred=[0, 1, 2])
    store.put_many(M, np.array([10, 11]), y_pred=[5, 6])
    result = store.take_many(list(block) + [10, "11"])
    assert len(result.joined) == 5


def test_model_key_validation():
    assert model_key_of("m") == ("m", None)
    assert model_key_of(("m", "2")) == ("m", "2")
    for bad in (3, ("m", 2), ("m",), None):
        with pytest.raises(ValueError):
            model_key_of(bad)
    with pytest.raises(ValueError):
        MemoryStore(max_entries=0)
    with pytest.raises(ValueError):
        MemoryStore(ttl_s=-1)


def test_sqlite_file_layout_wal_and_only_needed_columns(tmp_path):
    path = tmp_path / "p.sqlite"
    store = SQLiteStore(path)
    store.put_many(M, ["a"], y_pred=[1], proba=[[0.3, 0.7]])
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    columns = [row[1] for row in conn.execute("PRAGMA table_info(pending)")]
    assert columns == ["id", "model", "ts", "y_pred", "proba", "score"]
    indexes = {row[1] for row in conn.execute("PRAGMA index_list(pending)")}
    assert "pending_id" in indexes
    conn.close()
    store.close()
    store.close()  # idempotent
    with pytest.raises(RuntimeError):
        store.pending()


_WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from otel_mlmon.quality.tracker import QualityHub
    hub = QualityHub(store="sqlite", path=sys.argv[1])
    ids = [f"req-{i}" for i in range(200)]
    rng = np.random.default_rng(0)
    p1 = rng.random(200)
    hub.on_predictions(("fraud", "7"), ids, y_pred=(p1 > 0.5).astype(int),
                       proba=np.column_stack([1 - p1, p1]), classes=[0, 1])
    hub.on_predictions(("price", None), ids[:50], y_pred=np.linspace(0, 1, 50))
    assert hub.close()
    """
)


def test_labels_join_after_a_restart(tmp_path):
    """A process stores predictions and exits; labels recorded later (here, in this process,
    with a fresh hub on the same file) still join, are counted and feed the metrics."""
    path = tmp_path / "restart.sqlite"
    subprocess.run([sys.executable, "-c", _WRITER, str(path)], check=True, timeout=60)
    hub = QualityHub(store="sqlite", path=path, window=1000)
    assert hub.pending() == 250
    rng = np.random.default_rng(0)
    p1 = rng.random(200)
    y_true = (rng.random(200) < p1).astype(int)
    # The 50 first ids were also predicted by "price": restrict this join to "fraud".
    result = hub.record_ground_truth([f"req-{i}" for i in range(200)], y_true, model=("fraud", "7"))
    assert result.joined == 200 and result.by_model == {("fraud", "7"): {"joined": 200}}
    values = hub.record_ground_truth([f"req-{i}" for i in range(50)], np.linspace(0, 1, 50) + 0.1, model="price")
    assert values.joined == 50
    snap = hub.snapshot()
    assert snap.labels[(("fraud", "7"), "joined")] == 200
    assert snap.quality[("fraud", "7")][("accuracy", "realized")] == float(np.mean(y_true == (p1 > 0.5)))
    assert abs(snap.quality[("price", None)][("mae", "realized")] - 0.1) < 1e-12
    assert snap.pending == 0
    again = hub.record_ground_truth(["req-0"], [1])
    assert again.duplicate == 2  # once per model that predicted "req-0"
    assert again.by_model == {("fraud", "7"): {"duplicate": 1}, ("price", None): {"duplicate": 1}}
    hub.close()


def test_two_processes_share_one_file_and_the_bound(tmp_path):
    """Counts live in the file, updated in the writers' transactions: exact across processes."""
    path = tmp_path / "shared.sqlite"
    code = textwrap.dedent(
        """
        import sys
        from otel_mlmon.quality.store import SQLiteStore
        store = SQLiteStore(sys.argv[1], max_entries=3000)
        tag = sys.argv[2]
        for start in range(0, 2000, 100):
            store.put_many(("m", None), [f"{tag}{i}" for i in range(start, start + 100)], y_pred=[1] * 100)
        store.close()
        """
    )
    SQLiteStore(path, max_entries=3000).close()  # create the schema once
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), tag]) for tag in ("x", "y")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    store = SQLiteStore(path, max_entries=3000)
    assert store.pending() == 3000
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0] == 3000
    conn.close()
    store.close()


def test_unreadable_file_falls_back_to_memory(tmp_path):
    path = tmp_path / "garbage.sqlite"
    path.write_bytes(b"this is not an SQLite database" * 100)
    errors = []
    hub = QualityHub(store="sqlite", path=path, on_error=lambda stage, exc: errors.append(stage))
    hub.on_predictions(M, ["a", "b"], y_pred=np.array([0, 1]), classes=[0, 1])
    assert hub.flush() and errors == ["open_store"]
    assert hub.record_ground_truth(["a", "b"], [0, 1]).joined == 2  # kept working, in memory
    assert path.read_bytes().startswith(b"this is not")  # the file was left alone
    hub.close()


def test_forked_child_reopens_the_file(tmp_path):
    store = SQLiteStore(tmp_path / "fork.sqlite")
    store.put_many(M, ["parent"], y_pred=[1])  # the parent's connection is open
    pid = os.fork()
    if pid == 0:  # child: must not use the inherited connection
        try:
            store.put_many(M, ["child"], y_pred=[0])
            os._exit(0 if store.pending() == 2 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(p.id for _, p in store.take_many(["parent", "child"]).joined) == ["child", "parent"]
    store.close()


def test_corrupt_file_warning_names_the_file_and_the_fallback(tmp_path, caplog):
    path = tmp_path / "corrupt.sqlite"
    path.write_bytes(b"\x00garbage, not SQLite" * 200)
    hub = QualityHub(store="sqlite", path=path)
    with caplog.at_level("WARNING", logger="otel_mlmon"):
        hub.on_predictions(M, ["a"], y_pred=np.array([1]), classes=[0, 1])
        assert hub.flush()
    (message,) = [r.getMessage() for r in caplog.records if "label store" in r.getMessage()]
    assert str(path) in message and "in-memory store" in message, message
    assert hub.record_ground_truth(["a"], [1]).joined == 1
    hub.close()
