"""The split-file format: `NAME.train.csv`, `NAME.validation.csv`, `NAME.test.csv`.

Tab-separated `uid iid label` with a header, the format the AutoLossGen and NCR authors publish
(extra columns, e.g. their `time`, are ignored on reading). lossgen also writes `NAME.info.json`
beside them: the id space (`n_users`, `n_items` and the raw ids), the statistics and where the
split came from. With it, ids in the files are contiguous 0..n-1 and are checked against that
declared space; without it (a foreign directory), the id space is the ids seen in train.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lossgen.util.atomic import write_text_atomic
from lossgen.data.errors import DataError, where
from lossgen.data.split import PARTS, Part
from lossgen.data.tables import numeric_column, read_text_table, require_columns

FORMAT = "lossgen-split/1"
COLUMNS = ("uid", "iid", "label")


def part_path(directory: Path, name: str, part: str) -> Path:
    return Path(directory) / f"{name}.{part}.csv"


def info_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{name}.info.json"


def split_names(directory: Path) -> list[str]:
    return sorted(p.name[: -len(".train.csv")] for p in Path(directory).glob("*.train.csv"))


def find_name(directory: Path, name: str | None = None) -> str:
    """The NAME of the one `NAME.train.csv` in a directory (or check that `name` is one of them)."""
    directory = Path(directory)
    names = split_names(directory)
    if not names:
        raise DataError(f"{directory}: no NAME.train.csv (a split directory holds NAME.train.csv, NAME.validation.csv, NAME.test.csv)")
    if name is not None:
        if name not in names:
            raise DataError(f"{directory}: no split named {name!r} (no {name}.train.csv; the splits there: {', '.join(names)})")
        return name
    if len(names) > 1:
        raise DataError(f"{directory}: several splits ({', '.join(names)}); choose one by giving the dataset as "
                        f"{directory}:name=NAME")
    return names[0]


def is_split_dir(path: Path) -> bool:
    return Path(path).is_dir() and any(Path(path).glob("*.train.csv"))


# ---------------------------------------------------------------- writing


def format_part(part: Part) -> str:
    frame = pd.DataFrame({"uid": part.users, "iid": part.items, "label": part.labels.astype(np.int64)})
    return frame.to_csv(sep="\t", index=False, lineterminator="\n")


def write_split(directory: Path, name: str, parts: dict[str, Part], info: dict) -> None:
    """The three part files and NAME.info.json, each written atomically (info last)."""
    for part in PARTS:
        write_text_atomic(part_path(directory, name, part), format_part(parts[part]))
    write_text_atomic(info_path(directory, name), json.dumps(info, indent=1) + "\n")


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class IdSpace:
    """How ids in a split file map to contiguous ids.

    `declared`: ids are already contiguous and must lie in [0, n) (lossgen's own files).
    Otherwise raw ids map through the sorted arrays `user_ids` / `item_ids` (seen in train).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    declared: bool

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


def read_info(directory: Path, name: str) -> dict | None:
    path = info_path(directory, name)
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable info file ({str(err).splitlines()[0]})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise DataError(f"{path}: not a {FORMAT} info file")
    for key in ("n_users", "n_items", "user_ids", "item_ids"):
        if key not in info:
            raise DataError(f"{path}: missing {key!r}")
    if len(info["user_ids"]) != info["n_users"] or len(info["item_ids"]) != info["n_items"]:
        raise DataError(f"{path}: n_users/n_items disagree with the id lists")
    return info


def read_raw_part(path: Path, allow_empty: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uid, iid (int64, as written) and label (int8, 0 or 1) of one split file (header-only = no rows)."""
    frame = read_text_table(path, "\t", allow_empty=allow_empty)
    require_columns(frame, path, {"user": "uid", "item": "iid", "label": "label"})
    users = numeric_column(frame, "uid", path, integer=True, first_line=2)
    items = numeric_column(frame, "iid", path, integer=True, first_line=2)
    labels = numeric_column(frame, "label", path, integer=False, first_line=2)
    bad = (labels != 0) & (labels != 1)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{where(path, 2 + i)}: label must be 0 or 1, got {frame['label'].iloc[i].strip()!r}")
    return users, items, labels.astype(np.int8)


def read_raw_ids(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uid and iid (int64, as written) of one split file, without its labels.

    Only the two id columns are parsed and kept, so sizing an id space from the test file
    (`unknown="extend"`) does not read its labels.
    """
    frame = read_text_table(path, "\t", allow_empty=True, usecols=("uid", "iid"))
    require_columns(frame, path, {"user": "uid", "item": "iid"})
    return (numeric_column(frame, "uid", path, integer=True, first_line=2),
            numeric_column(frame, "iid", path, integer=True, first_line=2))


def map_ids(path: Path, users: np.ndarray, items: np.ndarray, space: IdSpace, unknown: str = "error",
            hint: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous ids for one file's rows, and the mask of rows kept.

    An id outside the space is a `DataError` naming file, row and id (and ending with `hint`:
    what the user can do about it); with `unknown="drop"` such rows are dropped instead (for
    foreign splits whose validation/test mention ids train never saw).
    """
    if space.declared:
        u, i = users, items
        bad_u = (users < 0) | (users >= space.n_users)
        bad_i = (items < 0) | (items >= space.n_items)
    else:
        u = np.searchsorted(space.user_ids, users)
        i = np.searchsorted(space.item_ids, items)
        bad_u = (u >= space.n_users) | (space.user_ids[np.minimum(u, space.n_users - 1)] != users)
        bad_i = (i >= space.n_items) | (space.item_ids[np.minimum(i, space.n_items - 1)] != items)
    bad = bad_u | bad_i
    if bad.any() and unknown != "drop":
        row = int(np.argmax(bad))
        kind, value = ("uid", users[row]) if bad_u[row] else ("iid", items[row])
        scope = f"outside the declared id space [0, {space.n_users if kind == 'uid' else space.n_items})" if space.declared else "never seen in train"
        raise DataError(f"{where(path, 2 + row)}: unknown {kind} {value} ({scope}){hint}")
    keep = ~bad
    return u[keep].astype(np.int64), i[keep].astype(np.int64), keep
