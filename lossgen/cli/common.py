"""What every command shares: the console and the one-line error (exit 2, no traceback)."""

from __future__ import annotations

import time

import torch
import typer
from rich.console import Console
from rich.markup import escape

from lossgen.phases.executor import ExecutorError, ExecutorSettings
from lossgen.runs import RunError, RunStore

EXECUTOR_HELP = ("Where the work runs: local (this machine's processes) or ray (a Ray cluster; "
                 'pip install "lossgen[ray]"). [default: local]')
RAY_ADDRESS_HELP = ("With --executor ray: the cluster to join (auto: the one `ray start --head` started here; "
                    "HOST:PORT). [default: start a private local Ray]")
WORKERS_HELP = "With --executor ray: Ray actors that share the work. [default: the cluster's CPUs]"

console = Console()
if not console.is_terminal:
    # Piped or redirected: tables at their natural width (never cut an id a user must copy, never
    # wrap at 80 columns) and no live display; long commands print `progress` lines instead.
    console = Console(width=100_000, soft_wrap=True)


class PlainProgress:
    """Progress for output that is not a terminal (a log file, a pipe): one plain line at most
    every `every` seconds (and the first one at once), since a live bar would print nothing."""

    def __init__(self, every: float = 30.0):
        self.every, self.last = every, None

    def __call__(self, text: str) -> None:
        if console.is_terminal:
            return
        now = time.monotonic()
        if self.last is None or now - self.last >= self.every:
            self.last = now
            console.print(f"{time.strftime('%H:%M:%S')} {text}", markup=False, highlight=False)


def warn(message: str) -> None:
    """One warning line, the same style for every command."""
    console.print(f"[yellow]warning:[/yellow] {escape(' '.join(str(message).split()))}", highlight=False,
                  soft_wrap=True)


def fail(message: str) -> None:
    """Print a one-line error and exit with status 2 (the message as written: brackets in it, such as
    `lossgen[ray]`, are not read as markup)."""
    console.print(f"[red]error:[/red] {escape(' '.join(str(message).split()))}", highlight=False, soft_wrap=True)
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


def executor_settings(executor: str | None, ray_address: str | None, workers: int | None = None) -> ExecutorSettings:
    """The executor options as library settings (one line and exit 2 when Ray is missing)."""
    try:
        return ExecutorSettings.from_options(executor, ray_address, workers)
    except ExecutorError as err:
        fail(str(err))
