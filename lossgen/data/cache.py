"""The cache of prepared splits: one split directory per (source checksum, settings).

Layout: `CACHE/prepared/NAME-KEY/NAME.{train,validation,test}.csv` and `NAME.info.json`, where
KEY is the first 16 hex digits of sha256 over the format version, the source checksum and the
split settings. An entry is built in a `.tmp-*` sibling and renamed into place, so an entry that
exists is complete: a kill mid-write leaves only a `.tmp-*` directory, which lookups ignore.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from lossgen.data.sources import cache_dir
from lossgen.data.split import Prepared, SplitSettings
from lossgen.util.atomic import current_umask
from lossgen.data.splitfiles import FORMAT, info_path, write_split

STALE_TMP_S = 3600  # a .tmp-* directory this old belongs to a writer that died


def cache_key(checksum: str, settings: SplitSettings) -> str:
    blob = json.dumps({"format": FORMAT, "source": checksum, "settings": settings.to_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "data"


def entry_dir(name: str, key: str, root: Path | None = None) -> Path:
    return (root or cache_dir()) / "prepared" / f"{safe_name(name)}-{key}"


def lookup(name: str, key: str, root: Path | None = None) -> Path | None:
    """The entry's directory if it is complete (its info file exists), else None."""
    d = entry_dir(name, key, root)
    return d if info_path(d, safe_name(name)).is_file() else None


def store(prepared: Prepared, name: str, key: str, info: dict, root: Path | None = None) -> Path:
    """Write an entry atomically (temp directory + rename); a concurrent writer's entry wins."""
    final = entry_dir(name, key, root)
    if lookup(name, key, root):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    _sweep(final.parent)
    if final.exists():  # incomplete (no info file): someone removed files by hand; set it aside
        aside = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".tmp-{final.name}-old-"))
        os.rename(final, aside / "entry")
        shutil.rmtree(aside, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".tmp-{final.name}-"))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())
        write_split(tmp, safe_name(name), prepared.parts, info)
        try:
            os.rename(tmp, final)
        except OSError:
            if not lookup(name, key, root):  # not a lost race: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _sweep(parent: Path) -> None:
    """Remove temp directories left by writers that were killed long ago."""
    now = time.time()
    for d in parent.glob(".tmp-*"):
        try:
            if now - d.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass
