"""Raw rating logs (user, item, rating, timestamp) from MovieLens files or any named-column CSV."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lossgen.data.errors import DataError, where
from lossgen.data.tables import numeric_column, read_text_table, require_columns

ML100K_COLUMNS = ["user", "item", "rating", "timestamp"]


@dataclass(frozen=True)
class Ratings:
    """One row per interaction, in file order (file order breaks timestamp ties later).

    `checksum` identifies the content (sha256 of the source file, or of the generator's output)
    and keys the cache of prepared splits.
    """

    users: np.ndarray  # int64 raw ids
    items: np.ndarray  # int64 raw ids
    ratings: np.ndarray  # float64
    timestamps: np.ndarray  # int64
    source: str
    checksum: str

    def __post_init__(self) -> None:
        n = len(self.users)
        if not (len(self.items) == len(self.ratings) == len(self.timestamps) == n):
            raise ValueError("Ratings columns must have equal lengths")
        if n == 0:
            raise DataError(f"{self.source}: no interactions")

    def __len__(self) -> int:
        return len(self.users)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_movielens(path: Path) -> Ratings:
    """MovieLens `u.data`: tab-separated user, item, rating, timestamp, no header.

    Stricter than a generic CSV, because a damaged copy would otherwise still be used as
    MovieLens: every line must have exactly 4 fields, the file must end with a line end (a file
    cut mid-line may keep 4 fields with a truncated timestamp), ids must be positive integers
    and ratings lie in 1..5. Each problem is a `DataError` naming the file and line.
    """
    path = Path(path)
    _check_movielens_lines(path)
    frame = read_text_table(path, "\t", names=ML100K_COLUMNS)
    cols = {c: numeric_column(frame, c, path, integer=c != "rating", first_line=1) for c in ML100K_COLUMNS}
    for col, what in (("user", "user id"), ("item", "item id")):
        bad = cols[col] < 1
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{where(path, 1 + i)}: {what} {cols[col][i]} is not positive (MovieLens ids start at 1)")
    bad = (cols["rating"] < 1) | (cols["rating"] > 5)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{where(path, 1 + i)}: rating {frame['rating'].iloc[i].strip()} is outside 1..5")
    return Ratings(cols["user"], cols["item"], cols["rating"], cols["timestamp"], str(path), sha256_file(path))


def _check_movielens_lines(path: Path) -> None:
    """Exactly 4 tab-separated fields on every line, and a line end after the last one."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    data = path.read_bytes()
    if not data:
        raise DataError(f"{path}: empty file")
    lines = data.split(b"\n")
    cut = not data.endswith(b"\n")
    if not cut:
        lines.pop()  # the empty string after the final line end
    fields = np.fromiter((line.count(b"\t") + 1 for line in lines), dtype=np.int64, count=len(lines))
    blank = np.fromiter((not line.strip() for line in lines), dtype=bool, count=len(lines))
    bad = blank | (fields != len(ML100K_COLUMNS))
    if bad.any():
        i = int(np.argmax(bad))
        if cut and i == len(lines) - 1:
            raise DataError(f"{where(path, 1 + i)}: the last line is cut short ({fields[i]} of 4 fields and no line end): "
                            f"the file is incomplete; copy or download it again")
        problem = "empty line" if blank[i] else f"{fields[i]} fields, expected 4 (user, item, rating, timestamp; tab-separated)"
        raise DataError(f"{where(path, 1 + i)}: {problem}")
    if cut:
        raise DataError(f"{where(path, len(lines))}: the file ends without a line end, so its last line may be cut "
                        f"short: the file is incomplete; copy or download it again")


def read_ratings_csv(
    path: Path,
    *,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str = "rating",
    time_col: str | None = "timestamp",
    sep: str | None = None,
) -> Ratings:
    """A ratings file with a header row naming its columns.

    `sep` defaults by extension (tab for .tsv/.tab/.data, comma otherwise). `time_col=None`
    means the file has no timestamps: file order is then the time order.
    """
    path = Path(path)
    if sep is None:
        sep = "\t" if path.suffix.lower() in {".tsv", ".tab", ".data"} else ","
    frame = read_text_table(path, sep)
    roles = {"user": user_col, "item": item_col, "rating": rating_col}
    if time_col:
        roles["timestamp"] = time_col
    require_columns(frame, path, roles)
    users = numeric_column(frame, user_col, path, integer=True, first_line=2)
    items = numeric_column(frame, item_col, path, integer=True, first_line=2)
    ratings = numeric_column(frame, rating_col, path, integer=False, first_line=2)
    if time_col:
        times = numeric_column(frame, time_col, path, integer=True, first_line=2)
    else:
        times = np.zeros(len(frame), dtype=np.int64)
    return Ratings(users, items, ratings, times, str(path), csv_identity(path, user_col, item_col, rating_col, time_col, sep))


def csv_identity(path: Path, user_col: str, item_col: str, rating_col: str, time_col: str | None, sep: str | None) -> str:
    """Checksum of a ratings CSV together with its column roles: they change what the same bytes mean."""
    if sep is None:
        sep = "\t" if Path(path).suffix.lower() in {".tsv", ".tab", ".data"} else ","
    return hashlib.sha256(f"{sha256_file(path)}|{user_col}|{item_col}|{rating_col}|{time_col}|{sep}".encode()).hexdigest()
