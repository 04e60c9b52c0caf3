"""Finding ml-100k: data dir, LOSSGEN_DATA_DIR, cache, download (file:// URLs; no network in tests)."""

import hashlib
import io
import zipfile

import pytest

from lossgen.data import DataError, load
from lossgen.data import sources
from lossgen.data.sources import download_ml100k, find_ml100k, locate_ml100k

FAKE = "".join(f"{u}\t{i}\t{(u * i) % 5 + 1}\t{800000000 + u * 100 + i}\n" for u in range(1, 8) for i in range(1, 9))


def zip_bytes(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture
def fake_official(monkeypatch):
    """Pretend FAKE is the official u.data (its sha256 replaces the real one)."""
    monkeypatch.setattr(sources, "ML100K_SHA256", hashlib.sha256(FAKE.encode()).hexdigest())


def test_search_order_data_dir_then_env_then_cache(tmp_path, monkeypatch, isolated_env, write):
    a = write(tmp_path / "a" / "ml-100k" / "u.data", FAKE)
    b = write(tmp_path / "b" / "ml-100k" / "u.data", FAKE)
    c = write(isolated_env / "ml-100k" / "u.data", FAKE)
    monkeypatch.setenv("LOSSGEN_DATA_DIR", str(tmp_path / "b"))
    assert find_ml100k(tmp_path / "a") == a
    assert find_ml100k() == b
    monkeypatch.delenv("LOSSGEN_DATA_DIR")
    assert find_ml100k() == c
    assert find_ml100k(tmp_path / "a" / "ml-100k") == a  # the ml-100k folder itself


def test_download_from_file_url_verifies_and_caches(tmp_path, isolated_env, fake_official):
    archive = tmp_path / "ml-100k.zip"
    archive.write_bytes(zip_bytes({"ml-100k/u.data": FAKE, "ml-100k/README": "x"}))
    path = download_ml100k(archive.as_uri())
    assert path == isolated_env / "ml-100k" / "u.data" and path.read_text() == FAKE
    assert find_ml100k() == path  # later loads find it in the cache


def test_load_downloads_when_missing(tmp_path, monkeypatch, isolated_env, fake_official):
    archive = tmp_path / "ml-100k.zip"
    archive.write_bytes(zip_bytes({"ml-100k/u.data": FAKE}))
    monkeypatch.setattr(sources, "ML100K_URL", archive.as_uri())
    ds = load("ml-100k")
    assert (ds.n_users, ds.n_items) == (7, 8)


def test_checksum_mismatch_refuses_and_saves_nothing(tmp_path, isolated_env):
    archive = tmp_path / "ml-100k.zip"
    archive.write_bytes(zip_bytes({"ml-100k/u.data": FAKE}))  # not the official file
    with pytest.raises(DataError, match="checksum mismatch for u.data"):
        download_ml100k(archive.as_uri())
    assert not (isolated_env / "ml-100k" / "u.data").exists()


def test_corrupt_archive(tmp_path):
    bad = tmp_path / "ml-100k.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a zip archive"):
        download_ml100k(bad.as_uri())
    good = tmp_path / "other.zip"
    good.write_bytes(zip_bytes({"ml-100k/u.item": "x"}))
    with pytest.raises(DataError, match="no ml-100k/u.data"):
        download_ml100k(good.as_uri())


def test_offline_error_is_one_line_and_says_where_to_put_the_file(tmp_path, monkeypatch):
    def offline(url):
        raise OSError("Name or service not known")

    monkeypatch.setattr(sources, "fetch", offline)
    with pytest.raises(DataError) as info:
        load("ml-100k", data_dir=tmp_path / "mine")
    msg = str(info.value)
    assert "\n" not in msg
    assert "download from https://files.grouplens.org/datasets/movielens/ml-100k.zip failed" in msg
    assert "DIR/ml-100k/u.data" in msg and "--data-dir" in msg and "LOSSGEN_DATA_DIR" in msg
    assert str(tmp_path / "mine") in msg  # the directories that were searched


def test_offline_via_unreachable_file_url(tmp_path):
    with pytest.raises(DataError, match="failed"):
        download_ml100k((tmp_path / "absent.zip").as_uri())


def test_no_download_option(tmp_path):
    with pytest.raises(DataError, match="MovieLens 100K not found: put u.data at DIR/ml-100k/u.data"):
        locate_ml100k(tmp_path, download=False)


def test_unofficial_local_copy_is_used_with_a_warning(tmp_path, write):
    write(tmp_path / "ml-100k" / "u.data", FAKE)
    with pytest.warns(UserWarning, match="differs from the official"):
        ds = load("ml-100k", data_dir=tmp_path)
    assert ds.n_users == 7
