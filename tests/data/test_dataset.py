"""The Dataset object: compact tensors, and the test split only through `open_test()`."""

import pytest
import torch

from lossgen.data import DataError, load
from lossgen.data import loader, splitfiles


def test_tensors_and_sizes():
    ds = load("synthetic")
    for split in (ds.train, ds.validation):
        assert split.users.dtype == torch.int64 and split.items.dtype == torch.int64
        assert split.labels.dtype == torch.float32 and set(split.labels.unique().tolist()) <= {0.0, 1.0}
        assert int(split.users.max()) < ds.n_users and int(split.items.max()) < ds.n_items
    s = ds.statistics
    assert len(ds.train) == s.train and len(ds.validation) == s.validation
    assert s.train + s.validation + s.test == s.positive + s.negative
    assert ds.user_ids.shape == (ds.n_users,) and ds.item_ids.shape == (ds.n_items,)


def test_no_test_attribute():
    ds = load("synthetic")
    assert not hasattr(ds, "test")
    assert "test" not in {f for f in vars(ds) if not f.startswith("_") and f != "test_reads"}


def test_load_never_reads_the_test_file(monkeypatch):
    load("synthetic")  # build the cache entry
    read = []
    real = splitfiles.read_raw_part

    def spy(path, *a, **k):
        read.append(path.name)
        return real(path, *a, **k)

    monkeypatch.setattr(loader, "read_raw_part", spy)
    ds = load("synthetic")
    assert read == ["synthetic.train.csv", "synthetic.validation.csv"] and ds.test_reads == 0
    test = ds.open_test()
    assert read[-1] == "synthetic.test.csv" and ds.test_reads == 1
    assert len(test) == ds.statistics.test and test.labels.sum() > 0
    ds.open_test()
    assert ds.test_reads == 2  # every read counts


def test_test_split_is_read_lazily_from_disk():
    ds = load("synthetic")
    (ds.location / "synthetic.test.csv").unlink()  # gone after load: load did not need it
    assert len(ds.train) > 0
    with pytest.raises(DataError, match=r"synthetic\.test\.csv: file not found"):
        ds.open_test()


def test_split_moves_to_device():
    ds = load("synthetic:users=20,items=20")
    moved = ds.train.to("cpu")
    assert torch.equal(moved.users, ds.train.users)
    assert 0 < ds.train.positive_rate < 1
