"""What every command shares: the console and the one-line error (exit 2, no traceback)."""

from __future__ import annotations

import torch
import typer
from rich.console import Console

from lossgen.runs import RunError, RunStore

console = Console()


def fail(message: str) -> None:
    """Print a one-line error and exit with status 2."""
    console.print(f"[red]error:[/red] {' '.join(str(message).split())}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def device(name: str) -> torch.device:
    try:
        dev = torch.device(name)
    except RuntimeError:
        fail(f"unknown device {name!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        fail("--device cuda, but no CUDA device is available")
    return dev


def open_run(path, readonly: bool = False) -> RunStore:
    """A run directory's store, or a one-line error."""
    try:
        return RunStore.open_readonly(path) if readonly else RunStore.open_existing(path)
    except RunError as err:
        fail(str(err))
