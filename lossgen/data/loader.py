"""`load(name_or_path)`: resolve a dataset name or path to a prepared `Dataset`."""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from lossgen.data import cache, sources
from lossgen.data.dataset import Dataset, Split
from lossgen.data.errors import DataError
from lossgen.data.ratings import Ratings, csv_identity, read_movielens, read_ratings_csv, sha256_file
from lossgen.data.sources import ML100K, locate_ml100k, search_dirs
from lossgen.data.split import PARTS, Part, Prepared, SplitSettings, prepare
from lossgen.data.splitfiles import (
    FORMAT, IdSpace, find_name, info_path, is_split_dir, map_ids, part_path, read_info, read_raw_ids, read_raw_part,
    split_names, write_split,
)
from lossgen.data.stats import Statistics
from lossgen.data.synthetic import SyntheticConfig, generate

DATASET_HELP = ("ml-100k, synthetic[:users=N,items=N,density=F,seed=N,...], a split directory "
                "(DIR[:unknown=drop|extend,name=NAME]) or a ratings CSV")
ML100K_NAMES = (ML100K, "ml100k", "movielens-100k")
# What a split directory given by the user does with validation/test ids that train never saw.
UNKNOWN_MODES = ("refuse", "drop", "extend")
SPEC_OPTIONS = {"unknown": "refuse|drop|extend", "name": "NAME"}  # DIR:unknown=extend,name=NAME
_SPEC_TAIL = re.compile(r"\s*[A-Za-z_]+\s*=[^,=:]*(?:,\s*[A-Za-z_]+\s*=[^,=:]*)*")


# ---------------------------------------------------------------- resolving names to rating sources


class _Source:
    """A rating log not yet read: its name, identity (for the cache key) and a reader.

    `origin`: where it comes from, for people; `path`: the absolute path of the file (None for
    generated data)."""

    def __init__(self, name: str, checksum: str, read, origin: str, path: Path | None = None,
                 warning: str | None = None) -> None:
        self.name, self.checksum, self.read, self.origin, self.path = name, checksum, read, origin, path
        self.warning = warning  # given once the data is known to be usable (a refused file gets one line: its error)

    def warn(self) -> None:
        if self.warning:
            warnings.warn(self.warning, stacklevel=3)


@dataclass(frozen=True)
class _SplitDir:
    """A split directory to open, with the options given in its dataset spec."""

    path: Path
    options: dict


def unknown_mode(value: str | None) -> str:
    """refuse (the default; "error" is the library's older name for it), drop or extend."""
    mode = "refuse" if value in (None, "error") else str(value).strip().lower()
    if mode not in UNKNOWN_MODES:
        raise DataError(f"unknown={value!r}: choose refuse, drop or extend")
    return mode


def _named(options: dict) -> str:
    return "the dataset options " + ", ".join(f"{k}=" for k in options)


def split_spec(text: str) -> tuple[str, dict]:
    """A dataset spec without its split-directory options, and the options: `DIR:unknown=extend,name=NAME`
    -> (`DIR`, {"unknown": "extend", "name": "NAME"}). A path that exists as written has no options."""
    if text.split(":", 1)[0].lower() == "synthetic" or Path(text).expanduser().exists():
        return text, {}
    base, sep, tail = text.rpartition(":")
    if not sep or not base or not _SPEC_TAIL.fullmatch(tail):
        return text, {}
    options = {}
    for item in tail.split(","):
        key, _, value = (part.strip() for part in item.partition("="))
        if key not in SPEC_OPTIONS:
            raise DataError(f"{text}: unknown dataset option {key!r} (a split directory takes "
                            f"{', '.join(f'{k}={v}' for k, v in SPEC_OPTIONS.items())})")
        if not value:
            raise DataError(f"{text}: the option {key} needs a value ({key}={SPEC_OPTIONS[key]})")
        if key == "unknown" and value.lower() not in (*UNKNOWN_MODES, "error"):
            raise DataError(f"{text}: unknown={value} is not a mode; choose unknown=refuse, drop or extend")
        options[key] = unknown_mode(value) if key == "unknown" else value
    return base, options


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
    warning = None
    if by_name and checksum != sources.ML100K_SHA256:
        warning = f"{path}: sha256 differs from the official MovieLens 100K u.data; using it anyway"
    path = Path(path).absolute()
    return _Source(ML100K, checksum, lambda: read_movielens(path), str(path), path, warning)


def _resolve(name_or_path, data_dir, download: bool, synthetic, csv_options: dict, origin=None) -> _Source | _SplitDir:
    """A `_Source` for rating logs, or a split directory. `origin`: the path an earlier load of
    the same spec resolved to (`Dataset.origin`), read instead of searching."""
    text = str(name_or_path)
    base, options = split_spec(text)
    by_name = base.lower() in ML100K_NAMES
    if by_name and options:
        raise DataError(f"{text}: {_named(options)} only apply to a split directory, not to {base}")
    if origin is not None and text.split(":", 1)[0].lower() != "synthetic":
        found = Path(origin)
        if not found.exists():
            raise DataError(f"{found}: not found, though the data was read from there before")
        candidates = [found]
    elif by_name:
        return _ml100k_source(locate_ml100k(data_dir, download=download), by_name=True)
    else:
        # also looked up in the data dirs: a relative path as written, an absolute one (moved?) by its last part
        path = Path(base).expanduser()
        candidates = [path] + [d / (path.name if path.is_absolute() else base) for d in search_dirs(data_dir)]
    if text.split(":", 1)[0].lower() == "synthetic":
        config = synthetic if isinstance(synthetic, SyntheticConfig) else parse_synthetic(text)
        if isinstance(synthetic, dict):
            config = SyntheticConfig(**{**config.to_dict(), **synthetic})
        ratings = generate(config)
        return _Source("synthetic", ratings.checksum, lambda: ratings, ratings.source)
    # A path: a split directory, an ml-100k folder or u.data, or a ratings CSV (also looked up in the data dirs).
    for p in candidates:
        if is_split_dir(p):
            return _SplitDir(p.absolute(), options)
        if options and (p.is_dir() or p.is_file()):
            raise DataError(f"{text}: {_named(options)} only apply to a split directory "
                            f"(NAME.train.csv, NAME.validation.csv, NAME.test.csv), and {p} is not one")
        if p.is_dir() and (p / "u.data").is_file():
            return _ml100k_source(p / "u.data", by_name=by_name)
        if p.is_file():
            if p.name == "u.data":
                return _ml100k_source(p, by_name=by_name)
            opts = {"user_col": "user", "item_col": "item", "rating_col": "rating", "time_col": "timestamp", "sep": None, **csv_options}
            p = p.absolute()
            return _Source(p.stem.removesuffix(".ratings") or "ratings", csv_identity(p, **opts),
                           lambda p=p: read_ratings_csv(p, **opts), str(p), p)
    if candidates[0].is_dir():
        raise DataError(f"{candidates[0]}: a directory without NAME.train.csv or u.data")
    if options or "/" in base or "\\" in base:
        looked = ", ".join(str(p) for p in dict.fromkeys(candidates))
        raise DataError(f"{text}: not found (looked for {looked})")
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


def open_split_dir(directory, name: str | None = None, *, unknown: str = "refuse") -> Dataset:
    """A split directory as a `Dataset`: train and validation now, test only through `open_test()`.

    With `NAME.info.json` (lossgen's own files) the id space is the declared one. Without it (a
    foreign directory) the id space depends on `unknown`:
    - `refuse` (also spelled `error`): the ids of the train file; an id in validation or test
      outside it is a `DataError` naming file, row and id;
    - `drop`: the same id space; such rows are dropped with a warning;
    - `extend`: the ids of all three files, read from their id columns (the test file's labels
      are still read only by `open_test()`).
    `name` picks one split when the directory holds several.
    """
    split = _SplitReader(directory, name, unknown)
    train = split.read("train")
    validation = split.read("validation")
    info, user_ids, item_ids = split.info, split.user_ids, split.item_ids
    if info is not None:
        stats = Statistics.from_dict(info["statistics"])
        source = info.get("source", str(split.directory))
    else:
        positive = int(train.labels.sum() + validation.labels.sum())
        stats = Statistics(len(user_ids), len(item_ids), positive, len(train) + len(validation) - positive,
                           len(train), len(validation), None)
        source = str(split.directory)
    return Dataset(info["name"] if info else split.name, train, validation, len(user_ids), len(item_ids), stats,
                   user_ids, item_ids, source, split.key(), split.directory, lambda: split.read("test"))


class _SplitReader:
    """The parts of one split directory as `Split`s of contiguous ids, in its id space.

    Parsing the id space reads train (and, with `unknown="extend"`, validation and the id columns
    of test); each part's rows are read by `read(part)`, when asked for.
    """

    def __init__(self, directory, name: str | None, unknown: str) -> None:
        self.mode = mode = unknown_mode(unknown)
        self.directory = directory = Path(directory)
        self.name = name = find_name(directory, name)
        for part in PARTS:
            if not part_path(directory, name, part).is_file():
                raise DataError(f"{part_path(directory, name, part)}: file not found (a split needs train, validation and test)")
        self.info = info = read_info(directory, name)
        if info is not None and mode != "refuse":
            raise DataError(f"{info_path(directory, name)} declares the id space of this split, so unknown={mode} does "
                            f"not apply (it is for split directories without NAME.info.json)")
        tr_u, tr_i, tr_l = read_raw_part(part_path(directory, name, "train"), allow_empty=False)
        self.raw = {"train": (tr_u, tr_i, tr_l)}
        if info is not None:
            self.user_ids = np.asarray(info["user_ids"], dtype=np.int64)
            self.item_ids = np.asarray(info["item_ids"], dtype=np.int64)
            self.space = IdSpace(np.arange(len(self.user_ids)), np.arange(len(self.item_ids)), declared=True)
        else:
            users, items = [tr_u], [tr_i]
            if mode == "extend":
                self.raw["validation"] = read_raw_part(part_path(directory, name, "validation"))
                test_u, test_i = read_raw_ids(part_path(directory, name, "test"))  # ids only: no labels
                users += [self.raw["validation"][0], test_u]
                items += [self.raw["validation"][1], test_i]
            self.user_ids, self.item_ids = np.unique(np.concatenate(users)), np.unique(np.concatenate(items))
            self.space = IdSpace(self.user_ids, self.item_ids, declared=False)
        spec = f"{directory}:" + (f"name={name}," if len(split_names(directory)) > 1 else "")
        self.hint = "" if info is not None else (
            f"; to use this split, give the dataset as {spec}unknown=drop (drop such rows) or {spec}unknown=extend "
            f"(number the ids of train, validation and test)")

    def read(self, part: str) -> Split:
        path = part_path(self.directory, self.name, part)
        users, items, labels = self.raw.pop(part) if part in self.raw else read_raw_part(path)
        if self.info is not None and len(users) != self.info["rows"][part]:
            raise DataError(f"{path}: {len(users)} rows, but {self.name}.info.json declares {self.info['rows'][part]} "
                            f"(corrupt split)")
        u, i, keep = map_ids(path, users, items, self.space, "drop" if self.mode == "drop" else "error", self.hint)
        if not keep.all():
            warnings.warn(f"{path}: dropped {int((~keep).sum())} rows with ids never seen in train (unknown=drop)",
                          stacklevel=3)
        return Split.from_numpy(u, i, labels[keep])

    def key(self) -> str:
        if self.info is not None:
            return self.info.get("key", "")
        return _foreign_key(self.directory, self.name, self.mode, self.user_ids, self.item_ids)


def _foreign_key(directory: Path, name: str, mode: str, user_ids: np.ndarray, item_ids: np.ndarray) -> str:
    """The split key of a directory without NAME.info.json.

    `refuse` keeps the key lossgen always gave such a directory (its train file's sha256), so runs
    made before the other modes existed still match; `drop` and `extend` change the data, so
    their key also covers the validation file, the mode and the id space.
    """
    train = sha256_file(part_path(directory, name, "train"))
    if mode == "refuse":
        return train[:16]
    blob = json.dumps({"format": FORMAT, "train": train, "validation": sha256_file(part_path(directory, name, "validation")),
                       "unknown": mode, "users": hashlib.sha256(np.ascontiguousarray(user_ids, dtype=np.int64)).hexdigest(),
                       "items": hashlib.sha256(np.ascontiguousarray(item_ids, dtype=np.int64)).hexdigest()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _split_options(source: _SplitDir, unknown: str | None, split_name: str | None) -> tuple[str | None, str]:
    """(name, unknown mode) from the spec's options and the keyword arguments (which must agree)."""
    given = {"unknown": None if unknown is None else unknown_mode(unknown), "name": split_name}
    for key, value in given.items():
        if value is not None and key in source.options and source.options[key] != value:
            raise DataError(f"{source.path}: {key}={source.options[key]} in the dataset, but {key}={value} given")
    merged = {**source.options, **{k: v for k, v in given.items() if v is not None}}
    return merged.get("name"), merged.get("unknown", "refuse")


def _no_split_options(source: _Source, unknown: str | None, split_name: str | None) -> None:
    """`unknown=drop|extend` and `split_name` mean nothing for a rating log: say so (refuse is a no-op)."""
    if (unknown is not None and unknown_mode(unknown) != "refuse") or split_name is not None:
        raise DataError(f"{source.origin}: unknown= and split_name= apply to a split directory only")


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
    unknown: str | None = None,
    split_name: str | None = None,
    origin: str | Path | None = None,
) -> Dataset:
    """A prepared dataset by name or path: see `DATASET_HELP`.

    Rating logs are split as the paper (`settings`) and the split is cached (see
    `lossgen.data.cache`); the returned dataset then reads its test split from that cache entry.
    `user_col` ... `sep` describe a ratings CSV; `unknown` (refuse, drop, extend) and
    `split_name` apply to a split directory (as do `DIR:unknown=...,name=...` in the spec).
    `origin`: the `Dataset.origin` of an earlier load of the same spec: read from there, without
    searching the data directories (a `DataError` when nothing is there any more).
    """
    settings = settings or SplitSettings()
    csv_options = {"user_col": user_col, "item_col": item_col, "rating_col": rating_col, "time_col": time_col, "sep": sep}
    source = _resolve(name_or_path, data_dir, download, synthetic, csv_options, origin)
    if isinstance(source, _SplitDir):
        name, mode = _split_options(source, unknown, split_name)
        ds = open_split_dir(source.path, name, unknown=mode)
        ds.source = ds.origin = str(source.path)
        return ds
    _no_split_options(source, unknown, split_name)
    key = cache.cache_key(source.checksum, settings)
    ds = None
    if cache_enabled:
        hit = cache.lookup(source.name, key)
        if hit is not None:
            ds = open_split_dir(hit, cache.safe_name(source.name))
    if ds is None:
        ratings: Ratings = source.read()
        prepared = prepare(ratings, settings)
        if cache_enabled:
            try:
                entry = cache.store(prepared, source.name, key, _info(source, settings, key, prepared))
                ds = open_split_dir(entry, cache.safe_name(source.name))
            except OSError as err:
                warnings.warn(f"cannot write the split cache ({err}); keeping the split in memory", stacklevel=2)
        if ds is None:
            ds = _in_memory(source.name, source.origin, key, prepared)
    source.warn()
    # the file read now, not whichever copy (or download) first filled the cache entry
    ds.source, ds.origin = source.origin, None if source.path is None else str(source.path)
    return ds


def prepare_to(name_or_path, out, name: str | None = None, data_dir=None, **options) -> Path:
    """Write a dataset's split in the split-file format (with NAME.info.json) to directory `out`.

    A split directory is written again with contiguous ids and an info file: this is how a
    foreign split (the AutoLossGen/NCR authors' files) becomes one lossgen reads without options
    (`unknown` and `split_name` as in `load`).
    """
    settings = options.pop("settings", None) or SplitSettings()
    download = options.pop("download", True)
    synthetic = options.pop("synthetic", None)
    unknown, split_name = options.pop("unknown", None), options.pop("split_name", None)
    csv_options = {"user_col": "user", "item_col": "item", "rating_col": "rating", "time_col": "timestamp", "sep": None, **options}
    source = _resolve(name_or_path, data_dir, download, synthetic, csv_options)
    if isinstance(source, _SplitDir):
        return _rewrite_split(source, Path(out), name, *_split_options(source, unknown, split_name))
    _no_split_options(source, unknown, split_name)
    prepared = prepare(source.read(), settings)
    source.warn()
    name = cache.safe_name(name or source.name)
    info = _info(source, settings, cache.cache_key(source.checksum, settings), prepared)
    write_split(Path(out), name, prepared.parts, info)
    return Path(out)


def _rewrite_split(source: _SplitDir, out: Path, name: str | None, split_name: str | None, mode: str) -> Path:
    """A split directory written again, with contiguous ids and NAME.info.json.

    A copy of files, not an evaluation: the test part is read here to be written out, never
    through `Dataset.open_test()` (which only Phase III calls)."""
    split = _SplitReader(source.path, split_name, mode)
    new = cache.safe_name(name or split.name)
    if out.resolve() == source.path.resolve() and new == split.name:
        raise DataError(f"--out {out} is the split directory itself; write to another directory (or give another --name)")
    parts = {}
    for p in PARTS:
        v = split.read(p)
        parts[p] = Part(v.users.numpy(), v.items.numpy(), v.labels.numpy().astype(np.int8))
    info = split.info
    if info is None:
        labels = np.concatenate([p.labels for p in parts.values()])
        positive = int(labels.sum())
        stats = Statistics(len(split.user_ids), len(split.item_ids), positive, len(labels) - positive,
                           len(parts["train"]), len(parts["validation"]), len(parts["test"]))
        info = {"format": FORMAT, "name": split.name, "source": str(source.path),
                "source_sha256": sha256_file(part_path(source.path, split.name, "train")),
                "settings": {"unknown": split.mode}, "key": split.key(),
                "n_users": len(split.user_ids), "n_items": len(split.item_ids), "statistics": stats.to_dict(),
                "user_ids": split.user_ids.tolist(), "item_ids": split.item_ids.tolist()}
    info = {**info, "rows": {p: len(parts[p]) for p in PARTS}}
    write_split(out, new, parts, info)
    return out
