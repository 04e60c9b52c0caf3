"""`lossgen data stats|prepare`: inspect a dataset (the paper's Table 3 row) and write its split.

Registered on the main app by `lossgen/cli.py`. Data problems are user errors: one line, exit 2.
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from lossgen.cli.common import console, fail, warn
from lossgen.data import SplitSettings, load, prepare_to
from lossgen.data.cache import safe_name
from rich.table import Table

data_app = typer.Typer(no_args_is_help=True, help="Datasets: statistics and prepared splits.",
                       context_settings={"help_option_names": ["-h", "--help"]})

DATASET_ARG = typer.Argument(..., help="ml-100k, synthetic[:users=N,items=N,density=F,seed=N], a split directory "
                             "(DIR:unknown=drop or DIR:unknown=extend for validation/test ids train never saw; "
                             "DIR:name=NAME to pick one of several splits) or a ratings CSV.")
# Options shared by `stats` and `prepare`: how a dataset is read and split.
THRESHOLD_OPT = typer.Option(3.0, help="Label 1 iff rating > threshold.")
MIN_INTERACTIONS_OPT = typer.Option(5, help="Users with fewer interactions stay wholly in train.")
DOWNLOAD_OPT = typer.Option(True, help="Download ml-100k from GroupLens when it is not found.")
USER_COL_OPT = typer.Option("user", help="Ratings CSV: user id column.")
ITEM_COL_OPT = typer.Option("item", help="Ratings CSV: item id column.")
RATING_COL_OPT = typer.Option("rating", help="Ratings CSV: rating column.")
TIME_COL_OPT = typer.Option("timestamp", help="Ratings CSV: timestamp column ('' = file order).")
SEP_OPT = typer.Option(None, help="Ratings CSV: separator (default: tab for .tsv, else comma).")
DATA_DIR_OPT = typer.Option(None, "--data-dir", help="Directory holding ml-100k/u.data (else LOSSGEN_DATA_DIR, then the cache).")


@contextmanager
def _user_errors():
    """DataError/ValueError -> one line and exit 2; warnings -> one line each on the console."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except (ValueError, OSError) as err:
            fail(" ".join(str(err).split()))
        finally:
            for w in caught:
                warn(str(w.message))


def _csv_options(user_col, item_col, rating_col, time_col, sep) -> dict:
    return {"user_col": user_col, "item_col": item_col, "rating_col": rating_col,
            "time_col": time_col or None, "sep": {"tab": "\t", "\\t": "\t"}.get(sep, sep) if sep else None}


@data_app.command("stats")
def stats(
    dataset: str = DATASET_ARG,
    data_dir: Optional[Path] = DATA_DIR_OPT,
    threshold: float = THRESHOLD_OPT,
    min_interactions: int = MIN_INTERACTIONS_OPT,
    download: bool = DOWNLOAD_OPT,
    user_col: str = USER_COL_OPT,
    item_col: str = ITEM_COL_OPT,
    rating_col: str = RATING_COL_OPT,
    time_col: str = TIME_COL_OPT,
    sep: Optional[str] = SEP_OPT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Print the dataset's Table 3 row (users, items, positive, negative, density) and its split sizes."""

    with _user_errors():
        ds = load(dataset, data_dir, settings=SplitSettings(threshold, min_interactions), download=download,
                  **_csv_options(user_col, item_col, rating_col, time_col, sep))
    s = ds.statistics
    if as_json:
        print(json.dumps({"dataset": ds.name, **s.to_dict(), "density": s.density, "source": ds.source, "key": ds.key}))
        return
    table = Table(title=f"{ds.name} (Table 3)")
    row = s.table3_row(ds.name)
    for col in row:
        table.add_column(col, justify="left" if col == "dataset" else "right")
    table.add_row(*row.values())
    console.print(table)
    splits = Table(title="positive leave-one-out split")
    for col in ("train", "validation", "test"):
        splits.add_column(col, justify="right")
    splits.add_row(f"{s.train:,}", f"{s.validation:,}", "not read" if s.test is None else f"{s.test:,}")
    console.print(splits)
    console.print(f"source: {ds.source}", highlight=False, soft_wrap=True)


@data_app.command("prepare")
def prepare(
    dataset: str = DATASET_ARG,
    out: Path = typer.Option(..., "--out", help="Directory to write NAME.{train,validation,test}.csv and NAME.info.json."),
    name: Optional[str] = typer.Option(None, help="NAME of the split files (default: the dataset's name)."),
    data_dir: Optional[Path] = DATA_DIR_OPT,
    threshold: float = THRESHOLD_OPT,
    min_interactions: int = MIN_INTERACTIONS_OPT,
    download: bool = DOWNLOAD_OPT,
    user_col: str = USER_COL_OPT,
    item_col: str = ITEM_COL_OPT,
    rating_col: str = RATING_COL_OPT,
    time_col: str = TIME_COL_OPT,
    sep: Optional[str] = SEP_OPT,
) -> None:
    """Write the dataset's split in the split-file format (tab-separated uid, iid, label) with NAME.info.json.
    A split directory is written again with contiguous ids (e.g. a foreign split, given as DIR:unknown=extend)."""

    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a directory")
    with _user_errors():
        written = prepare_to(dataset, out, name=name, data_dir=data_dir, settings=SplitSettings(threshold, min_interactions),
                             download=download, **_csv_options(user_col, item_col, rating_col, time_col, sep))
    stem = safe_name(name) if name else None
    files = sorted(p.name for p in written.iterdir() if p.suffix in (".csv", ".json") and (stem is None or p.name.startswith(stem + ".")))
    console.print(f"wrote {', '.join(files)} to {written}", highlight=False, soft_wrap=True)
