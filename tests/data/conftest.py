"""Data tests run against a private cache; real MovieLens only through LOSSGEN_DATA_DIR."""

import os
from pathlib import Path

import pytest

# Read once, before the autouse fixture hides it from code under test.
REAL_DATA_DIR = os.environ.get("LOSSGEN_DATA_DIR")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Each test gets an empty cache and no implicit data dir (so nothing is found by accident)."""
    monkeypatch.setenv("LOSSGEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LOSSGEN_DATA_DIR", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def ml100k_dir() -> Path:
    """The directory holding ml-100k/u.data, or skip with the reason."""
    if not REAL_DATA_DIR:
        pytest.skip("MovieLens 100K test: set LOSSGEN_DATA_DIR to a directory holding ml-100k/u.data")
    path = Path(REAL_DATA_DIR).expanduser()
    if not path.is_absolute() and not path.exists():  # CI's ../shared/data is relative to the repo root
        path = Path(__file__).resolve().parents[2] / path
    if not (path / "ml-100k" / "u.data").is_file():
        pytest.skip(f"MovieLens 100K test: {path}/ml-100k/u.data not found (LOSSGEN_DATA_DIR={REAL_DATA_DIR})")
    return path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def write():
    """`write(path, text) -> path`, creating parent directories."""
    return _write
