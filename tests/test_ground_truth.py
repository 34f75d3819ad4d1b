"""QualityHub end to end with plain arrays: predictions now, ground truth later; bad input;
prediction ids (context manager, last ids per thread / task); estimated quality (CBPE)."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from otel_mlmon.quality.ids import IdBlock, call_ids, current_ids, last_prediction_ids, prediction_ids, set_last
from otel_mlmon.quality.store import MemoryStore
from otel_mlmon.quality.tracker import UNKNOWN_MODEL, LabelResult, QualityHub

CLF = ("churn", "2")
REG = ("price", None)


def predict(hub, key, rows, **outputs):
    """What the instrumentation does: ids on the caller's thread, record on the worker's."""
    block = call_ids(rows)
    set_last(block)
    hub.on_predictions(key, block, **outputs)
    return block


@pytest.fixture
def hub():
    h = QualityHub(store="memory", window=1000)
    yield h
    h.close()


def test_predictions_now_labels_later_binary(hub):
    rng = np.random.default_rng(0)
    n = 600
    p1 = rng.random(n)
    proba = np.column_stack([1 - p1, p1])
    y_pred = (p1 > 0.5).astype(int)
    y_true = (rng.random(n) < p1).astype(int)
    t0 = time.time() - 120.0
    ids = [f"req-{i}" for i in range(n)]
    with prediction_ids(ids):
        block = predict(hub, CLF, n, y_pred=y_pred, classes=[0, 1], timestamp=t0)
        predict(hub, CLF, n, proba=proba, classes=[0, 1], timestamp=t0)  # merged with predict
    assert list(block) == ids and list(last_prediction_ids()) == ids
    assert hub.pending() == n
    delays = []
    hub.subscribe(lambda key, values: delays.append((key, values.copy())))
    # Labels arrive later, in two parts and out of order.
    order = rng.permutation(n)
    first = hub.record_ground_truth([ids[i] for i in order[:250]], y_true[order[:250]])
    second = hub.record_ground_truth(np.array(ids)[order[250:]], y_true[order[250:]].tolist(), timestamp=t0 + 60)
    assert (first.joined, second.joined, first.unknown_id, first.invalid) == (250, 350, 0, 0)
    assert first.by_model == {CLF: {"joined": 250}}
    snap = hub.snapshot()
    assert snap.pending == 0
    assert snap.labels == {(CLF, "joined"): 600}
    realized = {metric: v for (metric, source), v in snap.quality[CLF].items() if source == "realized"}
    yt, yp, pr = y_true[order], y_pred[order], proba[order]  # the window, in join order
    assert realized["accuracy"] == skm.accuracy_score(yt, yp)
    assert realized["f1"] == skm.f1_score(yt, yp)
    assert realized["roc_auc"] == skm.roc_auc_score(yt, pr[:, 1])
    assert realized["log_loss"] == skm.log_loss(yt, y_proba=pr, labels=[0, 1])
    assert set(realized) == {"accuracy", "precision", "recall", "f1", "fpr", "tpr", "roc_auc", "log_loss"}
    estimated = {metric for (metric, source) in snap.quality[CLF] if source == "estimated"}
    assert estimated == {"accuracy", "precision", "recall", "f1"}
    # Label delays: one per joined label, prediction time to label time.
    assert [key for key, _ in delays] == [CLF, CLF]
    assert delays[0][1].shape == (250,) and np.all(delays[0][1] >= 119)
    assert np.allclose(delays[1][1], 60.0)


def test_regression_and_window_slides(hub):
    rng = np.random.default_rng(1)
    truth = rng.normal(10, 3, 1500)
    guess = truth + rng.normal(0, 1, 1500)
    blocks = [predict(hub, REG, 500, y_pred=guess[i : i + 500]) for i in range(0, 1500, 500)]
    ids = [i for block in blocks for i in block]
    result = hub.record_ground_truth(ids, truth)
    assert result.joined == 1500
    quality = hub.snapshot().quality[REG]
    yt, yp = truth[-1000:], guess[-1000:]  # the window keeps the last 1000 labels
    assert quality[("mae", "realized")] == skm.mean_absolute_error(yt, yp)
    assert quality[("rmse", "realized")] == skm.root_mean_squared_error(yt, yp)
    assert quality[("r2", "realized")] == skm.r2_score(yt, yp)
    assert not any(source == "estimated" for _, source in quality)
    assert hub.models()[REG] == {"kind": "regression", "classes": [], "fixed": False}


def test_length_mismatch_raises_and_loses_nothing(hub):
    block = predict(hub, CLF, 3, y_pred=np.array([0, 1, 1]), classes=[0, 1])
    with pytest.raises(ValueError, match="same length, got 3 ids and 2 labels"):
        hub.record_ground_truth(list(block), [0, 1])
    for bad_ids, bad_y, match in (
        ("abc", [1, 2, 3], "1-D sequence"),
        (5, [1], "1-D sequence"),
        (np.zeros((3, 2)), [1, 2, 3], "1-D"),
        (list(block), np.zeros((3, 2)), "1-D"),
        (list(block), "abc", "1-D sequence"),
    ):
        with pytest.raises(ValueError, match=match):
            hub.record_ground_truth(bad_ids, bad_y)
    with pytest.raises(ValueError, match="timestamp"):
        hub.record_ground_truth(list(block), [0, 1, 1], timestamp=[1.0, 2.0])
    with pytest.raises(ValueError, match="model"):
        hub.record_ground_truth(list(block), [0, 1, 1], model=42)
    snap = hub.snapshot()
    assert snap.pending == 3 and snap.labels == {}
    assert hub.record_ground_truth(list(block), [0, 1, 1]).joined == 3


def test_wrong_label_types_are_counted_invalid_and_stay_pending(hub):
    reg = predict(hub, REG, 4, y_pred=np.array([1.0, 2.0, 3.0, 4.0]))
    clf = predict(hub, CLF, 3, y_pred=np.array([0, 1, 1]), classes=[0, 1])
    result = hub.record_ground_truth(list(reg), ["1.5", None, float("nan"), True])
    assert (result.invalid, result.joined) == (4, 0)
    result = hub.record_ground_truth(list(clf), ["1", 7, [0]])  # not among classes, unhashable
    assert (result.invalid, result.joined) == (3, 0)
    assert hub.pending() == 7  # invalid labels do not consume their prediction
    fixed = hub.record_ground_truth(list(reg) + list(clf), [1.0, 2.5, 3.0, 4.0, 0, 1, np.int64(1)])
    assert (fixed.joined, fixed.invalid) == (7, 0)
    labels = hub.snapshot().labels
    assert labels[(REG, "invalid")] == 4 and labels[(CLF, "invalid")] == 3 and labels[(CLF, "joined")] == 3


def test_unknown_duplicate_and_model_attribution(hub):
    a = predict(hub, CLF, 2, y_pred=np.array([1, 0]), classes=[0, 1])
    result = hub.record_ground_truth([a[0], "never-seen", a[0]], [1, 0, 1])
    assert (result.joined, result.unknown_id, result.duplicate) == (1, 1, 1)
    assert result.by_model == {CLF: {"joined": 1, "unknown_id": 1, "duplicate": 1}}  # one model: its
    predict(hub, ("other", "1"), 1, y_pred=np.array([5.0]))
    result = hub.record_ground_truth(["nope"], [1])
    assert result.by_model == {UNKNOWN_MODEL: {"unknown_id": 1}}  # two models: cannot tell
    result = hub.record_ground_truth(["nope"], [1], model=CLF)
    assert result.by_model == {CLF: {"unknown_id": 1}}


def test_shadow_models_share_ids(hub):
    ids = ["r1", "r2", "r3"]
    with prediction_ids(ids):
        predict(hub, ("champion", "1"), 3, y_pred=np.array(["a", "b", "a"]), classes=["a", "b"])
        predict(hub, ("challenger", "1"), 3, y_pred=np.array(["a", "a", "a"]), classes=["a", "b"])
    result = hub.record_ground_truth(ids, ["a", "b", "b"])
    assert result.joined == 6 and set(result.by_model) == {("champion", "1"), ("challenger", "1")}
    quality = hub.snapshot().quality
    assert quality[("champion", "1")][("accuracy", "realized")] == 2 / 3
    assert quality[("challenger", "1")][("accuracy", "realized")] == 1 / 3


def test_classes_learned_without_classes_argument(hub):
    block = predict(hub, ("tagger", None), 4, y_pred=np.array(["x", "y", "x", "y"]))
    result = hub.record_ground_truth(list(block), ["x", "z", 3, "y"])  # "z": new label, 3: other type
    assert (result.joined, result.invalid) == (3, 1)
    assert hub.models()[("tagger", None)]["classes"] == ["x", "y", "z"]
    realized = hub.snapshot().quality[("tagger", None)]
    assert realized[("accuracy", "realized")] == skm.accuracy_score(["x", "z", "y"], ["x", "y", "y"])
    assert realized[("precision", "realized")] == skm.precision_score(
        ["x", "z", "y"], ["x", "y", "y"], average="macro", zero_division=np.nan
    )


def test_on_predictions_never_raises_and_reports(hub):
    errors = []
    hub.on_error = lambda stage, exc: errors.append(stage)
    hub.on_predictions("broken", object())  # no len()
    hub.on_predictions(CLF, ["a", "b"], y_pred=np.array([1, 0, 1]), proba=np.ones((5, 2)), classes=[0, 1])
    hub.on_predictions(CLF, ["c"], y_pred=np.array([[1, 2]]), scores=np.array(["x"]), classes=[0, 1])
    assert errors == ["on_predictions"]
    assert hub.pending() == 0  # rows with no usable output are not stored


def test_rejected_user_ids_are_counted_and_replaced(hub):
    with prediction_ids(["only", "two"]):
        block = predict(hub, CLF, 3, y_pred=np.array([0, 1, 1]), classes=[0, 1])
    assert block.rejected and block.generated and len(block) == 3
    assert list(last_prediction_ids()) == list(block)
    assert hub.snapshot().labels == {(CLF, "invalid"): 3}
    assert hub.record_ground_truth(list(block), [0, 1, 1]).joined == 3  # generated ids work


def test_prediction_ids_context_semantics():
    assert current_ids() is None
    source = ["a", "b"]
    with prediction_ids(source) as ctx:
        source.append("c")  # copied at entry
        assert list(call_ids(2)) == ["a", "b"]
        with prediction_ids(np.array([7, 8, 9])):
            assert list(call_ids(3)) == ["7", "8", "9"]
        with prediction_ids(None):
            assert call_ids(2).generated
        assert list(call_ids(None)) == ["a", "b"]  # rows unknown: user ids accepted as they are
        assert isinstance(ctx, prediction_ids)
    assert current_ids() is None
    generated = call_ids(3)
    again = call_ids(3)
    assert generated.generated and len(set(generated) | set(again)) == 6  # unique across calls
    assert generated[0].rsplit("-", 2)[2] == "0" and generated == list(generated)
    for bad in ("abc", 3, np.zeros((2, 2))):
        with pytest.raises(TypeError):
            prediction_ids(bad)


def test_last_prediction_ids_is_per_thread():
    results, barrier = {}, threading.Barrier(4)

    def worker(tag):
        results[(tag, "before")] = last_prediction_ids()
        with prediction_ids([f"{tag}-{i}" for i in range(3)]):
            set_last(call_ids(3))
        barrier.wait()  # every thread has made its call
        results[tag] = list(last_prediction_ids())

    set_last(IdBlock(2))
    threads = [threading.Thread(target=worker, args=(t,)) for t in ("t0", "t1", "t2", "t3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for tag in ("t0", "t1", "t2", "t3"):
        assert results[tag] == [f"{tag}-{i}" for i in range(3)]
        assert results[(tag, "before")] is None  # the main thread's last call is not theirs
    assert len(last_prediction_ids()) == 2


def test_prediction_ids_per_asyncio_task():
    async def request(tag, delay):
        async with prediction_ids([tag]):
            await asyncio.sleep(delay)
            set_last(call_ids(1))
            await asyncio.sleep(0.01)
            return list(last_prediction_ids())

    async def main():
        return await asyncio.gather(request("slow", 0.02), request("fast", 0.0))

    assert asyncio.run(main()) == [["slow"], ["fast"]]


def test_concurrent_predictions_and_labels():
    """A worker stores predictions while another thread records labels: every label is
    counted exactly once, as joined or unknown_id (not yet stored)."""
    hub = QualityHub(store=MemoryStore(), flush_rows=64)
    n_calls, rows = 200, 10
    blocks: list[IdBlock] = []
    done = threading.Event()

    def worker():
        for _ in range(n_calls):
            block = IdBlock(rows)
            hub.on_predictions(CLF, block, y_pred=np.ones(rows, int), classes=[0, 1])
            blocks.append(block)
        hub.flush()
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    seen = 0
    joined = unknown = 0
    while not done.is_set() or seen < len(blocks):
        batch = blocks[seen:]
        seen += len(batch)
        ids = [i for block in batch for i in block]
        if ids:
            result = hub.record_ground_truth(ids, [1] * len(ids))
            joined, unknown = joined + result.joined, unknown + result.unknown_id
    thread.join()
    assert joined + unknown == n_calls * rows and hub.pending() == unknown
    assert hub.snapshot().labels[(CLF, "joined")] == joined


def test_before_join_hook_and_store_none():
    hub = QualityHub(store="none", window=50)
    calls = []
    hub.set_before_join(lambda: calls.append(1))
    block = predict(hub, CLF, 3, proba=np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]), classes=[0, 1])
    result = hub.record_ground_truth(list(block), [0, 1, 1])
    assert calls == [1] and result == LabelResult(unknown_id=3, by_model={CLF: {"unknown_id": 3}})
    snap = hub.snapshot()
    assert snap.pending == 0
    assert snap.quality[CLF][("accuracy", "estimated")] == pytest.approx((0.9 + 0.8 + 0.7) / 3)


def test_configure_validates_and_is_idempotent(tmp_path):
    hub = QualityHub(store="memory")
    for kwargs in ({"store": "redis"}, {"window": 0}, {"ttl_s": -5}, {"max_entries": 1.5},
                   {"calibrate": "yes"}, {"pos_label": []}, {"path": 3}):  # fmt: skip
        with pytest.raises(ValueError):
            hub.configure(**kwargs)
    predict(hub, CLF, 2, y_pred=np.array([1, 0]), classes=[0, 1])
    hub.configure(store="memory", window=1000)  # same values: the store is kept
    assert hub.pending() == 2
    hub.configure(store="sqlite", path=tmp_path / "q.sqlite", max_entries=10, ttl_s=60)
    assert hub.pending() == 0 and not (tmp_path / "q.sqlite").exists()  # opened on first write
    predict(hub, CLF, 2, y_pred=np.array([1, 0]), classes=[0, 1])
    assert hub.pending() == 2 and hub.flush() and (tmp_path / "q.sqlite").exists()
    assert hub.close() and hub.close()


def test_pos_label_and_decision_scores(hub):
    hub.configure(pos_label="neg")
    block = predict(hub, CLF, 4, y_pred=np.array(["neg", "pos", "pos", "neg"]), scores=np.array([-2.0, 1.0, 0.5, -0.1]),
                    classes=["neg", "pos"])  # fmt: skip
    hub.record_ground_truth(list(block), ["neg", "pos", "neg", "pos"])
    realized = hub.snapshot().quality[CLF]
    yt, yp = ["neg", "pos", "neg", "pos"], ["neg", "pos", "pos", "neg"]
    assert realized[("precision", "realized")] == skm.precision_score(yt, yp, pos_label="neg")
    assert realized[("roc_auc", "realized")] == skm.roc_auc_score(np.array(yt) == "neg", [2.0, -1.0, -0.5, 0.1])


@pytest.fixture(scope="module")
def digits_model():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)).fit(X_train, y_train)
    return model, X_train, X_test, y_test


def test_cbpe_tracks_realized_accuracy_and_drops_under_shift(digits_model):
    """Before any label: estimated accuracy of a (nearly) calibrated model is close to the
    accuracy it really has, and falls when the inputs shift."""
    model, X_train, X_test, y_test = digits_model
    hub = QualityHub(store="memory", window=1000)
    key = ("digits", "1")
    proba = model.predict_proba(X_test)
    block = predict(hub, key, len(X_test), y_pred=model.predict(X_test), proba=proba, classes=model.classes_)
    estimated = hub.snapshot().quality[key][("accuracy", "estimated")]
    realized = skm.accuracy_score(y_test, model.predict(X_test))
    assert abs(estimated - realized) < 0.03, (estimated, realized)

    rng = np.random.default_rng(0)
    X_shifted = X_test + rng.normal(0, 1, X_test.shape) * X_train.std(axis=0)  # sensor noise
    shifted = QualityHub(store="memory", window=1000)
    predict(shifted, key, len(X_test), proba=model.predict_proba(X_shifted), classes=model.classes_)
    estimated_shifted = shifted.snapshot().quality[key][("accuracy", "estimated")]
    realized_shifted = skm.accuracy_score(y_test, model.predict(X_shifted))
    assert estimated_shifted < estimated - 0.05, (estimated_shifted, estimated)
    assert realized_shifted < realized - 0.05  # the drop is real
    # Once labels arrive, the realized accuracy is reported next to the estimate.
    hub.record_ground_truth(list(block), y_test)
    assert hub.snapshot().quality[key][("accuracy", "realized")] == realized


def test_cbpe_calibrates_an_underconfident_model_with_labels(digits_model):
    _, X_train, X_test, y_test = digits_model
    X, y = load_digits(return_X_y=True)
    X_train2, _, y_train2, _ = train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.02, max_iter=2000)).fit(X_train2, y_train2)
    half = len(X_test) // 2
    key = ("digits", "under")
    hub = QualityHub(store="memory", window=440)
    first = predict(hub, key, half, proba=model.predict_proba(X_test[:half]), classes=model.classes_)
    predict(hub, key, len(X_test) - half, proba=model.predict_proba(X_test[half:]), classes=model.classes_)
    raw = hub.snapshot().quality[key][("accuracy", "estimated")]
    realized_second = skm.accuracy_score(y_test[half:], model.predict(X_test[half:]))
    assert realized_second - raw > 0.05  # under-confident: the raw estimate is too low
    hub.record_ground_truth(list(first), y_test[:half])  # labels of the first half calibrate
    calibrated = hub.snapshot().quality[key][("accuracy", "estimated")]
    assert abs(calibrated - realized_second) < abs(raw - realized_second) / 2, (raw, calibrated, realized_second)


def test_cbpe_binary_expected_confusion_matrix_and_calibration():
    from otel_mlmon.quality.cbpe import CBPE

    rng = np.random.default_rng(0)
    n = 2000
    true_p = rng.beta(0.7, 0.7, n)
    y = (rng.random(n) < true_p).astype(int)
    q = 1 / (1 + np.exp(-0.4 * np.log(true_p / (1 - true_p))))  # under-confident probabilities
    proba = np.column_stack([1 - q, q])
    estimator = CBPE(window=1000)
    estimator.update(proba[:1000])
    estimator.update(proba[1000:])  # the window keeps the last 1000 rows
    raw = estimator.estimate()
    qw = q[1000:]
    predicted = qw > 0.5
    tp, fp = qw[predicted].sum(), (1 - qw[predicted]).sum()
    fn, tn = qw[~predicted].sum(), (1 - qw[~predicted]).sum()
    assert raw["accuracy"] == pytest.approx((tp + tn) / 1000, abs=1e-12)
    assert raw["precision"] == pytest.approx(tp / (tp + fp), abs=1e-12)
    assert raw["recall"] == pytest.approx(tp / (tp + fn), abs=1e-12)
    assert raw["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-12)
    assert not estimator.calibrated
    assert estimator.fit_calibration(proba[:1000], y[:1000]) and estimator.calibrated
    calibrated = estimator.estimate()
    yt, yp = y[1000:], predicted.astype(int)
    realized = {"accuracy": skm.accuracy_score(yt, yp), "precision": skm.precision_score(yt, yp),
                "recall": skm.recall_score(yt, yp), "f1": skm.f1_score(yt, yp)}  # fmt: skip
    for name, value in realized.items():
        assert abs(calibrated[name] - value) < 0.05, (name, raw[name], calibrated[name], value)
        assert abs(calibrated[name] - value) < abs(raw[name] - value) / 2, name
    assert not estimator.fit_calibration(proba[:50], y[:50])  # too few labels: raw probabilities
    assert estimator.estimate() == raw



def test_pandas_inputs_subscribe_and_default_hub(monkeypatch):
    import pandas as pd

    from otel_mlmon.quality import tracker

    default = QualityHub(store="memory")
    monkeypatch.setattr(tracker, "_HUB", default)
    assert tracker.hub() is default
    block = predict(default, REG, 3, y_pred=np.array([1.0, 2.0, 3.0]))
    seen = []

    def callback(key, delays):
        seen.append((key, len(delays)))

    default.subscribe(callback)
    default.subscribe(callback)  # subscribed once
    frame = pd.DataFrame({"id": list(block), "y": [1.0, 2.0, 4.0]})
    with pytest.raises(ValueError, match="same length"):
        tracker.record_ground_truth(frame["id"], frame["y"].iloc[:2])
    result = tracker.record_ground_truth(frame["id"][:2], frame[["y"]].iloc[:2])  # one-column frame
    assert result.joined == 2 and seen == [(REG, 2)]
    default.unsubscribe(callback)
    assert tracker.record_ground_truth(pd.Index(frame["id"][2:]), np.array([4.0])).joined == 1
    assert seen == [(REG, 2)]
    with pytest.raises(ValueError, match="finite"):
        tracker.record_ground_truth(["x"], [1.0], timestamp=float("nan"))


def test_call_ids_accepts_numpy_row_counts():
    assert len(call_ids(np.int64(4))) == 4
    with prediction_ids(["a", "b"]):
        assert list(call_ids(np.int32(2))) == ["a", "b"]
        assert call_ids(np.int64(3)).rejected
    assert len(call_ids(None)) == 0 and len(call_ids(-1)) == 0
