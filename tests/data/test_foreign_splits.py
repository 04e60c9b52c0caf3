"""Foreign split directories (the AutoLossGen/NCR authors' `NAME.{train,validation,test}.csv`, no
NAME.info.json): the unknown-id modes refuse / drop / extend, `name=`, their keys, and
`prepare_to` turning such a directory into one lossgen reads without options."""

import hashlib

import pytest

from lossgen.data import DataError, load, open_split_dir, prepare_to
from lossgen.data import loader
from lossgen.data.loader import split_spec

HEADER = "uid\tiid\tlabel\ttime\n"
TRAIN = "7\t100\t1\t5\n7\t101\t0\t6\n9\t102\t1\t7\n9\t100\t0\t8\n"


def foreign(root, validation="7\t102\t1\t9\n9\t1543\t1\t9\n", test="7\t103\t1\t10\n11\t100\t0\t11\n", name="ncr"):
    """Validation names item 1543 and test item 103 and user 11: ids train never saw."""
    d = root / "split"
    d.mkdir(exist_ok=True)
    (d / f"{name}.train.csv").write_text(HEADER + TRAIN)
    (d / f"{name}.validation.csv").write_text(HEADER + validation)
    (d / f"{name}.test.csv").write_text(HEADER + test)
    return d


def test_refusal_names_the_row_and_both_ways_out(tmp_path):
    d = foreign(tmp_path)
    with pytest.raises(DataError) as info:
        load(d)
    msg = str(info.value)
    assert "ncr.validation.csv, row 3: unknown iid 1543 (never seen in train)" in msg
    assert f"{d}:unknown=drop" in msg and f"{d}:unknown=extend" in msg and "\n" not in msg


def test_drop_by_spec_suffix(tmp_path):
    d = foreign(tmp_path)
    with pytest.warns(UserWarning, match=r"validation\.csv: dropped 1 rows"):
        ds = load(f"{d}:unknown=drop")
    assert ds.item_ids.tolist() == [100, 101, 102] and len(ds.validation) == 1
    with pytest.warns(UserWarning, match=r"test\.csv: dropped 2 rows"):
        assert len(ds.open_test()) == 0


def test_extend_sizes_the_id_space_over_all_three_files(tmp_path):
    ds = load(f"{foreign(tmp_path)}:unknown=extend")
    assert ds.user_ids.tolist() == [7, 9, 11] and ds.item_ids.tolist() == [100, 101, 102, 103, 1543]
    assert (ds.n_users, ds.n_items) == (3, 5) and len(ds.validation) == 2
    assert ds.train.items.tolist() == [0, 1, 2, 0]  # ids of train keep their order
    assert ds.statistics.test is None and ds.test_reads == 0
    test = ds.open_test()
    assert test.users.tolist() == [0, 2] and test.items.tolist() == [3, 0] and test.labels.tolist() == [1.0, 0.0]


def test_extend_reads_only_the_id_columns_of_the_test_file(tmp_path, monkeypatch):
    d = foreign(tmp_path, test="7\t103\tnot-a-label\t10\n")  # a label that would fail if it were read
    full, ids = [], []
    real_full, real_ids = loader.read_raw_part, loader.read_raw_ids
    monkeypatch.setattr(loader, "read_raw_part", lambda path, *a, **k: full.append(path.name) or real_full(path, *a, **k))
    monkeypatch.setattr(loader, "read_raw_ids", lambda path: ids.append(path.name) or real_ids(path))
    ds = load(f"{d}:unknown=extend")
    assert full == ["ncr.train.csv", "ncr.validation.csv"] and ids == ["ncr.test.csv"]
    assert 103 in ds.item_ids.tolist()
    with pytest.raises(DataError, match=r"test\.csv, row 2: column .label. is not a number"):
        ds.open_test()  # the labels are read here, in Phase III, and only here


def test_modes_change_the_key_and_refuse_keeps_the_old_one(tmp_path):
    d = foreign(tmp_path, validation="7\t102\t1\t9\n", test="7\t100\t1\t10\n")  # no unknown ids at all
    keys = {mode: load(f"{d}:unknown={mode}").key for mode in ("refuse", "drop", "extend")}
    assert len(set(keys.values())) == 3
    assert load(d).key == keys["refuse"]
    assert keys["refuse"] == hashlib.sha256((d / "ncr.train.csv").read_bytes()).hexdigest()[:16]


def test_name_picks_one_of_several_splits(tmp_path):
    d = foreign(tmp_path)
    foreign(tmp_path, validation="7\t102\t1\t9\n", test="7\t100\t1\t10\n", name="other")
    with pytest.raises(DataError, match=rf"several splits \(ncr, other\); choose one by giving the dataset as {d}:name=NAME"):
        load(d)
    assert load(f"{d}:name=other").name == "other"
    assert load(f"{d}:name=ncr,unknown=extend").n_items == 5
    with pytest.raises(DataError, match=rf"{d}:name=ncr,unknown=drop"):  # the hint keeps the name
        load(f"{d}:name=ncr")
    with pytest.raises(DataError, match=r"no split named 'nope'"):
        load(f"{d}:name=nope")
    assert load(d, split_name="other", unknown="refuse").name == "other"  # the keywords do the same


def test_bad_options(tmp_path):
    d = foreign(tmp_path)
    with pytest.raises(DataError, match="unknown=keep is not a mode; choose unknown=refuse, drop or extend"):
        load(f"{d}:unknown=keep")
    with pytest.raises(DataError, match="unknown dataset option 'mode'"):
        load(f"{d}:mode=drop")
    with pytest.raises(DataError, match="only apply to a split directory, not to ml-100k"):
        load("ml-100k:unknown=drop")
    with pytest.raises(DataError, match="unknown=drop in the dataset, but unknown=extend given"):
        load(f"{d}:unknown=drop", unknown="extend")
    with pytest.raises(DataError, match=r"nowhere:unknown=drop: not found"):
        load("nowhere:unknown=drop")
    out = prepare_to("synthetic:users=20,items=30", tmp_path / "own", name="s")
    with pytest.raises(DataError, match=r"s\.info\.json declares the id space of this split, so unknown=extend does not apply"):
        load(f"{out}:unknown=extend")


def test_split_spec_leaves_existing_paths_and_synthetic_alone(tmp_path):
    odd = tmp_path / "a:unknown=drop"
    odd.mkdir()
    assert split_spec(str(odd)) == (str(odd), {})
    assert split_spec("synthetic:users=5") == ("synthetic:users=5", {})
    assert split_spec("dir:unknown=error") == ("dir", {"unknown": "refuse"})
    assert split_spec("dir") == ("dir", {})


def test_prepare_turns_a_foreign_split_into_one_read_without_options(tmp_path):
    d = foreign(tmp_path)
    with pytest.raises(DataError, match="unknown iid 1543"):
        prepare_to(d, tmp_path / "out")
    ds = load(f"{d}:unknown=extend")
    out = prepare_to(f"{d}:unknown=extend", tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["ncr.info.json", "ncr.test.csv", "ncr.train.csv", "ncr.validation.csv"]
    back = load(out)
    assert back.key == ds.key and (back.n_users, back.n_items) == (3, 5)
    assert back.item_ids.tolist() == [100, 101, 102, 103, 1543]
    assert back.statistics.test == 2 and back.statistics.positive == 5  # the test split is counted now
    assert back.train.items.tolist() == ds.train.items.tolist() and back.open_test().items.tolist() == [3, 0]
    with pytest.raises(DataError, match="is the split directory itself"):
        prepare_to(f"{d}:unknown=extend", d)


def test_open_split_dir_still_accepts_error_as_refuse(tmp_path):
    d = foreign(tmp_path, validation="7\t102\t1\t9\n", test="7\t100\t1\t10\n")
    assert open_split_dir(d, unknown="error").n_items == 3
    with pytest.raises(DataError, match="choose refuse, drop or extend"):
        open_split_dir(d, unknown="ignore")
