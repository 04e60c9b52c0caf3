"""`lossgen evaluate`: Phase III, the effectiveness test, from the command line."""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import Progress
from rich.table import Table

from lossgen.cli.common import (EXECUTOR_HELP, RAY_ADDRESS_HELP, WORKERS_HELP, PlainProgress, console,
                                 executor_settings, fail, open_run)
from lossgen.data import load
from lossgen.ir.formula import parse_loss
from lossgen.models.mf import INIT_STD
from lossgen.phases.effectiveness import EPSILON_GRID, EffectivenessConfig, run_effectiveness
from lossgen.phases.executor import ExecutorError, ExecutorSettings, ray_session
from lossgen.phases.runs import evaluate_run
from lossgen.phases.rundata import run_dataset
from lossgen.phases.settings import DEFAULT_BASELINES, Phase3Settings, parse_numbers
from lossgen.reports import effectiveness as report
from lossgen.runs import RunError
from lossgen.training.losses import ALL_NAMED, from_program, parse_losses
from lossgen.training.trainer import TrainConfig
from lossgen.util.atomic import check_writable_dir


def run_phase3(store, data, settings: Phase3Settings, optimizer: str = "sgd", executor: ExecutorSettings | None = None):
    """Phase III on a run's best candidates next to the baselines; writes RUN/phase3/ and prints
    the table. With the ray `executor`, the runs are sharded over Ray actors (same table)."""
    executor = executor or ExecutorSettings()
    if data.key != store.config.get("data_key"):
        fail(f"the dataset {data.name!r} differs from the one run {store.path} searched on (its split key changed)")
    out = Path(store.path) / "phase3"
    try:
        check_writable_dir(out)  # before hours of training, not after
    except OSError as err:
        fail(str(err))
    try:
        train = TrainConfig.from_dict({**store.config.get("train", {}), "optimizer": optimizer})
        config = EffectivenessConfig(seeds=tuple(range(settings.seeds)), max_epochs=settings.max_epochs,
                                     train=train).with_early_stop(settings.early_stop)
        with _session(executor), Progress(console=console, transient=True) as bar:
            job = bar.add_task("Phase III", total=settings.max_epochs)

            plain = PlainProgress()

            def progress(epoch: int, active: int) -> None:
                bar.update(job, completed=epoch, description=f"Phase III: epoch {epoch}, {active} runs training")
                plain(f"Phase III: epoch {epoch} of at most {settings.max_epochs}, {active} runs training")

            racing = bar.add_task("race", total=max(settings.rungs), visible=settings.selection == "race")

            def race_progress(epoch: int, active: int) -> None:
                bar.update(racing, completed=epoch, description=f"race: epoch {epoch}, {active} racers training")
                plain(f"Phase III race: epoch {epoch} of at most {max(settings.rungs)}, {active} racers training")

            result = evaluate_run(store, data, settings.top, settings.baselines, config, progress, executor=executor,
                                  selection=settings.selection, survivors=settings.survivors, rungs=settings.rungs,
                                  race_progress=race_progress)
    except KeyboardInterrupt:
        console.print(f"interrupted: Phase III results were not saved; the search and Phase II are intact in "
                      f"{store.path}; run the same command to redo Phase III", highlight=False, soft_wrap=True)
        raise typer.Exit(130)
    except (RunError, ValueError) as err:
        fail(str(err))
    try:
        report.write_all(result, out, {"dataset": store.config.get("dataset"), "model": result_model(store, config)})
    except OSError as err:
        fail(f"{err} (the Phase III results are recorded in {store.path}/run.db; `lossgen report` shows them)")
    phase3 = store.get_meta("phase3")
    metric = phase3["metric"]
    table = Table(title=f"Phase III on {data.name} ({store.config.get('model')}, {settings.seeds} seeds): test {metric.upper()}")
    for col in ("loss", "formula", "validation", f"test {metric}", f"vs {result.reference}", "p"):
        table.add_column(col)
    for e in phase3["results"]:
        ref = e["vs_reference"]
        table.add_row(e["name"], e["formula"] if e["candidate"] else "", f"{e['validation']:.4f}",
                      f"{e['test_mean']:.4f} ± {e['test_std']:.4f}",
                      f"{ref['difference']:+.4f} [{ref['ci95'][0]:+.4f}, {ref['ci95'][1]:+.4f}]" if ref else "reference"
                      if e["name"] == result.reference else "", f"{ref['p_value']:.3f}" if ref else "")
    console.print(table)
    return result


def formula_spec(program, eps: float | None, clamp: str):
    """A `--loss` formula as a loss: one that uses an epsilon op gets Phase III's epsilon grid
    (from its own 'with e = E', or the grid's first value), unless it asks for the paper's
    smoothing (`--clamp paper` and no epsilon written)."""
    if eps is None and program.uses_epsilon and clamp != "paper":
        eps = EPSILON_GRID[0]
    return from_program(program, clamp, eps=eps)


def _session(executor: ExecutorSettings):
    """Ray connected for a sharded Phase III, nothing for the local one."""
    return ray_session(executor) if executor.is_ray else contextlib.nullcontext()


def result_model(store, config: EffectivenessConfig) -> str:
    return store.config.get("model", config.model)


def evaluate(
    run: Optional[Path] = typer.Argument(None, help="A run directory: evaluate its best candidates (after `lossgen check`)."),
    top: int = typer.Option(Phase3Settings.top, help="With a run and --selection top: best distinct passing candidates by search reward to evaluate."),
    selection: Optional[str] = typer.Option(None, help="With a run: race (every distinct passing candidate races, the best --survivors train to convergence) or top (the paper's --top by search reward). [default: the run's preset's: race for lossgen, top for paper]"),
    survivors: int = typer.Option(Phase3Settings.survivors, help="With a run and --selection race: candidates that train to convergence."),
    rungs: str = typer.Option(",".join(map(str, Phase3Settings.rungs)), help="With a run and --selection race: epochs at which the race keeps its best third."),
    dataset: str = typer.Option("synthetic", help="ml-100k, synthetic[:...], a split directory or a ratings CSV."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Directory holding ml-100k/u.data (with a run: default where the run read its data)."),
    model: str = typer.Option("mf", help="Recommender: mf (biased MF) or mlp (the paper's MLP)."),
    losses: Optional[str] = typer.Option(None, help=f"Comma-separated named losses. [default: all seven; with a run: {DEFAULT_BASELINES}]"),
    loss: list[str] = typer.Option([], "--loss", help='A loss formula, e.g. "max(y_hat, y) * (1 / (y_hat + 1))"; repeatable.'),
    clamp: str = typer.Option("symmetric", help="Clamp mode of formula losses: symmetric (the lossgen preset's), paper or official. A formula that uses log, 1 / x or sqrt gets the epsilon grid (sign(0) = +1), except with --clamp paper and no 'with e = E' (the paper's xi, sign(0) = 0)."),
    seeds: int = typer.Option(Phase3Settings.seeds, help="Seeds per loss (0, 1, ...)."),
    task: str = typer.Option("classification", help="classification (AUC) or regression (RMSE)."),
    max_epochs: int = typer.Option(Phase3Settings.max_epochs, help="Epoch cap per run (early stopping usually ends sooner)."),
    early_stop: str = typer.Option(Phase3Settings.early_stop, "--early-stop", help="Early-stop rules: paper (from epoch 1: 10 worse epochs in a row, or best > 50 epochs ago) or official (the authors' code: only after 100 epochs, staleness 100)."),
    optimizer: str = typer.Option("sgd", help="sgd (the paper's) or adam (lazy Adam on embedding rows)."),
    l2: float = typer.Option(TrainConfig.l2, help="Weight decay of every parameter (PyTorch's weight_decay). The authors' code adds 1e-4 x the sum of squares of every parameter to the loss on top of weight_decay 1e-4: 3e-4 here."),
    init_std: float = typer.Option(INIT_STD, "--init-std", help="Standard deviation of the initial user and item embeddings. The authors' code leaves nn.Embedding's N(0, 1): 1 here."),
    device: str = typer.Option("cpu", help="Device; the fused MF trainer runs on cpu."),
    out: Optional[Path] = typer.Option(None, help="Directory for effectiveness.{md,csv,json}."),
    fmt: str = typer.Option("table", "--format", help="What to print: table, csv or json."),
    executor: Optional[str] = typer.Option(None, help=EXECUTOR_HELP + " With ray the runs are split by loss across Ray actors."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
    workers: Optional[int] = typer.Option(None, help=WORKERS_HELP),
) -> None:
    """Train every loss to convergence (epsilon by validation grid search) and report test metrics."""
    where = executor_settings(executor, ray_address, workers)
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
    if not (math.isfinite(init_std) and init_std > 0):
        fail(f"--init-std must be a number > 0, got {init_std}")
    if run is not None:
        if loss:
            fail("--loss formulas cannot be added to a run's evaluation; run `lossgen evaluate` without a run")
        if l2 != TrainConfig.l2 or init_std != INIT_STD:
            fail("--l2 and --init-std apply to losses evaluated on their own; a run's Phase III trains with the "
                 "run's settings")
        if top < 1:
            fail("--top must be at least 1")
        store = open_run(run)
        try:
            data = run_dataset(store, data_dir)  # where the run read it, unless --data-dir says otherwise
        except (ValueError, OSError) as err:
            store.close()
            fail(" ".join(str(err).split()))
        if selection is None:  # the run's preset's (runs from before presets: the paper's)
            selection = "top" if store.config.get("preset", "paper") == "paper" else "race"
        try:
            settings = Phase3Settings(top, seeds, max_epochs, DEFAULT_BASELINES if losses is None else losses,
                                      early_stop, selection, survivors, parse_numbers(rungs, "rungs", int))
            settings.check()
        except ValueError as err:
            store.close()
            fail(str(err))
        run_phase3(store, data, settings, optimizer, where)
        console.print(f"wrote {Path(store.path) / 'phase3'}", highlight=False)
        store.close()
        return
    if out is not None:
        try:
            check_writable_dir(out)  # before training, so a bad --out loses no results
        except OSError as err:
            fail(str(err))
    if losses is None:
        losses = ",".join(ALL_NAMED)
    try:
        specs = parse_losses(losses) if losses.strip() else []
        specs += [formula_spec(program, eps, clamp) for program, eps in map(parse_loss, loss)]
        data = load(dataset, data_dir)
    except ValueError as err:
        fail(" ".join(str(err).split()))
    if not specs:
        fail("no losses given (--losses or --loss)")
    try:
        train = TrainConfig(optimizer=optimizer, l2=l2)
    except ValueError as err:
        fail(str(err))
    config = EffectivenessConfig(seeds=tuple(range(seeds)), max_epochs=max_epochs, task=task, model=model, train=train,
                                 init_std=init_std)
    try:
        config = config.with_early_stop(early_stop)
    except ValueError as err:
        fail(str(err))
    start = time.perf_counter()
    try:
        with _session(where), Progress(console=console, transient=True) as bar:
            job = bar.add_task("training", total=max_epochs)

            plain = PlainProgress()

            def progress(epoch: int, active: int) -> None:
                bar.update(job, completed=epoch, description=f"epoch {epoch}, {active} runs training")
                plain(f"epoch {epoch} of at most {max_epochs}, {active} runs training")

            result = run_effectiveness(data, specs, config, progress, where)
    except ExecutorError as err:
        fail(str(err))
    except KeyboardInterrupt:
        console.print("interrupted: nothing was saved (results are printed and written only when training "
                      "finishes)", highlight=False, soft_wrap=True)
        raise typer.Exit(130)
    seconds = time.perf_counter() - start
    extra = {"dataset": data.name, "model": model, "seeds": seeds, "seconds": seconds, "max_epochs": max_epochs,
             "early_stop": early_stop, "optimizer": optimizer, "l2": l2, "init_std": init_std}
    if fmt == "json":
        console.print_json(report.to_json(result, extra))
    elif fmt == "csv":
        print(report.to_csv(result), end="")
    else:
        console.print(report.markdown(result), highlight=False, soft_wrap=True)
        console.print(f"{result.runs} runs, {result.epochs_trained} run-epochs, {seconds:.1f} s", highlight=False)
    if out is not None:
        try:
            paths = report.write_all(result, out, extra)
        except OSError as err:
            fail(str(err))
        for path in paths:
            console.print(f"wrote {path}", highlight=False)
