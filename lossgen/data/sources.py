"""Where MovieLens 100K comes from: a data directory, the cache, or GroupLens.

MovieLens may not be redistributed, so lossgen never ships it: it looks in `--data-dir`, then
`LOSSGEN_DATA_DIR`, then its cache, and only then downloads the official zip.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from lossgen.util.atomic import write_bytes_atomic
from lossgen.data.errors import DataError
from lossgen.data.ratings import sha256_file

ML100K = "ml-100k"
ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
# sha256 of ml-100k/u.data (1,979,173 bytes, 100,000 rows), computed from a copy of the file.
# The check is on the extracted u.data, not on the zip: it is the file the statistics come from,
# and it also verifies a u.data that reached the cache by any other route.
ML100K_SHA256 = "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"
DOWNLOAD_TIMEOUT_S = 60


def cache_dir() -> Path:
    """`LOSSGEN_CACHE_DIR`, else `$XDG_CACHE_HOME/lossgen`, else `~/.cache/lossgen`."""
    if os.environ.get("LOSSGEN_CACHE_DIR"):
        return Path(os.environ["LOSSGEN_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "lossgen"


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The directories searched for datasets, in order: data_dir, LOSSGEN_DATA_DIR, the cache."""
    dirs = []
    if data_dir:
        dirs.append(Path(data_dir).expanduser())
    if os.environ.get("LOSSGEN_DATA_DIR"):
        dirs.append(Path(os.environ["LOSSGEN_DATA_DIR"]).expanduser())
    dirs.append(cache_dir())
    return dirs


def find_ml100k(data_dir: str | os.PathLike | None = None) -> Path | None:
    """`DIR/ml-100k/u.data` (or `DIR/u.data` when DIR is the ml-100k folder itself) in the search dirs."""
    for d in search_dirs(data_dir):
        for candidate in (d / ML100K / "u.data", d / "u.data"):
            if candidate.is_file():
                return candidate
    return None


def fetch(url: str) -> bytes:
    """The bytes at `url` (http(s) or file://); network failures become `OSError`."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        return response.read()


def download_ml100k(url: str | None = None, dest: Path | None = None, data_dir: str | os.PathLike | None = None) -> Path:
    """Download the GroupLens zip, verify u.data's sha256, and place it at `dest` atomically."""
    url = url or ML100K_URL
    dest = dest or cache_dir() / ML100K / "u.data"
    try:
        payload = fetch(url)
    except (OSError, ValueError) as err:  # URLError is an OSError; ValueError for a malformed URL
        reason = getattr(err, "reason", err)
        raise DataError(
            f"MovieLens 100K not found and the download from {url} failed ({reason}): put u.data at "
            f"DIR/ml-100k/u.data and pass --data-dir DIR or set LOSSGEN_DATA_DIR=DIR "
            f"(searched {', '.join(str(d) for d in search_dirs(data_dir))})"
        ) from None
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            names = [n for n in archive.namelist() if n.rstrip("/").endswith(f"{ML100K}/u.data") or n == "u.data"]
            if not names:
                raise DataError(f"{url}: the archive has no ml-100k/u.data")
            data = archive.read(names[0])
    except zipfile.BadZipFile:
        raise DataError(f"{url}: not a zip archive (download corrupted?)") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != ML100K_SHA256:
        raise DataError(f"{url}: checksum mismatch for u.data (sha256 {digest}, expected {ML100K_SHA256}); not saved")
    write_bytes_atomic(dest, data)
    return dest


def locate_ml100k(data_dir: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """The path of u.data, downloading it into the cache when it is nowhere to be found."""
    found = find_ml100k(data_dir)
    if found is not None:
        return found
    if not download:
        raise DataError(
            f"MovieLens 100K not found: put u.data at DIR/ml-100k/u.data and pass --data-dir DIR or set "
            f"LOSSGEN_DATA_DIR=DIR (searched {', '.join(str(d) for d in search_dirs(data_dir))})"
        )
    return download_ml100k(data_dir=data_dir)


def is_verified(path: Path) -> bool:
    """Whether a u.data is the official file (a local copy is used either way, with a warning)."""
    return sha256_file(path) == ML100K_SHA256
