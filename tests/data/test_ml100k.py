"""MovieLens 100K (read through LOSSGEN_DATA_DIR; skipped when absent): the paper's Table 3."""

import numpy as np
import torch
from typer.testing import CliRunner

from lossgen.cli import app
from lossgen.data import ML100K_SHA256, load, read_movielens
from lossgen.data.ratings import sha256_file


def test_file_is_the_official_one(ml100k_dir):
    assert sha256_file(ml100k_dir / "ml-100k" / "u.data") == ML100K_SHA256


def test_table3_statistics(ml100k_dir):
    s = load("ml-100k", data_dir=ml100k_dir).statistics
    assert (s.users, s.items, s.positive, s.negative) == (943, 1682, 55_375, 44_625)
    assert f"{100 * s.density:.2f}%" == "6.30%"
    assert s.train + s.validation + s.test == 100_000


def test_split_follows_the_rules(ml100k_dir):
    ds = load("ml-100k", data_dir=ml100k_dir)
    test = ds.open_test()
    raw = read_movielens(ml100k_dir / "ml-100k" / "u.data")
    positives_per_user = np.bincount(np.searchsorted(ds.user_ids, raw.users), weights=raw.ratings > 3, minlength=943)
    # One test positive per user with any positive, one validation positive per user with two or more.
    assert int(test.labels.sum()) == int((positives_per_user >= 1).sum())
    assert int(ds.validation.labels.sum()) == int((positives_per_user >= 2).sum())
    # No (user, item) pair is in two splits.
    key = lambda s: set((s.users * 10_000 + s.items).tolist())  # noqa: E731
    assert not key(ds.train) & key(test) and not key(ds.validation) & key(test) and not key(ds.train) & key(ds.validation)
    # Everything of a user in test is at or after its validation rows in time (spot-check via raw order).
    times = {(u, i): t for u, i, t in zip(np.searchsorted(ds.user_ids, raw.users), np.searchsorted(ds.item_ids, raw.items), raw.timestamps)}
    last_val = {}
    for u, i in zip(ds.validation.users.tolist(), ds.validation.items.tolist()):
        last_val[u] = max(last_val.get(u, 0), times[(u, i)])
    assert all(times[(u, i)] >= last_val.get(u, 0) for u, i in zip(test.users.tolist(), test.items.tolist()))
    assert ds.train.labels.dtype == torch.float32


def test_cli_stats_prints_the_table3_row(ml100k_dir):
    result = CliRunner().invoke(app, ["data", "stats", "ml-100k", "--data-dir", str(ml100k_dir)])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "ml-100k" in line and "%" in line)
    for cell in ("943", "1,682", "55,375", "44,625", "6.30%"):
        assert cell in row


def test_env_var_is_enough(ml100k_dir, monkeypatch):
    monkeypatch.setenv("LOSSGEN_DATA_DIR", str(ml100k_dir))
    assert load("ml-100k").n_items == 1682
