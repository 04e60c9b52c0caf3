"""The synthetic generator: deterministic, tunable, with a learnable planted preference."""

import numpy as np
import pytest

from lossgen.data import DataError, SyntheticConfig, generate, load, parse_synthetic, prepare
from lossgen.data.synthetic import preference


def test_same_seed_same_log_and_other_seed_differs():
    a, b = generate(SyntheticConfig(seed=3)), generate(SyntheticConfig(seed=3))
    for x, y in [(a.users, b.users), (a.items, b.items), (a.ratings, b.ratings), (a.timestamps, b.timestamps)]:
        assert np.array_equal(x, y)
    assert a.checksum == b.checksum
    assert generate(SyntheticConfig(seed=4)).checksum != a.checksum


def test_default_size_density_and_ratings():
    c = SyntheticConfig()
    r = generate(c)
    assert (c.users, c.items) == (300, 400)
    assert abs(len(r) / (c.users * c.items) - c.density) < 0.005
    assert set(np.unique(r.ratings)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert 0.45 < (r.ratings > 3).mean() < 0.65  # like ML-100K's 55%
    pairs = r.users * 10_000 + r.items
    assert len(np.unique(pairs)) == len(r)  # one rating per (user, item)
    counts = np.bincount(r.users)[1:]
    assert counts.min() >= c.min_per_user and (counts < 5).any()  # some users exercise the 5-cut


def test_size_and_density_are_tunable():
    r = generate(SyntheticConfig(users=120, items=90, density=0.2, seed=1))
    assert r.users.max() <= 120 and r.items.max() <= 90
    assert abs(len(r) / (120 * 90) - 0.2) < 0.01


def test_planted_preference_predicts_labels():
    c = SyntheticConfig()
    r = generate(c)
    score = preference(c)[r.users - 1, r.items - 1]
    pos, neg = score[r.ratings > 3], score[r.ratings <= 3]
    auc = (pos[:, None] > neg[None, :]).mean()
    assert auc > 0.8


def test_timestamps_have_ties_and_split_is_reasonable():
    r = generate()
    assert len(np.unique(r.users * 10**10 + r.timestamps)) < len(r)  # ties within users
    s = prepare(r).statistics
    assert s.validation > 0 and s.test > 0 and s.train > 10 * s.test


def test_name_options():
    assert parse_synthetic("synthetic:users=50,items=60,density=0.1,seed=2") == SyntheticConfig(users=50, items=60, density=0.1, seed=2)
    with pytest.raises(DataError, match="unknown option"):
        parse_synthetic("synthetic:colour=3")
    with pytest.raises(DataError, match="needs a number"):
        parse_synthetic("synthetic:users=many")
    ds = load("synthetic:users=40,items=50,seed=1")
    assert ds.n_users == 40 and ds.n_items <= 50
    assert load("synthetic", synthetic={"users": 40, "items": 50, "seed": 1}).key == ds.key
