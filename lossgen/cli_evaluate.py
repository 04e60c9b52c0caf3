"""`lossgen evaluate`: Phase III, the effectiveness test, from the command line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import Progress

console = Console()


def evaluate(
    dataset: str = typer.Option("synthetic", help="ml-100k, synthetic[:...], a split directory or a ratings CSV."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Directory holding ml-100k/u.data."),
    model: str = typer.Option("mf", help="Recommender: mf (biased MF) or mlp (the paper's MLP)."),
    losses: str = typer.Option("BCE,MSE,Hinge,Focal,MaxR,SumR,LogMin", help="Comma-separated named losses."),
    loss: list[str] = typer.Option([], "--loss", help='A loss formula, e.g. "max(y_hat, y) * (1 / (y_hat + 1))"; repeatable.'),
    clamp: str = typer.Option("paper", help="Clamp mode of formula losses: paper, official or symmetric."),
    seeds: int = typer.Option(3, help="Seeds per loss (0, 1, ...)."),
    task: str = typer.Option("classification", help="classification (AUC) or regression (RMSE)."),
    max_epochs: int = typer.Option(300, help="Epoch cap per run (early stopping usually ends sooner)."),
    optimizer: str = typer.Option("sgd", help="sgd (the paper's) or adam (lazy Adam on embedding rows)."),
    device: str = typer.Option("cpu", help="Device; the fused MF trainer runs on cpu."),
    out: Optional[Path] = typer.Option(None, help="Directory for effectiveness.{md,csv,json}."),
    fmt: str = typer.Option("table", "--format", help="What to print: table, csv or json."),
) -> None:
    """Train every loss to convergence (epsilon by validation grid search) and report test metrics."""
    from lossgen.cli import fail
    from lossgen.data import load
    from lossgen.formula import parse
    from lossgen.losses import from_program, parse_losses
    from lossgen.phases.effectiveness import EffectivenessConfig, run_effectiveness
    from lossgen.train import TrainConfig
    from lossgen import report

    if model not in ("mf", "mlp"):
        fail(f"unknown --model {model!r}; choose mf or mlp")
    if device != "cpu":
        fail(f"--device {device!r}: the population trainers run on cpu only for now")
    if fmt not in ("table", "csv", "json"):
        fail(f"unknown --format {fmt!r}; choose table, csv or json")
    if task not in ("classification", "regression"):
        fail(f"unknown --task {task!r}; choose classification or regression")
    if seeds < 1 or max_epochs < 1:
        fail("--seeds and --max-epochs must be at least 1")
    try:
        specs = parse_losses(losses) if losses.strip() else []
        specs += [from_program(parse(text), clamp) for text in loss]
        data = load(dataset, data_dir)
    except ValueError as err:
        fail(" ".join(str(err).split()))
    if not specs:
        fail("no losses given (--losses or --loss)")
    try:
        train = TrainConfig(optimizer=optimizer)
    except ValueError as err:
        fail(str(err))
    config = EffectivenessConfig(seeds=tuple(range(seeds)), max_epochs=max_epochs, task=task, model=model, train=train)
    start = time.perf_counter()
    with Progress(console=console, transient=True) as bar:
        job = bar.add_task("training", total=max_epochs)

        def progress(epoch: int, active: int) -> None:
            bar.update(job, completed=epoch, description=f"epoch {epoch}, {active} runs training")

        result = run_effectiveness(data, specs, config, progress)
    seconds = time.perf_counter() - start
    extra = {"dataset": data.name, "model": model, "seeds": seeds, "seconds": seconds}
    if fmt == "json":
        console.print_json(report.to_json(result, extra))
    elif fmt == "csv":
        print(report.to_csv(result), end="")
    else:
        console.print(report.markdown(result), highlight=False, soft_wrap=True)
        console.print(f"{result.runs} runs, {result.epochs_trained} run-epochs, {seconds:.1f} s", highlight=False)
    if out is not None:
        for path in report.write_all(result, out, extra):
            console.print(f"wrote {path}", highlight=False)
