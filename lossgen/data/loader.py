"""`load(name_or_path)`: resolve a dataset name or path to a prepared `Dataset`."""

from __future__ import annotations

import warnings
from dataclasses import fields
from pathlib import Path

import numpy as np

from lossgen.data import cache, sources
from lossgen.data.dataset import Dataset, Split
from lossgen.data.errors import DataError
from lossgen.data.ratings import Ratings, csv_identity, read_movielens, read_ratings_csv, sha256_file
from lossgen.data.sources import ML100K, locate_ml100k, search_dirs
from lossgen.data.split import PARTS, Prepared, SplitSettings, prepare
from lossgen.data.splitfiles import (
    FORMAT, IdSpace, find_name, is_split_dir, map_ids, part_path, read_info, read_raw_part, write_split,
)
from lossgen.data.stats import Statistics
from lossgen.data.synthetic import SyntheticConfig, generate

DATASET_HELP = "ml-100k, synthetic[:users=N,items=N,density=F,seed=N,...], a split directory or a ratings CSV"


# ---------------------------------------------------------------- resolving names to rating sources


class _Source:
    """A rating log not yet read: its name, identity (for the cache key) and a reader."""

    def __init__(self, name: str, checksum: str, read, origin: str) -> None:
        self.name, self.checksum, self.read, self.origin = name, checksum, read, origin


def parse_synthetic(spec: str) -> SyntheticConfig:
    """`synthetic` or `synthetic:users=500,items=800,density=0.05,seed=3`."""
    _, _, options = spec.partition(":")
    kinds = {f.name: f.type for f in fields(SyntheticConfig)}
    values = {}
    for item in filter(None, (s.strip() for s in options.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in kinds:
            raise DataError(f"synthetic: unknown option {item!r} (options: {', '.join(kinds)})")
        try:
            values[key] = float(value) if kinds[key] in (float, "float") else int(value)
        except ValueError:
            raise DataError(f"synthetic: option {key} needs a number, got {value!r}") from None
    try:
        return SyntheticConfig(**values)
    except ValueError as err:
        raise DataError(str(err)) from None


def _ml100k_source(path: Path, by_name: bool = False) -> _Source:
    checksum = sha256_file(path)
    if by_name and checksum != sources.ML100K_SHA256:
        warnings.warn(f"{path}: sha256 differs from the official MovieLens 100K u.data; using it anyway", stacklevel=3)
    return _Source(ML100K, checksum, lambda: read_movielens(path), str(path))


def _resolve(name_or_path, data_dir, download: bool, synthetic, csv_options: dict) -> _Source | Path:
    """A `_Source` for rating logs, or the Path of a split directory."""
    text = str(name_or_path)
    if text.lower() in (ML100K, "ml100k", "movielens-100k"):
        return _ml100k_source(locate_ml100k(data_dir, download=download), by_name=True)
    if text.split(":", 1)[0].lower() == "synthetic":
        config = synthetic if isinstance(synthetic, SyntheticConfig) else parse_synthetic(text)
        if isinstance(synthetic, dict):
            config = SyntheticConfig(**{**config.to_dict(), **synthetic})
        ratings = generate(config)
        return _Source("synthetic", ratings.checksum, lambda: ratings, ratings.source)
    # A path: a split directory, an ml-100k folder or u.data, or a ratings CSV (also looked up in the data dirs).
    path = Path(text).expanduser()
    candidates = [path] + ([] if path.is_absolute() else [d / text for d in search_dirs(data_dir)])
    for p in candidates:
        if is_split_dir(p):
            return p
        if p.is_dir() and (p / "u.data").is_file():
            return _ml100k_source(p / "u.data")
        if p.is_file():
            if p.name == "u.data":
                return _ml100k_source(p)
            opts = {"user_col": "user", "item_col": "item", "rating_col": "rating", "time_col": "timestamp", "sep": None, **csv_options}
            return _Source(p.stem.removesuffix(".ratings") or "ratings", csv_identity(p, **opts),
                           lambda p=p: read_ratings_csv(p, **opts), str(p))
    if path.is_dir():
        raise DataError(f"{path}: a directory without NAME.train.csv or u.data")
    raise DataError(f"unknown dataset {text!r}: expected {DATASET_HELP}")


# ---------------------------------------------------------------- building Dataset objects


def _info(source: _Source, settings: SplitSettings, key: str, prepared: Prepared) -> dict:
    return {
        "format": FORMAT, "name": source.name, "source": source.origin, "source_sha256": source.checksum,
        "settings": settings.to_dict(), "key": key,
        "n_users": len(prepared.user_ids), "n_items": len(prepared.item_ids),
        "rows": {p: len(prepared.parts[p]) for p in PARTS},
        "statistics": prepared.statistics.to_dict(),
        "user_ids": prepared.user_ids.tolist(), "item_ids": prepared.item_ids.tolist(),
    }


def _in_memory(name: str, source: str, key: str, prepared: Prepared) -> Dataset:
    """A dataset with no directory: the test split stays in a closure, still counted on reading."""
    split = {p: Split.from_numpy(v.users, v.items, v.labels) for p, v in prepared.parts.items()}
    test = split.pop("test")
    return Dataset(name, split["train"], split["validation"], len(prepared.user_ids), len(prepared.item_ids),
                   prepared.statistics, prepared.user_ids, prepared.item_ids, source, key, None, lambda: test)


def open_split_dir(directory, name: str | None = None, *, unknown: str = "error") -> Dataset:
    """A split directory as a `Dataset`: train and validation now, test only through `open_test()`.

    With `NAME.info.json` (lossgen's own files) the id space is the declared one; without it the
    id space is the ids of the train file, and an id in validation or test outside it is a
    `DataError` naming file, row and id (`unknown="drop"` drops those rows with a warning).
    """
    if unknown not in ("error", "drop"):
        raise ValueError("unknown must be 'error' or 'drop'")
    directory = Path(directory)
    name = name or find_name(directory)
    for part in PARTS:
        if not part_path(directory, name, part).is_file():
            raise DataError(f"{part_path(directory, name, part)}: file not found (a split needs train, validation and test)")
    info = read_info(directory, name)
    tr_u, tr_i, tr_l = read_raw_part(part_path(directory, name, "train"), allow_empty=False)
    if info is not None:
        user_ids, item_ids = np.asarray(info["user_ids"], dtype=np.int64), np.asarray(info["item_ids"], dtype=np.int64)
        space = IdSpace(np.arange(len(user_ids)), np.arange(len(item_ids)), declared=True)
    else:
        user_ids, item_ids = np.unique(tr_u), np.unique(tr_i)
        space = IdSpace(user_ids, item_ids, declared=False)

    def read(part: str, raw=None) -> Split:
        path = part_path(directory, name, part)
        users, items, labels = raw if raw is not None else read_raw_part(path)
        if info is not None and len(users) != info["rows"][part]:
            raise DataError(f"{path}: {len(users)} rows, but {info_path_name} declares {info['rows'][part]} (corrupt split)")
        u, i, keep = map_ids(path, users, items, space, unknown)
        if not keep.all():
            warnings.warn(f"{path}: dropped {int((~keep).sum())} rows with ids never seen in train", stacklevel=2)
        return Split.from_numpy(u, i, labels[keep])

    info_path_name = f"{name}.info.json"
    train = read("train", (tr_u, tr_i, tr_l))
    validation = read("validation")
    if info is not None:
        stats = Statistics.from_dict(info["statistics"])
        source, key = info.get("source", str(directory)), info.get("key", "")
    else:
        positive = int(train.labels.sum() + validation.labels.sum())
        stats = Statistics(len(user_ids), len(item_ids), positive, len(train) + len(validation) - positive,
                           len(train), len(validation), None)
        source, key = str(directory), sha256_file(part_path(directory, name, "train"))[:16]
    return Dataset(info["name"] if info else name, train, validation, len(user_ids), len(item_ids), stats,
                   user_ids, item_ids, source, key, directory, lambda: read("test"))


def load(
    name_or_path,
    data_dir=None,
    *,
    settings: SplitSettings | None = None,
    cache_enabled: bool = True,
    download: bool = True,
    synthetic: SyntheticConfig | dict | None = None,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str = "rating",
    time_col: str | None = "timestamp",
    sep: str | None = None,
    unknown: str = "error",
) -> Dataset:
    """A prepared dataset by name or path: see `DATASET_HELP`.

    Rating logs are split as the paper (`settings`) and the split is cached (see
    `lossgen.data.cache`); the returned dataset then reads its test split from that cache entry.
    `user_col` ... `sep` describe a ratings CSV; `unknown` applies to a split directory.
    """
    settings = settings or SplitSettings()
    csv_options = {"user_col": user_col, "item_col": item_col, "rating_col": rating_col, "time_col": time_col, "sep": sep}
    source = _resolve(name_or_path, data_dir, download, synthetic, csv_options)
    if isinstance(source, Path):
        return open_split_dir(source, unknown=unknown)
    key = cache.cache_key(source.checksum, settings)
    if cache_enabled:
        hit = cache.lookup(source.name, key)
        if hit is not None:
            return open_split_dir(hit, cache.safe_name(source.name))
    ratings: Ratings = source.read()
    prepared = prepare(ratings, settings)
    if cache_enabled:
        try:
            entry = cache.store(prepared, source.name, key, _info(source, settings, key, prepared))
            return open_split_dir(entry, cache.safe_name(source.name))
        except OSError as err:
            warnings.warn(f"cannot write the split cache ({err}); keeping the split in memory", stacklevel=2)
    return _in_memory(source.name, source.origin, key, prepared)


def prepare_to(name_or_path, out, name: str | None = None, data_dir=None, **options) -> Path:
    """Write a dataset's split in the split-file format (with NAME.info.json) to directory `out`."""
    settings = options.pop("settings", None) or SplitSettings()
    download = options.pop("download", True)
    synthetic = options.pop("synthetic", None)
    csv_options = {"user_col": "user", "item_col": "item", "rating_col": "rating", "time_col": "timestamp", "sep": None, **options}
    source = _resolve(name_or_path, data_dir, download, synthetic, csv_options)
    if isinstance(source, Path):
        raise DataError(f"{source}: already a split directory")
    prepared = prepare(source.read(), settings)
    name = cache.safe_name(name or source.name)
    info = _info(source, settings, cache.cache_key(source.checksum, settings), prepared)
    write_split(Path(out), name, prepared.parts, info)
    return Path(out)
