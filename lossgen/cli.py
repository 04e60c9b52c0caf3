"""The `lossgen` command line (typer).

The pipeline: `search` (Phase I), `check` (Phase II), `evaluate` (Phase III), `run` (all three),
`report` and `export` of a run; `compare` (strategies head to head); `data stats|prepare`; and tools: `demo` (the paper's losses through
the compiled kernels), `formula` (canonical string, LaTeX and program of a loss) and `kernels
verify` (fuzz the kernels against the PyTorch reference). Commands live in the cli_*.py modules
and are registered here. User errors print one line and exit 2, without a traceback."""

from __future__ import annotations

import time

import torch
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,  # "[default: x]" in help is text
                  help="lossgen: automatic loss-function discovery.")
kernels_app = typer.Typer(no_args_is_help=True, help="The compiled loss-program kernels.")
app.add_typer(kernels_app, name="kernels")
from lossgen.cli_data import data_app  # noqa: E402  (the `data` commands live in cli_data.py)
app.add_typer(data_app, name="data")
from lossgen.cli_evaluate import evaluate  # noqa: E402  (Phase III lives in cli_evaluate.py)
app.command()(evaluate)
from lossgen.cli_export import export  # noqa: E402  (export lives in cli_export.py)
app.command()(export)
from lossgen.cli_report import report  # noqa: E402  (report lives in cli_report.py)
app.command()(report)
from lossgen.cli_pipeline import check, run, search  # noqa: E402  (Phases I-II and the pipeline)
app.command()(search)
app.command()(check)
app.command()(run)
from lossgen.cli_compare import compare  # noqa: E402  (strategy comparisons)
app.command()(compare)
console = Console()

# The paper's losses (Table 4) with smoothing e = 1, the constant terminal.
PAPER_LOSSES = {
    "MSE": "(y_hat - y)^2",
    "MaxR": "max((y_hat + 1) * (1 / (y + 1)), (y + 1) * (1 / (y_hat + 1)))",
    "SumR": "(y_hat + y + 1) * (1 / (y_hat * y + 1))",
    # 1 + 1 would be Add with equal operands; identity(1) is a second slot holding 1.
    "LogMin": "log((1 + identity(1)) * (1 / (min(y_hat, y) + 1))) * (y_hat + y + min(y_hat, y))",
}


def fail(message: str) -> None:
    """Print a one-line error and exit with status 2."""
    console.print(f"[red]error:[/red] {' '.join(str(message).split())}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        fail(f"unknown device {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        fail("--device cuda, but no CUDA device is available")
    return device


@app.command()
def demo(
    points: int = typer.Option(1_000_000, help="Points (y_hat, y) per loss."),
    clamp: str = typer.Option("paper", help="Clamp mode: paper, official or symmetric."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    seed: int = typer.Option(0, help="Random seed of the synthetic points."),
) -> None:
    """Evaluate the paper's losses on random points with the compiled kernels."""
    from lossgen import kernels
    from lossgen.formula import parse
    from lossgen.opset import parse_clamp

    try:
        parse_clamp(clamp)
    except ValueError as err:
        fail(str(err))
    if points < 1:
        fail("--points must be at least 1")
    dev = _device(device)
    programs = [parse(text) for text in PAPER_LOSSES.values()]
    gen = torch.Generator().manual_seed(seed)
    y_hat = torch.rand(points, generator=gen).to(dev)
    y = (torch.rand(points, generator=gen) < 0.55).float().to(dev)
    kernels.evaluate(programs, y_hat, y, clamp)  # warm-up
    start = time.perf_counter()
    values, grads = kernels.evaluate(programs, y_hat, y, clamp)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    loss = kernels.program_loss(programs, y_hat, y, clamp)

    table = Table(title=f"Paper losses on {points:,} random points ({kernels.backend(dev)}, clamp={clamp})")
    for col in ("loss", "formula", "steps", "mean loss", "mean dL/dy_hat | y=0", "mean dL/dy_hat | y=1"):
        table.add_column(col)
    for i, (name, text) in enumerate(PAPER_LOSSES.items()):
        g = grads[i].cpu()
        yy = y.cpu()
        table.add_row(name, str(programs[i]), str(len(programs[i])), f"{float(loss[i]):.4f}",
                      f"{float(g[yy == 0].mean()):+.4f}", f"{float(g[yy == 1].mean()):+.4f}")
    console.print(table)
    node_evals = sum(len(p) for p in programs) * points
    console.print(f"{node_evals / seconds:,.0f} node-evaluations/s (value and derivative) in {seconds * 1e3:.1f} ms")


@app.command()
def formula(
    text: str = typer.Argument(..., help='A loss formula, e.g. "max(y_hat, y) * (1 / (y_hat + 1))".'),
) -> None:
    """Parse a loss formula: canonical string, LaTeX, and the program's steps."""
    from lossgen.formula import parse, to_infix, to_latex
    from lossgen.opset import Op

    try:
        program = parse(text)
    except ValueError as err:
        fail(str(err))
    console.print(f"canonical: {to_infix(program)}", highlight=False)
    console.print(f"latex:     {to_latex(program)}", highlight=False)
    for t, (op, a, b) in enumerate(program.steps):
        operands = f"s{a}" if Op(op).arity == 1 else f"s{a}, s{b}"
        console.print(f"  s{t + 3} = {Op(op).pretty}({operands})", highlight=False)


@kernels_app.command("verify")
def kernels_verify(
    programs: int = typer.Option(10_000, help="Random programs to check."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    seed: int = typer.Option(0),
    max_steps: int = typer.Option(7, help="Longest program."),
    points: int = typer.Option(512, help="Points per program (special values and random)."),
) -> None:
    """Fuzz the compiled kernels against the PyTorch reference; exit 1 on any mismatch."""
    from lossgen import kernels
    from lossgen.verify import fuzz

    if programs < 1:
        fail("--programs must be at least 1")
    if not 1 <= max_steps <= 13:
        fail("--max-steps must be in 1..13")
    dev = _device(device)
    start = time.perf_counter()
    results = fuzz(kernels.evaluate, programs, seed=seed, max_steps=max_steps, points=points, device=dev)
    table = Table(title=f"{programs:,} random programs on {kernels.backend(dev)} vs the PyTorch reference")
    for col in ("clamp", "points", "within tolerance", "ill-conditioned (within f32 envelope)", "mismatches"):
        table.add_column(col)
    mismatches = 0
    for clamp, r in results.items():
        table.add_row(clamp, f"{r.points:,}", f"{r.exact:,}", f"{r.ill_conditioned:,}", f"{r.mismatches:,}")
        mismatches += r.mismatches
        for example in r.examples:
            console.print(f"mismatch ({clamp}): {example}", highlight=False)
    console.print(table)
    console.print(f"{time.perf_counter() - start:.1f} s")
    if mismatches:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
