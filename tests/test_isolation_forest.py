"""IsolationForestDetector: agreement with scikit-learn, determinism, bounds, edge cases."""

from __future__ import annotations

import doctest
import pickle
import time

import numpy as np
import pytest

import otel_mlmon.anomaly.isolation_forest as isolation_forest_module
from otel_mlmon.anomaly import IsolationForestDetector, MultivariateDetector


def planted(seed=0, n_train=2048, n_test=1000, n_out=40, dim=4):
    """Gaussian inliers (with one correlated pair) and uniform outliers in a wider box."""
    rng = np.random.default_rng(seed)

    def inliers(n):
        X = rng.normal(size=(n, dim))
        X[:, 1] = 0.8 * X[:, 0] + 0.6 * X[:, 1]
        return X

    train = inliers(n_train)
    outliers = rng.uniform(-6, 6, size=(n_out, dim))
    outliers = outliers[np.abs(outliers).max(axis=1) > 3.5]  # far from the inliers somewhere
    test = np.vstack([inliers(n_test), outliers])
    labels = np.r_[np.zeros(n_test), np.ones(len(outliers))]
    return train, test, labels


def roc_auc(labels, scores):
    """ROC AUC as the Mann-Whitney statistic (ties count half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return (greater + 0.5 * ties) / (len(pos) * len(neg))


def spearman(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def fitted(train, **params):
    detector = IsolationForestDetector(**params)
    scores = detector.update_many(train)
    assert detector.fits == 1 and not scores.any()
    return detector


def test_is_a_multivariate_detector_constructible_without_arguments():
    detector = IsolationForestDetector()
    assert isinstance(detector, MultivariateDetector)
    assert (detector.n_trees, detector.sample_size, detector.threshold) == (100, 256, 0.65)
    assert detector.update([1.0, 2.0]) == 0.0  # warm-up


def test_agrees_with_scikit_learn_on_planted_outliers():
    from sklearn.ensemble import IsolationForest  # noqa: PLC0415 - only this test needs it

    train, test, labels = planted()
    ours = fitted(train, seed=3).update_many(test)
    reference = IsolationForest(n_estimators=100, max_samples=256, random_state=0).fit(train)
    theirs = -reference.score_samples(test)  # scikit-learn returns the opposite of the score
    assert roc_auc(labels, ours) >= 0.95
    assert roc_auc(labels, theirs) >= 0.95
    assert spearman(ours, theirs) >= 0.9
    # Same score scale, not only the same ranking.
    assert abs(np.mean(ours[labels == 0]) - np.mean(theirs[labels == 0])) < 0.03
    assert abs(np.mean(ours[labels == 1]) - np.mean(theirs[labels == 1])) < 0.05


def test_default_threshold_separates_planted_outliers():
    train, test, labels = planted(seed=1)
    detector = fitted(train)
    scores = detector.update_many(test)
    flagged = np.array([detector.is_anomaly(s) for s in scores])
    assert flagged[labels == 0].mean() < 0.02  # few false alarms
    assert flagged[labels == 1].mean() > 0.5
    assert ((scores > 0) & (scores <= 1)).all()
    assert len(np.unique(scores)) > 0.9 * len(scores)  # continuous, not saturated


def test_deterministic_for_a_seed():
    train, test, _ = planted(seed=2)
    stream = np.vstack([train, test, train])

    def run(seed):
        detector = IsolationForestDetector(seed=seed, refit_every=512)
        scores = [detector.update_many(stream[i : i + 100]) for i in range(0, len(stream), 100)]
        scores.append(np.array([detector.update(row) for row in test[:50]]))
        return np.concatenate(scores)

    first = run(7)
    assert np.array_equal(first, run(7))
    assert not np.array_equal(first, run(8))
    a, b = IsolationForestDetector(random_state=5), IsolationForestDetector(seed=5)
    assert np.array_equal(a.update_many(stream), b.update_many(stream))
    assert np.array_equal(a.update_many(test), b.update_many(test))


def test_update_agrees_with_update_many():
    train, test, _ = planted(seed=4)
    a, b = fitted(train), fitted(train)
    many = a.update_many(test[:200])
    one = np.array([b.update(row) for row in test[:200]])
    assert np.allclose(many, one, rtol=0, atol=1e-12)


def test_window_is_bounded_and_refits_are_periodic():
    rng = np.random.default_rng(0)
    detector = IsolationForestDetector(window=500, refit_every=300, warm_up=100, n_trees=20, sample_size=64)
    for _ in range(40):
        detector.update_many(rng.normal(size=(250, 3)))
    assert detector.buffered == 500
    assert detector._buffer.shape == (500, 3)  # noqa: SLF001
    assert detector.seen == 10_000
    # First fit after the first batch (>= 100 vectors), then once >= 300 new vectors came in:
    # with batches of 250, after every second batch (batches 1, 3, ..., 39).
    assert detector.fits == 20
    big = rng.normal(size=(3000, 3))
    detector.update_many(big)
    assert detector.buffered == 500
    assert np.array_equal(np.sort(detector._buffer, axis=0), np.sort(big[-500:], axis=0))  # noqa: SLF001


def test_window_keeps_the_most_recent_vectors():
    detector = IsolationForestDetector(window=10, warm_up=2, refit_every=1000)
    for i in range(25):
        detector.update([float(i), -float(i)])
    assert sorted(detector._buffer[:, 0].tolist()) == [float(i) for i in range(15, 25)]  # noqa: SLF001


def test_warm_up_scores_zero_until_the_first_fit():
    rng = np.random.default_rng(0)
    detector = IsolationForestDetector(warm_up=300)
    scores = [detector.update(row) for row in rng.normal(size=(299, 2))]
    assert scores == [0.0] * 299 and detector.fits == 0
    assert detector.update([0.0, 0.0]) == 0.0  # the 300th vector triggers the fit, after scoring
    assert detector.fits == 1
    assert 0.0 < detector.update([0.0, 0.0]) < 0.65
    assert detector.update([20.0, -20.0]) > 0.65


def test_non_finite_and_malformed_rows_are_ignored():
    train, _, _ = planted(seed=5)
    detector = fitted(train)
    before = detector._buffer.copy()  # noqa: SLF001
    seen = detector.seen
    batch = np.array([[0.0, 0.0, 0.0, 0.0], [np.nan, 0, 0, 0], [0, np.inf, 0, 0], [0, 0, -np.inf, 0], [9.0, 9, 9, 9]])
    scores = detector.update_many(batch)
    assert scores[1:4].tolist() == [0.0, 0.0, 0.0]
    assert scores[0] > 0 and scores[4] > detector.threshold
    assert detector.ignored == 3 and detector.seen == seen + 2
    assert np.isfinite(detector._buffer).all()  # noqa: SLF001
    assert detector.update([1.0, 2.0]) == 0.0  # wrong length
    assert detector.update("not a vector") == 0.0
    assert detector.update([None, 1, 2, 3]) == 0.0
    assert detector.update_many(np.zeros((3, 7))).tolist() == [0.0, 0.0, 0.0]
    assert detector.ignored == 3 + 3 + 3
    changed = (detector._buffer != before).any(axis=1).sum()  # noqa: SLF001
    assert changed == 2  # only the two finite vectors entered the window


def test_does_not_mutate_its_input():
    train, test, _ = planted(seed=6)
    train_copy, test_copy = train.copy(), test.copy()
    detector = fitted(train)
    detector.update_many(test)
    detector.update(test[0])
    assert np.array_equal(train, train_copy) and np.array_equal(test, test_copy)


def test_reset_restores_a_fresh_detector():
    train, test, _ = planted(seed=7)
    detector = fitted(train, seed=11)
    first = detector.update_many(test)
    detector.reset()
    assert (detector.fits, detector.seen, detector.ignored, detector.buffered) == (0, 0, 0, 0)
    detector.update_many(train)
    assert np.array_equal(detector.update_many(test), first)


def test_pickles_and_continues_identically():
    train, test, _ = planted(seed=8)
    detector = fitted(train, refit_every=256)
    clone = pickle.loads(pickle.dumps(detector))
    for start in range(0, 1000, 100):  # crosses refits
        batch = test[start : start + 100]
        assert np.array_equal(detector.update_many(batch), clone.update_many(batch))


def test_one_signal_and_scalar_input():
    rng = np.random.default_rng(9)
    detector = IsolationForestDetector()
    detector.update_many(rng.normal(size=1024))  # 1-D: a batch of 1-signal vectors
    assert detector.fits == 1 and detector._dim == 1  # noqa: SLF001
    assert detector.update(0.1) < detector.threshold
    assert detector.update(12.0) > detector.threshold


def test_constant_features_and_constant_data():
    rng = np.random.default_rng(10)
    # Five constant signals and one informative one: splits must use the informative one.
    X = np.zeros((1024, 6))
    X[:, 1:] = [1.0, 8.0, 64.0, 0.0, 3.0]
    X[:, 0] = rng.normal(size=1024)
    detector = fitted(X)
    probe = np.array([[0.0, 1, 8, 64, 0, 3], [9.0, 1, 8, 64, 0, 3], [0.0, 1, 8, 64, 0, 4]])
    normal, far, unseen = detector.update_many(probe)
    assert normal < 0.6 and far > 0.7
    assert unseen < 0.6  # a value never seen in a constant signal cannot be isolated on it
    # Every vector identical: no split at all, every score is exactly 0.5.
    flat = fitted(np.ones((512, 3)))
    assert flat.update_many(np.ones((4, 3))) == pytest.approx([0.5] * 4, abs=1e-12)


def test_discrete_signals_use_the_exact_feature_choice():
    rng = np.random.default_rng(11)
    X = np.c_[rng.choice([1.0, 8.0], size=2048), rng.choice([0.0, 1.0], size=2048), rng.normal(size=2048)]
    detector = fitted(X)
    scores = detector.update_many(np.array([[1.0, 0.0, 0.0], [8.0, 1.0, 0.1], [1.0, 0.0, 8.0]]))
    assert scores[0] < 0.6 and scores[1] < 0.6 and scores[2] > 0.7


def test_small_windows_and_tiny_forests():
    detector = IsolationForestDetector(n_trees=1, sample_size=2, window=2, warm_up=0, refit_every=1)
    scores = [detector.update([float(i)]) for i in range(20)]
    assert scores[0] == 0.0 and all(0.0 <= s <= 1.0 for s in scores)
    assert detector.fits == 19 and detector.buffered == 2


@pytest.mark.parametrize(
    "params",
    [
        {"n_trees": 0}, {"n_trees": 2.5}, {"n_trees": True}, {"sample_size": 1}, {"window": 1},
        {"refit_every": 0}, {"warm_up": -1}, {"warm_up": 5000}, {"threshold": 0.0}, {"threshold": 1.0},
        {"threshold": "0.7"}, {"threshold": True}, {"seed": -1}, {"seed": 1.5}, {"seed": 1, "random_state": 2},
    ],
)  # fmt: skip
def test_invalid_arguments_raise_value_error(params):
    with pytest.raises(ValueError):
        IsolationForestDetector(**params)


def test_threshold_can_be_changed_and_is_validated():
    detector = IsolationForestDetector()
    detector.threshold = 0.9
    assert detector.is_anomaly(0.9) and not detector.is_anomaly(0.89)
    for bad in (0.0, 1.0, -1, "0.5", None, True):
        with pytest.raises(ValueError):
            detector.threshold = bad
    assert detector.threshold == 0.9


def test_amortised_cost_is_a_few_microseconds_per_vector():
    """Loose bound (the benchmark reports the figure): micro-batches of 128 with refits."""
    rng = np.random.default_rng(12)
    detector = IsolationForestDetector()
    detector.update_many(rng.normal(size=(2048, 6)))
    stream = rng.normal(size=(8192, 6))
    fits = detector.fits
    t0 = time.perf_counter()
    for start in range(0, len(stream), 128):
        detector.update_many(stream[start : start + 128])
    per_vector = (time.perf_counter() - t0) / len(stream)
    assert detector.fits - fits == 8  # one refit per 1024 vectors
    assert per_vector < 100e-6, f"{per_vector * 1e6:.1f} µs per vector"


def test_doctest():
    result = doctest.testmod(isolation_forest_module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 8 and result.failed == 0
