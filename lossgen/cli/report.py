"""`lossgen report`: a markdown summary, a CSV and PNG plots of a search run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from lossgen.cli.common import console, fail
from lossgen.reports.run import write_report



def report(
    run: Path = typer.Argument(..., help="The run directory (holding config.json and run.db)."),
    out: Optional[Path] = typer.Option(None, help="Output directory (default: RUN/report)."),
    top: int = typer.Option(10, help="How many distinct candidates the top-by-reward table lists."),
) -> None:
    """Write report.md, candidates.csv and PNG plots of a run (read-only on the run itself)."""

    if top < 1:
        fail("--top must be at least 1")
    try:
        paths = write_report(run, out, top)
    except ValueError as err:
        fail(str(err))
    except OSError as err:  # the output cannot be written (a read-only run: --out elsewhere reads it fine)
        fail(f"{err}{'; give --out DIR to write the report elsewhere' if out is None else ''}")
    for path in paths:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
