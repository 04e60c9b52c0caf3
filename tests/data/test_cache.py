"""The cache of prepared splits: keyed by source checksum and settings, written atomically."""

import pytest

from lossgen.data import SplitSettings, load
from lossgen.data import cache, splitfiles


def entries(root):
    return sorted(p.name for p in (root / "prepared").iterdir()) if (root / "prepared").exists() else []


def test_second_load_hits_the_cache(isolated_env, monkeypatch):
    first = load("synthetic:users=30,items=40")
    assert first.location is not None and first.location.parent == isolated_env / "prepared"
    calls = []
    monkeypatch.setattr("lossgen.data.loader.prepare", lambda *a, **k: calls.append(1))
    second = load("synthetic:users=30,items=40")
    assert not calls and second.location == first.location
    assert second.statistics == first.statistics


def test_key_depends_on_source_and_settings(isolated_env):
    a = load("synthetic:users=30,items=40")
    b = load("synthetic:users=30,items=40", settings=SplitSettings(threshold=2))
    c = load("synthetic:users=30,items=40", settings=SplitSettings(min_interactions=10))
    d = load("synthetic:users=30,items=40,seed=1")
    assert len({a.key, b.key, c.key, d.key}) == 4
    assert len(entries(isolated_env)) == 4
    assert b.statistics.positive > a.statistics.positive


def test_changed_source_file_is_a_new_entry(tmp_path, isolated_env, write):
    p = write(tmp_path / "r.csv", "user,item,rating,timestamp\n1,1,5,1\n1,2,1,2\n")
    k1 = load(p).key
    write(p, "user,item,rating,timestamp\n1,1,1,1\n1,2,5,2\n")
    ds = load(p)
    assert ds.key != k1 and ds.statistics.positive == 1
    # Column roles are part of the identity too.
    assert load(p, time_col=None).key != ds.key


def test_kill_during_write_leaves_no_entry(isolated_env, monkeypatch):
    real = splitfiles.write_text_atomic
    written = []

    def dying(path, text):
        if len(written) == 2:
            raise KeyboardInterrupt  # as if killed after two of the four files
        written.append(path)
        real(path, text)

    monkeypatch.setattr(splitfiles, "write_text_atomic", dying)
    with pytest.raises(KeyboardInterrupt):
        load("synthetic:users=30,items=40")
    assert entries(isolated_env) == []  # neither a half entry nor a leftover temp directory
    monkeypatch.setattr(splitfiles, "write_text_atomic", real)
    ds = load("synthetic:users=30,items=40")
    assert len(ds.open_test()) == ds.statistics.test


def test_leftover_temp_directories_are_ignored_and_swept(isolated_env, monkeypatch):
    ds = load("synthetic:users=30,items=40")
    stale = isolated_env / "prepared" / f".tmp-{ds.location.name}-x"
    stale.mkdir()
    (stale / "synthetic.train.csv").write_text("uid\tiid\tlabel\n0\t0\t1\n")  # half-written
    assert load("synthetic:users=30,items=40").location == ds.location
    monkeypatch.setattr(cache, "STALE_TMP_S", -1)
    load("synthetic:users=31,items=40")  # any store sweeps old temp directories
    assert not stale.exists()


def test_incomplete_entry_without_info_is_rebuilt(isolated_env):
    ds = load("synthetic:users=30,items=40")
    (ds.location / "synthetic.info.json").unlink()
    assert cache.lookup("synthetic", ds.key) is None
    again = load("synthetic:users=30,items=40")
    assert again.statistics == ds.statistics


def test_unwritable_cache_falls_back_to_memory(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("LOSSGEN_CACHE_DIR", str(blocker))  # a file: directories cannot be made in it
    with pytest.warns(UserWarning, match="cannot write the split cache"):
        ds = load("synthetic:users=30,items=40")
    assert ds.location is None and len(ds.open_test()) == ds.statistics.test and ds.test_reads == 1


def test_cache_can_be_disabled(isolated_env):
    ds = load("synthetic:users=30,items=40", cache_enabled=False)
    assert ds.location is None and entries(isolated_env) == []
