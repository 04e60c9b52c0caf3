"""The `lossgen` command line (typer).

The pipeline: `search` (Phase I), `check` (Phase II), `evaluate` (Phase III), `run` (all three),
`report` and `export` of a run; `compare` (strategies head to head); `data stats|prepare`; and tools: `demo` (the paper's losses through
the compiled kernels), `formula` (canonical string, LaTeX and program of a loss) and `kernels
verify` (fuzz the kernels against the PyTorch reference). Commands live in the modules of this folder
and are registered here. User errors print one line and exit 2, without a traceback."""

from __future__ import annotations

import time
import warnings

import torch
import typer
from rich.table import Table

import lossgen
from lossgen import kernels
from lossgen.cli.common import console, device as _device, fail, warn
from lossgen.cli.compare import compare
from lossgen.cli.data import data_app
from lossgen.cli.evaluate import evaluate
from lossgen.cli.export import export
from lossgen.cli.pipeline import check, run, search
from lossgen.cli.report import report
from lossgen.ir.formula import latex_with_epsilon, parse, parse_loss, to_infix, to_latex, with_epsilon
from lossgen.ir.opset import Op, parse_clamp
from lossgen.kernels.verify import fuzz

HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,  # "[default: x]" in help is text
                  help="lossgen: automatic loss-function discovery.", context_settings=HELP)
kernels_app = typer.Typer(no_args_is_help=True, help="The compiled loss-program kernels.", context_settings=HELP)
app.add_typer(kernels_app, name="kernels")
app.add_typer(data_app, name="data")
for command in (evaluate, export, report, search, check, run, compare):
    app.command()(command)



def _version(value: bool) -> None:
    if value:
        console.print(f"lossgen {lossgen.__version__}", highlight=False)
        raise typer.Exit()


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings (e.g. from the data loader) as one `warning:` line, like the CLI's own."""
    warn(str(message))


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """lossgen: automatic loss-function discovery."""
    warnings.showwarning = _warning_line


# The paper's losses (Table 4) with smoothing e = 1, the constant terminal.
PAPER_LOSSES = {
    "MSE": "(y_hat - y)^2",
    "MaxR": "max((y_hat + 1) * (1 / (y + 1)), (y + 1) * (1 / (y_hat + 1)))",
    "SumR": "(y_hat + y + 1) * (1 / (y_hat * y + 1))",
    # 1 + 1 would be Add with equal operands; identity(1) is a second slot holding 1.
    "LogMin": "log((1 + identity(1)) * (1 / (min(y_hat, y) + 1))) * (y_hat + y + min(y_hat, y))",
}


@app.command()
def demo(
    points: int = typer.Option(1_000_000, help="Points (y_hat, y) per loss."),
    clamp: str = typer.Option("paper", help="Clamp mode: paper, official or symmetric."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    seed: int = typer.Option(0, help="Random seed of the synthetic points."),
) -> None:
    """Evaluate the paper's losses on random points with the compiled kernels."""
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
    text: str = typer.Argument(..., help='A loss formula, e.g. "max(y_hat, y) * (1 / (y_hat + 1))", optionally with its smoothing epsilon: "... with e = 0.01".'),
) -> None:
    """Parse a loss formula: canonical string, LaTeX, and the program's steps."""
    try:
        program, eps = parse_loss(text)
    except ValueError as err:
        fail(str(err))
    console.print(f"canonical: {with_epsilon(to_infix(program), eps)}", highlight=False, soft_wrap=True)
    console.print(f"latex:     {latex_with_epsilon(to_latex(program), eps)}", highlight=False, soft_wrap=True)
    if eps is not None:
        console.print(f"smoothing: log, 1 / x and sqrt use e = {eps:g} in place of xi, with sign(0) = +1",
                      highlight=False, soft_wrap=True)
    console.print("steps (s0 = y_hat, s1 = y, s2 = 1; each step writes the next slot; the loss is the last):",
                  highlight=False, soft_wrap=True)
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
