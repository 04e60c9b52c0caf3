"""lossgen.compare.stats: hand-computed cases, scipy as an oracle where installed, properties."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lossgen.compare import stats as S

NAN = float("nan")


# ----------------------------------------------------------------------------- describe


def test_describe_skips_missing_values():
    got = S.describe([1.0, None, 3.0, NAN, 5.0])
    assert got == {"n": 3, "mean": 3.0, "std": 2.0, "min": 1.0, "max": 5.0}


def test_describe_one_and_no_value():
    assert S.describe([2.5]) == {"n": 1, "mean": 2.5, "std": 0.0, "min": 2.5, "max": 2.5}
    empty = {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    assert S.describe([]) == empty
    assert S.describe([None, NAN]) == empty


# ----------------------------------------------------------------------------- Wilcoxon


@pytest.mark.parametrize(
    "d, p",
    [
        ([1, 2, 3], 0.25),  # W+ = 6 of 6: 2 of 8 assignments as extreme
        ([1, 2, 3, 4, 5], 0.0625),  # 2 / 32
        ([-1, -2, -3], 0.25),
        ([0, 1, 0, 2, 3], 0.25),  # zeros are dropped, not ranked
        ([1, -2, 3], 0.75),  # W+ = 4, centre 3: of the 8 sums only 3, 3 are closer
        # Tie: ranks 1, 2.5, 2.5, 4; W+ = 7.5, centre 5. Subset sums of the ranks (16):
        # 0 1 2.5 2.5 3.5 3.5 4 5 5 6 6.5 6.5 7.5 7.5 9 10 -> 8 have |S - 5| >= 2.5.
        ([1, -2, 2, 3], 0.5),
        # Ranks 1, 2.5, 2.5, 4, 5; W+ = 14, centre 7.5: only sums 0, 1, 14, 15 -> 4 / 32.
        ([-1, 2, 2, 3, 4], 0.125),
        ([], 1.0),
        ([0, 0, None, NAN], 1.0),
    ],
)
def test_wilcoxon_hand_computed(d, p):
    assert S.wilcoxon_signed_rank(d) == pytest.approx(p, rel=1e-12)


def test_wilcoxon_balanced_signs_gives_one():
    assert S.wilcoxon_signed_rank([1, -1]) == 1.0
    assert S.wilcoxon_signed_rank([1, -2, -3, 4]) == 1.0  # W+ = 5 = n(n+1)/4


def test_wilcoxon_twenty_same_sign_reaches_min_p():
    d = np.arange(1, 21, dtype=float)
    assert S.wilcoxon_signed_rank(d) == pytest.approx(S.min_attainable_p(20), rel=1e-12)


def _distinct_nonzero(rng: np.random.Generator, n: int) -> np.ndarray:
    # Continuous draws: no ties and no zeros (almost surely; asserted).
    d = rng.normal(0.3, 1.0, size=n)
    assert np.unique(np.abs(d)).size == n and np.all(d != 0)
    return d


@pytest.mark.parametrize("n", range(1, 21))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wilcoxon_exact_matches_scipy(n, seed):
    sps = pytest.importorskip("scipy.stats")
    d = _distinct_nonzero(np.random.default_rng(1000 * seed + n), n)
    want = sps.wilcoxon(d, zero_method="wilcox", method="exact").pvalue
    assert S.wilcoxon_signed_rank(d) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("n", [21, 30, 50])
@pytest.mark.parametrize("seed", [0, 1])
def test_wilcoxon_normal_approximation_matches_scipy(n, seed):
    sps = pytest.importorskip("scipy.stats")
    d = _distinct_nonzero(np.random.default_rng(seed), n)
    want = sps.wilcoxon(d, zero_method="wilcox", correction=False, method="approx").pvalue
    assert S.wilcoxon_signed_rank(d) == pytest.approx(want, rel=1e-9)


def test_wilcoxon_normal_approximation_tie_correction_matches_scipy():
    sps = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    d = rng.integers(-4, 6, size=30).astype(float)  # many ties in |d|, some zeros
    want = sps.wilcoxon(d, zero_method="wilcox", correction=False, method="approx").pvalue
    assert S.wilcoxon_signed_rank(d) == pytest.approx(want, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-6, 6).map(float), max_size=14))
def test_wilcoxon_p_in_unit_interval_and_sign_symmetric(d):
    p = S.wilcoxon_signed_rank(d)
    assert 0.0 < p <= 1.0
    assert S.wilcoxon_signed_rank([-x for x in d]) == p
    nonzero = sum(x != 0 for x in d)
    assert p >= S.min_attainable_p(nonzero) - 1e-12


def test_min_attainable_p():
    assert S.min_attainable_p(0) == 1.0
    assert S.min_attainable_p(1) == 1.0
    assert S.min_attainable_p(3) == 0.25
    assert S.min_attainable_p(5) == 0.0625


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_contains_mean_and_is_deterministic():
    d = [0.02, -0.01, 0.03, 0.05, 0.01, 0.00, 0.04]
    lo, hi = S.bootstrap_mean_interval(d, seed=3)
    assert lo < np.mean(d) < hi
    assert min(d) <= lo and hi <= max(d)
    assert S.bootstrap_mean_interval(d, seed=3) == (lo, hi)
    assert S.bootstrap_mean_interval(d, seed=4) != (lo, hi)


def test_bootstrap_narrows_with_level():
    d = np.random.default_rng(0).normal(size=12)
    lo95, hi95 = S.bootstrap_mean_interval(d)
    lo50, hi50 = S.bootstrap_mean_interval(d, level=0.5)
    assert lo95 < lo50 < hi50 < hi95


def test_bootstrap_degenerate_cases():
    assert S.bootstrap_mean_interval([0.1, 0.1, 0.1]) == (0.1, 0.1)
    assert S.bootstrap_mean_interval([0.7]) == (0.7, 0.7)
    assert all(math.isnan(v) for v in S.bootstrap_mean_interval([]))
    with pytest.raises(ValueError):
        S.bootstrap_mean_interval([1.0, 2.0], level=1.0)


# ----------------------------------------------------------------------------- paired comparison


def test_paired_comparison_pairs_finite_common_keys():
    a = {0: 0.80, 1: 0.75, 2: 0.70, 3: None, 4: 0.9, 6: 0.5}
    b = {0: 0.70, 1: 0.75, 2: 0.72, 3: 0.60, 4: NAN, 5: 0.8}
    got = S.paired_comparison(a, b, replicates=500, seed=1)
    d = [0.80 - 0.70, 0.0, 0.70 - 0.72]  # keys 0, 1, 2
    assert got["n"] == 3
    assert got["mean_difference"] == pytest.approx(np.mean(d))
    assert got["interval"] == list(S.bootstrap_mean_interval(d, replicates=500, seed=1))
    assert got["wilcoxon_p"] == S.wilcoxon_signed_rank(d)
    assert got["min_p"] == S.min_attainable_p(2)  # the tie is not a nonzero difference
    assert (got["wins"], got["ties"], got["losses"]) == (1, 1, 1)


def test_paired_comparison_without_pairs():
    got = S.paired_comparison({0: 1.0}, {1: 1.0})
    assert got == {
        "n": 0, "mean_difference": None, "interval": None, "wilcoxon_p": None,
        "min_p": None, "wins": 0, "ties": 0, "losses": 0,
    }


def test_paired_comparison_all_wins_on_three_seeds():
    got = S.paired_comparison({1: 3.0, 2: 2.0, 3: 5.0}, {1: 1.0, 2: 1.0, 3: 1.0})
    assert got["wilcoxon_p"] == got["min_p"] == 0.25
    assert got["wins"] == 3


# ----------------------------------------------------------------------------- Spearman


def test_spearman_hand_examples():
    assert S.spearman([1, 2, 3, 4], [10, 20, 30, 400]) == pytest.approx(1.0)
    assert S.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # The pair with a missing value is skipped; the rest is monotone.
    assert S.spearman([1, 2, None, 3], [1, 5, 0, 9]) == pytest.approx(1.0)


def test_spearman_undefined_cases():
    assert S.spearman([1, 2], [1, 2]) is None
    assert S.spearman([1, 2, NAN, 3], [1, NAN, 2, 3]) is None  # two pairs left
    assert S.spearman([1, 1, 1], [1, 2, 3]) is None
    assert S.spearman([1, 2, 3], [5, 5, 5]) is None


@pytest.mark.parametrize("seed", range(6))
def test_spearman_matches_scipy_with_ties(seed):
    sps = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 5, size=25).astype(float)
    y = x + rng.integers(-3, 4, size=25)
    want = sps.spearmanr(x, y).statistic
    assert S.spearman(list(x), list(y)) == pytest.approx(want, rel=1e-12, abs=1e-12)


# ----------------------------------------------------------------------------- anytime curves


def test_best_so_far_unsorted_with_nan():
    xs = [5.0, 1.0, 3.0, 2.0, 8.0]
    values = [0.9, 0.2, NAN, 0.5, 0.4]
    grid = [0.0, 1.0, 2.5, 3.0, 4.99, 5.0, 10.0]
    got = S.best_so_far(xs, values, grid)
    np.testing.assert_array_equal(got, [NAN, 0.2, 0.5, 0.5, 0.5, 0.9, 0.9])


def test_best_so_far_without_observations():
    assert np.isnan(S.best_so_far([], [], [1.0, 2.0])).all()
    assert np.isnan(S.best_so_far([1.0], [None], [1.0, 2.0])).all()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.one_of(st.none(), st.floats(-1e6, 1e6))), max_size=30
    ),
    st.lists(st.integers(-5, 60), min_size=1, max_size=20),
)
def test_best_so_far_is_non_decreasing(obs, grid):
    grid = sorted(grid)
    curve = S.best_so_far([x for x, _ in obs], [v for _, v in obs], grid)
    started = curve[~np.isnan(curve)]
    assert np.all(np.diff(started) >= 0)
    # Once a value is seen it stays: NaN only before the first observation.
    assert np.all(np.isnan(curve[: curve.size - started.size]))


# ----------------------------------------------------------------------------- bands


def test_band_per_column():
    curves = np.array(
        [
            [1.0, 2.0, NAN, NAN],
            [3.0, NAN, NAN, 4.0],
            [5.0, NAN, NAN, 6.0],
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning for the empty column
        got = S.band(curves)
    np.testing.assert_array_equal(got["n"], [3, 1, 0, 2])
    np.testing.assert_allclose(got["mean"], [3.0, 2.0, NAN, 5.0])
    np.testing.assert_allclose(got["std"], [2.0, 0.0, NAN, math.sqrt(2.0)])
    np.testing.assert_allclose(got["lo"], got["mean"] - got["std"])
    np.testing.assert_allclose(got["hi"], got["mean"] + got["std"])


def test_band_matches_numpy_on_full_columns():
    curves = np.random.default_rng(0).normal(size=(5, 7))
    got = S.band(curves)
    np.testing.assert_allclose(got["mean"], curves.mean(axis=0))
    np.testing.assert_allclose(got["std"], curves.std(axis=0, ddof=1))


def test_band_rejects_one_dimensional_input():
    with pytest.raises(ValueError):
        S.band([1.0, 2.0])


def test_paired_comparison_counts_wins_by_the_metrics_direction():
    a, b = {0: 1.0, 1: 2.0, 2: 3.0}, {0: 2.0, 1: 2.0, 2: 1.0}
    up = S.paired_comparison(a, b)
    down = S.paired_comparison(a, b, higher_is_better=False)
    assert (up["wins"], up["ties"], up["losses"]) == (1, 1, 1) == (down["losses"], down["ties"], down["wins"])
    assert up["mean_difference"] == down["mean_difference"] and up["wilcoxon_p"] == down["wilcoxon_p"]
