"""`lossgen export`: one candidate of a search run as a standalone PyTorch module and LaTeX."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from lossgen.cli.common import console, fail
from lossgen.reports.export import export_candidate, load_candidate



def export(
    run: Path = typer.Argument(..., help="Run directory of a search (holds config.json and run.db)."),
    candidate_id: str = typer.Argument(..., help="Candidate id, or a unique prefix of one."),
    out: Optional[Path] = typer.Option(None, help="Directory for <id>.py and <id>.tex (default: RUN/export)."),
) -> None:
    """Write a candidate loss as a torch-only nn.Module (<id>.py) and a LaTeX equation (<id>.tex)."""

    try:
        candidate = load_candidate(run, candidate_id)
        paths = export_candidate(run, candidate.id, out)
    except ValueError as err:
        fail(str(err))
    except OSError as err:  # the output cannot be written (a read-only run: --out elsewhere reads it fine)
        fail(f"{err}{'; give --out DIR to write the export elsewhere' if out is None else ''}")
    for path in paths:
        console.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"formula ({candidate.clamp} clamp): {candidate.formula}", markup=False, highlight=False,
                  soft_wrap=True)
