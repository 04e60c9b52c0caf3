"""The split-file format: round trips, foreign directories, unknown ids."""

import numpy as np
import pytest
import torch

from lossgen.data import DataError, load, open_split_dir, prepare_to


def test_round_trip_through_prepare_to(tmp_path):
    ds = load("synthetic")
    out = prepare_to("synthetic", tmp_path / "out", name="syn")
    assert sorted(p.name for p in out.iterdir()) == ["syn.info.json", "syn.test.csv", "syn.train.csv", "syn.validation.csv"]
    assert (out / "syn.train.csv").read_text().splitlines()[0] == "uid\tiid\tlabel"
    back = load(out)
    for a, b in [(ds.train, back.train), (ds.validation, back.validation), (ds.open_test(), back.open_test())]:
        assert torch.equal(a.users, b.users) and torch.equal(a.items, b.items) and torch.equal(a.labels, b.labels)
        assert a.users.dtype == torch.int64 and a.labels.dtype == torch.float32
    assert (back.n_users, back.n_items, back.statistics) == (ds.n_users, ds.n_items, ds.statistics)
    assert np.array_equal(back.item_ids, ds.item_ids) and back.key == ds.key


def foreign(tmp_path, test_rows="7\t100\t1\n", validation_rows="7\t101\t0\n"):
    """A split directory as the AutoLossGen/NCR authors publish it (raw ids, extra `time` column, no info)."""
    d = tmp_path / "ml100k01-1-5"
    d.mkdir()
    write = lambda p, text: p.write_text(text)  # noqa: E731
    write(d / "ml100k01-1-5.train.csv", "uid\tiid\tlabel\ttime\n7\t100\t1\t5\n7\t101\t0\t6\n9\t102\t1\t7\n")
    write(d / "ml100k01-1-5.validation.csv", "uid\tiid\tlabel\ttime\n" + validation_rows)
    write(d / "ml100k01-1-5.test.csv", "uid\tiid\tlabel\ttime\n" + test_rows)
    return d


def test_foreign_split_directory_reindexes_from_train(tmp_path):
    ds = load(foreign(tmp_path))
    assert ds.name == "ml100k01-1-5"
    assert ds.user_ids.tolist() == [7, 9] and ds.item_ids.tolist() == [100, 101, 102]
    assert ds.train.users.tolist() == [0, 0, 1] and ds.train.items.tolist() == [0, 1, 2]
    assert ds.statistics.test is None and ds.test_reads == 0
    assert ds.open_test().items.tolist() == [0]


def test_split_directory_found_by_name_in_data_dir(tmp_path):
    foreign(tmp_path)
    assert load("ml100k01-1-5", data_dir=tmp_path).n_users == 2


def test_unknown_id_in_validation_names_file_row_and_id(tmp_path):
    d = foreign(tmp_path, validation_rows="7\t101\t0\n7\t555\t1\n")
    with pytest.raises(DataError, match=r"ml100k01-1-5\.validation\.csv, row 3: unknown iid 555 \(never seen in train\)"):
        load(d)


def test_unknown_id_in_test_fails_only_when_test_is_opened(tmp_path):
    ds = load(foreign(tmp_path, test_rows="8\t100\t1\n"))
    with pytest.raises(DataError, match=r"test\.csv, row 2: unknown uid 8"):
        ds.open_test()


def test_unknown_ids_can_be_dropped(tmp_path):
    d = foreign(tmp_path, validation_rows="7\t101\t0\n7\t555\t1\n")
    with pytest.warns(UserWarning, match="dropped 1 rows"):
        ds = open_split_dir(d, unknown="drop")
    assert len(ds.validation) == 1


def test_declared_id_space_is_checked(tmp_path):
    out = prepare_to("synthetic:users=20,items=30", tmp_path / "o", name="s")
    lines = (out / "s.test.csv").read_text().splitlines()
    lines[1] = "0\t30\t1"  # item 30 is outside [0, n_items)
    n_items = load(out).n_items
    lines[1] = f"0\t{n_items}\t1"
    (out / "s.test.csv").write_text("\n".join(lines) + "\n")
    ds = load(out)
    with pytest.raises(DataError, match=rf"s\.test\.csv, row 2: unknown iid {n_items} \(outside the declared id space"):
        ds.open_test()


def test_truncated_file_is_detected_against_info(tmp_path):
    out = prepare_to("synthetic:users=20,items=30", tmp_path / "o", name="s")
    lines = (out / "s.validation.csv").read_text().splitlines()
    (out / "s.validation.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match="corrupt split"):
        load(out)


def test_missing_part_file(tmp_path):
    d = foreign(tmp_path)
    (d / "ml100k01-1-5.test.csv").unlink()
    with pytest.raises(DataError, match="test.csv: file not found"):
        load(d)
