"""Drift statistics: each equals a direct reference computation on the same bins (scipy for the
tests, the formulas for the distances) within 1e-9; one contract suite over all of them; the
doctests of every drift module run here."""

from __future__ import annotations

import copy
import doctest
import importlib
import math
import pickle

import numpy as np
import pytest
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from otel_mlmon.drift import ChiSquare, DriftResult, JensenShannon, KolmogorovSmirnov, PSI, Wasserstein
from otel_mlmon.drift._special import chi2_sf, gammaincc, kolmogorov_sf
from otel_mlmon.drift.wasserstein import bin_centres

TOL = dict(rel=1e-9, abs=1e-12)


def histograms(seed: int, n: int = 25):
    """Pairs of random histograms over 2..30 bins, some with empty bins."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        bins = int(rng.integers(2, 31))
        ref = rng.integers(0, 2000, bins)
        cur = rng.integers(0, 300, bins)
        ref[rng.random(bins) < 0.1] = 0
        cur[rng.random(bins) < 0.15] = 0
        ref[0] += 1  # never all empty
        cur[-1] += 1
        out.append((ref, cur))
    return out


def numeric_geometry(bins: int, seed: int):
    rng = np.random.default_rng(seed)
    edges = np.sort(rng.normal(size=bins - 1) * 3) + np.arange(bins - 1) * 1e-3
    return edges, float(edges[0] - rng.random() - 0.1), float(edges[-1] + rng.random() + 0.1), float(rng.random() + 0.5)


# --------------------------------------------------------------------------- PSI
def psi_formula(ref, cur, eps=1e-4):
    p, q = ref / ref.sum(), cur / cur.sum()
    total = 0.0
    for pi, qi in zip(p.tolist(), q.tolist()):
        if pi == 0 and qi == 0:
            continue
        pi, qi = pi or eps, qi or eps
        total += (qi - pi) * math.log(qi / pi)
    return total


@pytest.mark.parametrize("seed", range(3))
def test_psi_equals_formula(seed):
    for ref, cur in histograms(seed):
        assert PSI()(ref, cur).statistic == pytest.approx(psi_formula(ref, cur), **TOL)
        assert PSI(eps=1e-6)(ref, cur).statistic == pytest.approx(psi_formula(ref, cur, 1e-6), **TOL)


def test_psi_threshold_bands():
    ref = np.full(10, 1000)
    assert PSI()(ref, ref).statistic == 0.0
    mild = PSI()(ref, [1000] * 8 + [700, 1300])
    assert 0 < mild.statistic < 0.1 and not mild.drifted
    assert PSI(threshold=0.25)(ref, [2000] * 5 + [100] * 5).drifted


# --------------------------------------------------------------------------- Jensen-Shannon
@pytest.mark.parametrize("seed", range(3))
def test_jensen_shannon_equals_scipy(seed):
    for ref, cur in histograms(seed):
        assert JensenShannon()(ref, cur).statistic == pytest.approx(jensenshannon(ref, cur, base=2), **TOL)
        natural = JensenShannon(base=math.e)(ref, cur).statistic
        assert natural == pytest.approx(jensenshannon(ref, cur), **TOL)


def test_jensen_shannon_bounds():
    assert JensenShannon()([5, 0], [0, 5]).statistic == pytest.approx(1.0, **TOL)
    assert JensenShannon(base=math.e)([5, 0], [0, 5]).statistic == pytest.approx(math.sqrt(math.log(2)), **TOL)
    assert JensenShannon()([3, 4, 5], [6, 8, 10]).statistic == pytest.approx(0.0, abs=1e-7)


# --------------------------------------------------------------------------- Kolmogorov-Smirnov
@pytest.mark.parametrize("seed", range(3))
def test_ks_statistic_equals_ks_2samp_on_binned_samples(seed):
    for ref, cur in histograms(seed, n=10):
        result = KolmogorovSmirnov()(ref, cur)
        bins = np.arange(ref.size)
        expected = stats.ks_2samp(np.repeat(bins, ref), np.repeat(bins, cur))
        assert result.statistic == pytest.approx(expected.statistic, **TOL)
        n_eff = ref.sum() * cur.sum() / (ref.sum() + cur.sum())
        assert result.p_value == pytest.approx(stats.kstwobign.sf(math.sqrt(n_eff) * result.statistic), **TOL)


def test_kolmogorov_sf_equals_kstwobign():
    for x in np.concatenate((np.linspace(0, 4, 801), [1e-3, 0.999999, 1.0, 1.000001, 6.0, 10.0])):
        assert kolmogorov_sf(float(x)) == pytest.approx(stats.kstwobign.sf(x), rel=1e-9, abs=1e-14)


def test_ks_is_sample_size_aware():
    ref = np.full(10, 10_000)
    shape = np.array([9, 10, 10, 10, 10, 10, 10, 10, 10, 11])
    assert not KolmogorovSmirnov()(ref, shape * 5).drifted
    assert KolmogorovSmirnov()(ref, shape * 20_000).drifted


# --------------------------------------------------------------------------- Wasserstein
@pytest.mark.parametrize("seed", range(3))
def test_wasserstein_equals_scipy_with_weights(seed):
    for i, (ref, cur) in enumerate(histograms(seed)):
        edges, low, high, scale = numeric_geometry(ref.size, seed * 100 + i)
        centres = bin_centres(edges, low, high)
        expected = stats.wasserstein_distance(centres, centres, u_weights=ref, v_weights=cur)
        raw = Wasserstein(normalise=False)(ref, cur, edges=edges, low=low, high=high)
        assert raw.statistic == pytest.approx(expected, **TOL)
        normed = Wasserstein()(ref, cur, edges=edges, low=low, high=high, scale=scale)
        assert normed.statistic == pytest.approx(expected / scale, **TOL)


def test_wasserstein_needs_geometry_and_handles_constant_reference():
    with pytest.raises(ValueError, match="geometry"):
        Wasserstein()([1, 2], [2, 1])
    assert math.isnan(Wasserstein()([1, 2], [2, 1], edges=[1.0], low=0.0, high=2.0, scale=0.0).statistic)


# --------------------------------------------------------------------------- chi-square
@pytest.mark.parametrize("seed", range(3))
def test_chi_square_two_sample_equals_chi2_contingency(seed):
    for ref, cur in histograms(seed):
        result = ChiSquare()(ref, cur)
        table = np.vstack((ref, cur))
        table = table[:, table.sum(axis=0) > 0]
        statistic, p_value, dof, _ = stats.chi2_contingency(table, correction=False)
        assert result.statistic == pytest.approx(statistic, **TOL)
        assert result.p_value == pytest.approx(p_value, rel=1e-9, abs=1e-14)


@pytest.mark.parametrize("seed", range(3))
def test_chi_square_goodness_of_fit_equals_scipy_chisquare(seed):
    for ref, cur in histograms(seed):
        result = ChiSquare(two_sample=False)(ref, cur)
        p = ref / ref.sum()
        p = np.where(p == 0, 1e-4, p)
        expected = stats.chisquare(cur, cur.sum() * p / p.sum())
        assert result.statistic == pytest.approx(expected.statistic, **TOL)
        assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-14)


def test_chi2_sf_and_gammaincc_equal_scipy():
    for df in (1, 2, 3, 7, 10, 20, 21, 50, 200, 1000):
        for x in np.concatenate((np.linspace(0, 3 * df + 40, 120), [1e-9, df - 0.5, df + 1.0])):
            assert chi2_sf(float(x), df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-9, abs=1e-14)
    for a in (0.5, 1.0, 2.5, 30.0):
        for x in (0.1, 1.0, a, a + 1.0, 3 * a + 5):
            assert gammaincc(a, x) == pytest.approx(special.gammaincc(a, x), rel=1e-9, abs=1e-14)


# --------------------------------------------------------------------------- contract suite
STATISTICS = [
    PSI(), JensenShannon(), KolmogorovSmirnov(), Wasserstein(), ChiSquare(), ChiSquare(two_sample=False),
]  # fmt: skip
GEOMETRY = dict(edges=[1.0, 2.0, 3.0], low=0.0, high=4.0, scale=1.2)


@pytest.mark.parametrize("statistic", STATISTICS, ids=repr)
def test_contract(statistic):
    ref = np.array([40, 30, 20, 10])
    cur = np.array([10, 20, 30, 40])
    ref_before, cur_before = ref.copy(), cur.copy()
    result = statistic(ref, cur, **GEOMETRY)
    assert isinstance(result, DriftResult) and np.array_equal(ref, ref_before) and np.array_equal(cur, cur_before)
    assert result.statistic > 0 and isinstance(result.drifted, bool)
    assert statistic(ref, cur, **GEOMETRY) == result  # deterministic
    assert pickle.loads(pickle.dumps(statistic))(ref, cur, **GEOMETRY) == result
    assert copy.deepcopy(statistic)(ref, cur, **GEOMETRY) == result
    same = statistic(ref, ref * 3, **GEOMETRY)  # same proportions, different sizes
    assert same.statistic == pytest.approx(0.0, abs=1e-7) and not same.drifted
    assert statistic(ref, cur * 10, **GEOMETRY).statistic >= statistic(ref, ref, **GEOMETRY).statistic
    if not math.isnan(result.p_value):
        assert 0.0 <= result.p_value <= 1.0
    empty = statistic(ref, np.zeros(4), **GEOMETRY)
    assert math.isnan(empty.statistic) and math.isnan(empty.p_value) and empty.drifted is False
    for bad in ([1, 2], [1, -1, 1, 1], [1, np.nan, 1, 1], [[1, 2, 3, 4]]):
        with pytest.raises(ValueError):
            statistic(ref, bad, **GEOMETRY)
    assert statistic.name in ("psi", "jensen_shannon", "ks", "wasserstein", "chi_square")


@pytest.mark.parametrize("cls", [PSI, JensenShannon, KolmogorovSmirnov, Wasserstein, ChiSquare])
def test_bad_thresholds_raise(cls):
    for bad in (0, -1, True, "0.1"):
        with pytest.raises(ValueError):
            cls(threshold=bad)


# --------------------------------------------------------------------------- doctests
DOCTEST_MODULES = [
    "otel_mlmon.drift._special", "otel_mlmon.drift.psi", "otel_mlmon.drift.jensen_shannon",
    "otel_mlmon.drift.kolmogorov_smirnov", "otel_mlmon.drift.wasserstein", "otel_mlmon.drift.chi_square",
    "otel_mlmon.drift.profile", "otel_mlmon.drift.window", "otel_mlmon.drift.monitor", "otel_mlmon.drift.row_budget",
    "otel_mlmon.drift.reference_profile",
]  # fmt: skip


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
