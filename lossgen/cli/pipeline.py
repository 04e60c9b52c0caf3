"""`lossgen search | check | run`: Phase I, Phase II and the whole pipeline from the command line.

Every option can also come from `--config FILE` (TOML, keys = option names; see cli/config.py).
A search writes a run directory (lossgen.runs); the same command again resumes it, and a
larger limit extends a finished one. User errors print one line and exit 2.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Optional

import torch
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lossgen.cli.common import (EXECUTOR_HELP, RAY_ADDRESS_HELP, WORKERS_HELP, PlainProgress, console,
                                 executor_settings, fail, open_run, warn)
from lossgen.cli.config import load_config_file, resolve
from lossgen.cli.evaluate import run_phase3
from lossgen.cli.options import with_options
from lossgen.data import load
from lossgen.ir.formula import parse_loss, with_epsilon
from lossgen.phases.check import validation_check
from lossgen.phases.executor import ExecutorError, ExecutorSettings, ray_session
from lossgen.phases.runs import check_run
from lossgen.phases.rundata import remember_data
from lossgen.phases.search import LossSearch
from lossgen.phases.settings import (OPTION_TYPES, PHASE_OPTIONS, SEARCH_OPTIONS, CheckSettings, Phase3Settings,
                                     phase_settings, preset_defaults, run_config, search_from_options)
from lossgen.reports.run import write_report
from lossgen.runs import RunError, RunStore

SEARCH_NAMES = list(SEARCH_OPTIONS)  # the options of `search` (and, with the phase ones, `run`)


def _settings(cli: dict, config_file: Optional[Path], extra_defaults: dict | None = None) -> dict:
    defaults = {**SEARCH_OPTIONS, **(extra_defaults or {})}
    try:
        # one file serves `search` and `run`: search reads the search keys and ignores the phase keys
        file = load_config_file(config_file, set(SEARCH_OPTIONS) | set(PHASE_OPTIONS))
        defaults = preset_defaults(defaults, cli.get("preset") or file.get("preset"))
        resolved = resolve(cli, file, defaults, OPTION_TYPES)
    except ValueError as err:
        fail(str(err))
    ignored = sorted(set(file) - set(defaults))
    if ignored:
        warn(f"config file {config_file}: {', '.join(ignored)} {'does' if len(ignored) == 1 else 'do'} not apply "
             f"to this command (ignored; `lossgen run` uses {'it' if len(ignored) == 1 else 'them'})")
    return resolved


def _search_config(s: dict):
    try:
        return search_from_options(s)
    except ValueError as err:
        fail(str(err))


def default_run_dir(s: dict) -> Path:
    data = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(s["dataset"])).name) or "data"
    return Path("runs") / f"{s['strategy']}-{data}-{s['model']}-s{s['seed']}"


def _load_data(spec: str, data_dir: Optional[str]):
    try:
        return load(spec, data_dir)
    except (ValueError, OSError) as err:
        fail(str(err))


def _round_line(r) -> str:
    best = "-" if r.best_so_far is None else f"{r.best_so_far:+.4f}"
    t = r.totals
    rejected = f"rejected {t['rejected']} | " if "rejected" in t else ""  # the strict check before training
    return (f"round {r.round} | evaluated {t['evaluated']} | sampled {t['sampled']} | best reward {best} | "
            f"accepted {t['accepted']} | {rejected}proxy skipped {t['zero_gradient']} | duplicates {t['duplicates']} | "
            f"val {r.metric.upper()} {r.validation:.4f}")


def run_search(s: dict, executor: ExecutorSettings | None = None):
    """Phase I with resolved settings `s`; returns (store, dataset, result). With the ray
    `executor`, each round's population is split across Ray actors (same trajectory)."""
    executor = executor or ExecutorSettings()
    config, limits = _search_config(s)
    dataset = _load_data(s["dataset"], s["data_dir"])
    run_dir = Path(s["run_dir"]) if s["run_dir"] else default_run_dir(s)
    try:
        config = config.resolved(dataset)
        store = RunStore.open_or_create(run_dir, run_config(config, dataset, str(s["dataset"])))
        remember_data(store, dataset, str(s["dataset"]), s["data_dir"])  # for `lossgen evaluate RUN`
    except (RunError, ValueError) as err:
        fail(str(err))
    with contextlib.ExitStack() as session:
        try:
            if executor.is_ray:
                session.enter_context(ray_session(executor))
            search = LossSearch(dataset, store, config, executor=executor)
            session.callback(search.close)
        except (RunError, ValueError) as err:
            store.close()
            fail(str(err))
        result = _search_loop(search, store, run_dir, limits)
    return store, dataset, result


def _search_loop(search, store, run_dir, limits):
    resumed = store.last_round() + 1
    console.print(f"run directory {run_dir}" + (f" (resuming after round {resumed - 1})" if resumed else ""), highlight=False)
    total = limits.budget or limits.max_sampled or limits.max_rounds
    columns = [TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()]
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            job = bar.add_task("searching", total=total)

            plain = PlainProgress()

            def progress(r) -> None:
                done = {limits.budget: r.totals["evaluated"], limits.max_sampled: r.totals["sampled"]}.get(total, r.round + 1)
                bar.update(job, completed=done, description=_round_line(r))
                plain(_round_line(r))

            result = search.run(limits, progress)
    except KeyboardInterrupt:
        console.print(f"interrupted: completed rounds are saved in {run_dir}; run the same command to resume", highlight=False)
        raise typer.Exit(130)
    except (RunError, ExecutorError) as err:  # a failed write (disk full, ...), a lost cluster: rounds are kept
        fail(str(err))
    seconds = max(result.elapsed, 1e-9)
    t = result.totals
    console.print(f"search stopped: {result.stopped}. {result.rounds} rounds, {t['sampled']} sampled "
                  f"({t['sampled'] / seconds:.1f}/s), {t['evaluated']} evaluated ({t['evaluated'] / seconds:.1f}/s), "
                  f"{t['accepted']} accepted, " + (f"{t['rejected']} rejected by the strict check, " if "rejected" in t else "")
                  + f"{t['zero_gradient']} zero-gradient, {t['duplicates']} duplicates, {result.elapsed:.1f} s", highlight=False)
    if result.best_id is not None:
        best = store.candidate(result.best_id)
        console.print(f"best candidate {best.id}: {best.formula} (reward {best.reward:+.4f})", highlight=False)
    return result


@with_options(SEARCH_NAMES)
def search(options: dict, config: Optional[Path] = typer.Option(None, "--config", help="TOML file of option values (command line wins)."),
           executor: Optional[str] = typer.Option(None, help=EXECUTOR_HELP + " With ray each round's candidates are split across Ray actors."),
           ray_address: Optional[str] = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
           workers: Optional[int] = typer.Option(None, help=WORKERS_HELP)) -> None:
    """Phase I: search for losses with a strategy; resumable (run the same command again)."""
    where = executor_settings(executor, ray_address, workers)
    store, _, _ = run_search(_settings(options, config), where)
    store.close()


def run_check(store, threshold: float, pairs: int = CheckSettings.pairs):
    try:
        summary = check_run(store, threshold, pairs)
    except (RunError, ValueError) as err:
        fail(str(err))
    console.print(f"Phase II: {summary.passed} of {summary.distinct} distinct evaluated losses pass "
                  f"(positive rate >= {summary.threshold:g}); {summary.checked} candidates rated", highlight=False)
    return summary


def check(
    run: Optional[Path] = typer.Argument(None, help="A run directory: rate every candidate it recorded."),
    loss: list[str] = typer.Option([], "--loss", help="A loss formula; repeatable (instead of a run)."),
    clamp: str = typer.Option("paper", help="Clamp mode of --loss formulas (a run uses its own)."),
    threshold: float = typer.Option(CheckSettings.threshold, help="Pass at a positive rate at or above this."),
    pairs: int = typer.Option(CheckSettings.pairs, help="Synthesized (y_hat, y) pairs."),
    eps: Optional[float] = typer.Option(None, help="With --loss: the smoothing epsilon e of Log, Reciprocal and Sqrt (sign(0) = +1). [default: the paper's xi, sign(0) = 0]"),
    strict: bool = typer.Option(False, "--strict", help="With --loss: also require a non-zero gradient of the right sign on the threshold's share of each label's pairs, and |gradient| <= 1e4 (DESIGN.md's strict check)."),
) -> None:
    """Phase II, the validation check: the share of synthesized pairs where a loss's gradient has
    the right sign (>= 0 for y = 0, <= 0 for y = 1). With formulas, exit 1 if any fails."""
    if run is not None:
        if loss:
            fail("give a run directory or --loss formulas, not both")
        if strict or eps is not None:
            fail("--strict and --eps apply to --loss formulas; a run is checked as it was searched")
        store = open_run(run)
        run_check(store, threshold, pairs)
        store.close()
        return
    if not loss:
        fail("give a run directory or at least one --loss formula")
    try:
        parsed = [parse_loss(text) for text in loss]
        programs = [program for program, _ in parsed]
        own = [e for _, e in parsed]
        if any(e is not None for e in own):  # formulas that carry their own e ("... with e = 0.01")
            if eps is None and any(e is None for e in own):
                raise ValueError("some formulas carry a smoothing epsilon (with e = ...) and some do not; give every "
                                 "one an e, or --eps for those without")
            eps = torch.tensor([e if e is not None else eps for e in own], dtype=torch.float32)
        result = validation_check(programs, clamp, threshold, pairs, strict=strict, eps=eps)
    except ValueError as err:
        fail(str(err))
    smoothing = "" if eps is None or isinstance(eps, torch.Tensor) else f", e={eps:g}"
    table = Table(title=f"{'Strict validation' if strict else 'Validation'} check ({pairs:,} pairs, clamp={clamp}"
                        f"{smoothing}, pass at >= {threshold:g})")
    columns = ["loss", "positive rate", "zero gradient"] + (["pushed y=0", "pushed y=1", "max |grad|"] if strict else [])
    for col in columns + ["result"]:
        table.add_column(col)
    for k, (program, rate, zero, ok) in enumerate(zip(programs, result.rates, result.zero_shares, result.passed)):
        verdict = "pass" if ok else "fail"
        if zero >= 1.0:
            verdict += " (flat: zero gradient on every pair)"
        elif zero >= 0.5:
            verdict += " (zero gradient on most pairs)"
        extra = []
        if strict:
            (r0, r1), largest = result.strict_rates[k], result.max_gradients[k]
            extra = [f"{r0:.1%}", f"{r1:.1%}", f"{largest:.3g}"]
        shown = str(program) if not isinstance(eps, torch.Tensor) else with_epsilon(str(program), float(eps[k]))
        table.add_row(shown, f"{rate:.4f}", f"{zero:.1%}", *extra, verdict)
    console.print(table)
    if not all(result.passed):
        raise typer.Exit(1)


@with_options(SEARCH_NAMES)
def run(
    options: dict,
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file of option values (command line wins)."),
    threshold: Optional[float] = typer.Option(None, help=f"Phase II pass mark. [default: {CheckSettings.threshold}]"),
    top: Optional[int] = typer.Option(None, help=f"With --selection top: best distinct passing candidates by search reward taken to Phase III. [default: {Phase3Settings.top}]"),
    selection: Optional[str] = typer.Option(None, help="Phase III selection: race (every distinct passing candidate races on validation, the best --survivors train to convergence) or top (the paper's). [default: race; paper preset: top]"),
    survivors: Optional[int] = typer.Option(None, help=f"With --selection race: candidates that train to convergence. [default: {Phase3Settings.survivors}]"),
    rungs: Optional[str] = typer.Option(None, help=f"With --selection race: epochs at which the race keeps its best third. [default: {','.join(map(str, Phase3Settings.rungs))}]"),
    seeds: Optional[int] = typer.Option(None, help=f"Phase III seeds per loss. [default: {Phase3Settings.seeds}]"),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs", help=f"Phase III epoch cap per run. [default: {Phase3Settings.max_epochs}]"),
    early_stop: Optional[str] = typer.Option(None, "--early-stop", help=f"Phase III early-stop rules: paper or official (the authors' code). [default: {Phase3Settings.early_stop}]"),
    baselines: Optional[str] = typer.Option(None, help=f"Handcrafted losses trained next to them. [default: {Phase3Settings.baselines}]"),
    executor: Optional[str] = typer.Option(None, help=EXECUTOR_HELP + " With ray the search rounds and Phase III are split across Ray actors."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
    workers: Optional[int] = typer.Option(None, help=WORKERS_HELP),
) -> None:
    """All three phases: search, validation check, effectiveness test; then the run's report.
    Resumable: the same command again continues where it stopped."""
    where = executor_settings(executor, ray_address, workers)
    cli = {**options, "threshold": threshold, "top": top, "seeds": seeds, "max_epochs": max_epochs, "early_stop": early_stop,
           "baselines": baselines, "selection": selection, "survivors": survivors, "rungs": rungs}
    s = _settings(cli, config, PHASE_OPTIONS)
    try:
        _, phase3 = phase_settings(s)
    except ValueError as err:
        fail(str(err))
    store, data, _ = run_search(s, where)
    run_check(store, s["threshold"])
    run_phase3(store, data, phase3, s["optimizer"], where)
    try:
        paths = write_report(store.path)
    except (ValueError, OSError) as err:
        fail(str(err))
    console.print(f"report: {paths[0].parent}", highlight=False)
    store.close()
