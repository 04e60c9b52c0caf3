"""Reading delimited text into validated numeric columns.

Every check reports the first bad cell by file and line number, because a message such as
"could not convert string to float" on a 100,000-row file is useless to the person who has to
fix the file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from lossgen.data.errors import DataError, where

_NA_TEXT = {"", "nan", "NaN", "NAN", "na", "NA", "N/A", "null", "NULL", "None"}


def read_text_table(path: Path, sep: str, names: list[str] | None = None, allow_empty: bool = False,
                    usecols: tuple[str, ...] | None = None) -> pd.DataFrame:
    """All cells as strings; `names` for header-less files (then line 1 is data).

    `usecols`: keep only these header columns (the others are never converted or kept; a
    missing one is then reported by `require_columns`).

    `allow_empty`: a header with no rows is a valid (empty) table, as for a validation split
    where no user qualifies.

    Strings first, numbers later: pandas' own conversion would silently turn a typo into NaN or
    a float column, and lose the row it came from.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    try:
        frame = pd.read_csv(
            path, sep=sep, header=None if names else 0, names=names, dtype=str,
            keep_default_na=False, na_filter=False, quoting=csv.QUOTE_MINIMAL, engine="c",
            usecols=None if usecols is None else (lambda c: str(c).strip() in usecols),
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot parse as {sep!r}-separated text ({_first_line(err)})") from None
    if names is None:
        frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0 and not allow_empty:
        raise DataError(f"{path}: empty file (no data rows)")
    return frame


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def require_columns(frame: pd.DataFrame, path: Path, wanted: dict[str, str]) -> None:
    """`wanted` maps a role (user, item, ...) to the column name that must be present."""
    missing = [f"{col!r} ({role})" for role, col in wanted.items() if col not in frame.columns]
    if missing:
        have = ", ".join(repr(c) for c in frame.columns)
        raise DataError(f"{where(path)}: missing column {', '.join(missing)}; the file has {have}")


def numeric_column(frame: pd.DataFrame, col: str, path: Path, *, integer: bool, first_line: int) -> np.ndarray:
    """The column as int64 (ids, timestamps) or float64 (ratings), or a `DataError` at the first bad row.

    `first_line` is the file line of data row 0 (2 with a header, 1 without).
    """
    text = frame[col].fillna("").astype(str).str.strip()
    parsed = pd.to_numeric(text, errors="coerce")
    if integer and parsed.dtype.kind in "iu":
        return parsed.to_numpy(dtype=np.int64)  # exact: no detour through float64
    values = parsed.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if integer:
        bad |= (np.floor(values) != values) | (np.abs(values) >= 2**53)
    if bad.any():
        i = int(np.argmax(bad))
        cell = text.iloc[i]
        if cell in _NA_TEXT:
            problem = f"missing value (NaN) in column {col!r}"
        elif np.isinf(values[i]):
            problem = f"column {col!r} is infinite: {cell!r}"
        elif np.isnan(values[i]):
            problem = f"column {col!r} is not a number: {cell!r}"
        else:
            problem = f"column {col!r} must be an integer, got {cell!r}"
        raise DataError(f"{where(path, first_line + i)}: {problem}")
    return values.astype(np.int64) if integer else values
