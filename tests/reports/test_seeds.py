import itertools

import pytest

from lossgen.reports.seeds import paired_over_seeds


def test_paired_over_seeds_counts_and_exact_p():
    r = paired_over_seeds([0.80, 0.81, 0.82], [0.79, 0.80, 0.80])
    assert r["difference"] == pytest.approx(0.0133333, abs=1e-6) and (r["better"], r["worse"], r["n"]) == (3, 0, 3)
    assert r["p_value"] == 0.25 and r["min_p"] == 0.25  # all positive: 2 of 8 sign patterns are as extreme
    lower = paired_over_seeds([0.5, 0.4], [0.6, 0.5], higher_is_better=False)  # RMSE: lower wins
    assert lower["better"] == 2 and lower["difference"] == pytest.approx(-0.1)


def test_the_p_value_is_the_share_of_sign_patterns_at_least_as_extreme():
    d = [0.3, -0.1, 0.2, 0.05]
    r = paired_over_seeds(d, [0.0] * 4)
    observed = abs(sum(d)) / 4
    expected = sum(abs(sum(s * v for s, v in zip(signs, d))) / 4 >= observed - 1e-12
                   for signs in itertools.product((1, -1), repeat=4)) / 16
    assert r["p_value"] == expected and r["better"] == 3 and r["worse"] == 1


def test_bad_input():
    with pytest.raises(ValueError, match="equal"):
        paired_over_seeds([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="equal"):
        paired_over_seeds([], [])
