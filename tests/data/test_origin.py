"""Where a dataset was read from: `Dataset.source` / `Dataset.origin` name the file read now (never
the cache entry), and `load(..., origin=...)` reads that place again without searching."""

import pytest

from lossgen.data import DataError, load

pytestmark = pytest.mark.filterwarnings("ignore:.*sha256 differs from the official")
RATINGS = "".join(f"{u}\t{i}\t{(u * i) % 5 + 1}\t{880000000 + 10 * u + i}\n" for u in range(1, 9) for i in range(1, 10))


def test_source_is_the_file_read_not_the_copy_that_filled_the_cache(tmp_path, write, isolated_env):
    a = write(tmp_path / "a" / "ml-100k" / "u.data", RATINGS)
    b = write(tmp_path / "b" / "ml-100k" / "u.data", RATINGS)
    first = load("ml-100k", data_dir=tmp_path / "a", download=False)
    second = load("ml-100k", data_dir=tmp_path / "b", download=False)
    assert second.location == first.location and second.location.is_relative_to(isolated_env)  # one cache entry
    assert first.source == first.origin == str(a) and second.source == second.origin == str(b)


def test_relative_paths_become_absolute_origins(tmp_path, write, monkeypatch):
    write(tmp_path / "d" / "u.data", RATINGS)
    write(tmp_path / "log.csv", "user,item,rating,timestamp\n1,2,4,5\n1,3,2,6\n")
    monkeypatch.chdir(tmp_path)
    assert load("d").origin == str(tmp_path / "d" / "u.data")
    assert load("log.csv").origin == str(tmp_path / "log.csv")
    assert load("synthetic:users=20,items=20").origin is None


def test_origin_is_read_without_searching(tmp_path, write, monkeypatch):
    write(tmp_path / "a" / "ml-100k" / "u.data", RATINGS)
    first = load("ml-100k", data_dir=tmp_path / "a", download=False)
    monkeypatch.setenv("LOSSGEN_DATA_DIR", str(tmp_path / "elsewhere"))
    again = load("ml-100k", origin=first.origin, download=False)
    assert again.key == first.key and again.name == "ml-100k" and again.origin == first.origin
    (tmp_path / "a" / "ml-100k" / "u.data").unlink()
    with pytest.raises(DataError, match=r"u\.data: not found, though the data was read from there before"):
        load("ml-100k", origin=first.origin, download=False)


def test_origin_of_a_split_directory_keeps_the_spec_options(tmp_path, write):
    d = tmp_path / "split"
    write(d / "x.train.csv", "uid\tiid\tlabel\n1\t10\t1\n2\t11\t0\n")
    write(d / "x.validation.csv", "uid\tiid\tlabel\n1\t12\t1\n")
    write(d / "x.test.csv", "uid\tiid\tlabel\n2\t13\t1\n")
    ds = load(f"{d}:unknown=extend")
    assert ds.origin == ds.source == str(d)
    again = load("split:unknown=extend", origin=ds.origin)
    assert again.key == ds.key and again.n_items == 4


def test_a_moved_absolute_path_is_found_by_its_name_in_the_data_dir(tmp_path, write):
    write(tmp_path / "new" / "log.csv", "user,item,rating,timestamp\n1,2,4,5\n1,3,2,6\n")
    ds = load(str(tmp_path / "old" / "log.csv"), data_dir=tmp_path / "new")
    assert ds.origin == str(tmp_path / "new" / "log.csv")
