"""`lossgen compare`: every strategy x seed as its own resumable search run on the same data,
then Phase II, one shared Phase III with the baselines, statistics and a report (lossgen.compare).

The same command again resumes the comparison. Options may also come from `--config FILE`
(TOML, the option names below; `seeds` there is the number of search seeds).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lossgen.cli.common import (EXECUTOR_HELP, RAY_ADDRESS_HELP, PlainProgress, console, executor_settings,
                                 fail)
from lossgen.cli.config import load_config_file, resolve
from lossgen.cli.options import with_options
from lossgen.compare.plan import SAFETY_STOPS, ComparePlan, shared_search
from lossgen.compare.runner import CompareHooks, run_compare
from lossgen.phases.settings import (DEFAULT_PATIENCE, OPTION_TYPES, SEARCH_OPTIONS, CheckSettings, Phase3Settings,
                                     parse_duration, parse_numbers, preset_defaults,
                                     search_from_options)
from lossgen.runs import RunError

# The search options every run shares (the strategy, seed, budget and run directory are per run).
SHARED_SEARCH = [k for k in SEARCH_OPTIONS if k not in ("strategy", "seed", "run_dir", "budget")]
COMPARE_DEFAULTS = {
    **{k: SEARCH_OPTIONS[k] for k in SHARED_SEARCH}, "patience": DEFAULT_PATIENCE,
    "strategies": "rl,evolution,random", "seeds": 3, "budget": 300, "out": None, "jobs": 1, "top": Phase3Settings.top,
    "threshold": CheckSettings.threshold, "phase3_seeds": Phase3Settings.seeds, "max_epochs": Phase3Settings.max_epochs,
    "early_stop": Phase3Settings.early_stop,
    "baselines": Phase3Settings.baselines, "selection": Phase3Settings.selection,
    "survivors": Phase3Settings.survivors, "rungs": Phase3Settings.rungs,
}
ALWAYS_SHOWN = ("strategies", "seeds", "budget", "dataset", "model", "out")  # first in the recorded command
# `compare` takes the shared search options but its own --patience (its default differs)
_SEARCH_NAMES = [k for k in SHARED_SEARCH if k != "patience"]


def _settings(cli: dict, config_file: Optional[Path]) -> dict:
    try:
        file = load_config_file(config_file, set(COMPARE_DEFAULTS))
        defaults = preset_defaults(COMPARE_DEFAULTS, cli.get("preset") or file.get("preset"))
        return resolve(cli, file, defaults, {**OPTION_TYPES, "out": str})
    except ValueError as err:
        fail(str(err))


def command_line(s: dict) -> str:
    """The command that reproduces these settings (options at their default left out)."""
    parts = ["lossgen", "compare"]
    defaults = preset_defaults(COMPARE_DEFAULTS, s.get("preset"))  # a preset's own values go without saying
    for key in sorted(s, key=lambda k: ALWAYS_SHOWN.index(k) if k in ALWAYS_SHOWN else len(ALWAYS_SHOWN)):
        value = s[key]
        if isinstance(value, (list, tuple)):  # a list option at its (preset's) default, or written as typed
            if key not in ALWAYS_SHOWN and tuple(value) == tuple(defaults[key]):
                continue
            value = ",".join(f"{v:g}" for v in value) or "none"
        if value is None or (key not in ALWAYS_SHOWN and value == defaults[key]):
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{key.replace('_', '-')}")
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def _plan(s: dict) -> ComparePlan:
    """The library's plan from the resolved option values (a bad one: one line, exit 2)."""
    if s["out"] is None:
        fail("--out is required: the directory that holds the comparison")
    strategies = tuple(p.strip() for p in str(s["strategies"]).split(",") if p.strip())
    try:
        if s["jobs"] < 1:
            raise ValueError(f"--jobs must be at least 1, got {s['jobs']}")
        config, _ = search_from_options({k: s[k] for k in SHARED_SEARCH})
        limits = {k: s[k] for k in SAFETY_STOPS if s[k] is not None}
        if "time_limit" in limits:
            limits["time_limit"] = parse_duration(limits["time_limit"])
        plan = ComparePlan(strategies=strategies, seeds=tuple(range(s["seeds"])) if s["seeds"] >= 1 else (),
                           budget=s["budget"], dataset=s["dataset"], data_dir=s["data_dir"],
                           search=shared_search(config), limits=limits, top=s["top"], threshold=s["threshold"],
                           phase3_seeds=s["phase3_seeds"], max_epochs=s["max_epochs"], baselines=s["baselines"],
                           early_stop=s["early_stop"], selection=s["selection"], survivors=s["survivors"],
                           rungs=parse_numbers(s["rungs"], "rungs", int))
        plan.check()
    except ValueError as err:
        fail(str(err))
    return plan


@with_options(_SEARCH_NAMES)
def compare(
    options: dict,
    strategies: Optional[str] = typer.Option(None, help="Comma-separated strategies. [default: rl,evolution,random]"),
    seeds: Optional[int] = typer.Option(None, help="Search seeds per strategy (0, 1, ...). [default: 3]"),
    budget: Optional[int] = typer.Option(None, help="Full candidate evaluations per run. [default: 300]"),
    out: Optional[str] = typer.Option(None, help="Directory of the comparison (runs, Phase III, report)."),
    jobs: Optional[int] = typer.Option(None, help="Searches run in parallel processes. [default: 1]"),
    patience: Optional[int] = typer.Option(None, help=f"Safety stop per run: rounds without validation improvement. [default: {DEFAULT_PATIENCE}]"),
    top: Optional[int] = typer.Option(None, help=f"With --selection top: best distinct passing candidates per run, by search reward, taken to Phase III. [default: {Phase3Settings.top}]"),
    selection: Optional[str] = typer.Option(None, help="Phase III selection: race (every distinct passing candidate of a run races on validation, its best --survivors train to convergence) or top (the paper's). [default: race; paper preset: top]"),
    survivors: Optional[int] = typer.Option(None, help=f"With --selection race: candidates per run that train to convergence. [default: {Phase3Settings.survivors}]"),
    rungs: Optional[str] = typer.Option(None, help=f"With --selection race: epochs at which the race keeps its best third. [default: {','.join(map(str, Phase3Settings.rungs))}]"),
    threshold: Optional[float] = typer.Option(None, help=f"Phase II pass mark. [default: {CheckSettings.threshold}]"),
    phase3_seeds: Optional[int] = typer.Option(None, "--phase3-seeds", help=f"Phase III seeds per loss. [default: {Phase3Settings.seeds}]"),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs", help=f"Phase III epoch cap per training run. [default: {Phase3Settings.max_epochs}]"),
    early_stop: Optional[str] = typer.Option(None, "--early-stop", help=f"Phase III early-stop rules: paper or official (the authors' code). [default: {Phase3Settings.early_stop}]"),
    baselines: Optional[str] = typer.Option(None, help=f"Handcrafted losses in the same Phase III. [default: {Phase3Settings.baselines}]"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file of option values (command line wins)."),
    executor: Optional[str] = typer.Option(None, help=EXECUTOR_HELP + " With ray every search is a Ray task and --jobs is ignored."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
) -> None:
    """Compare search strategies head to head: equal budgets, several seeds, one Phase III, paired
    tests. Resumable: the same command again continues where it stopped."""
    own = {"strategies": strategies, "seeds": seeds, "budget": budget, "out": out, "jobs": jobs, "patience": patience,
           "top": top, "threshold": threshold, "phase3_seeds": phase3_seeds, "max_epochs": max_epochs, "early_stop": early_stop,
           "baselines": baselines, "selection": selection, "survivors": survivors, "rungs": rungs}
    s = _settings({**options, **own}, config)
    plan = _plan(s)
    where = executor_settings(executor, ray_address)
    out_dir = Path(s["out"])
    columns = [TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, int] = {}
        plain = PlainProgress()

        def on_round(name: str, r: dict) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=plan.budget)
            best = "-" if r["best"] is None else f"{r['best']:+.4f}"
            text = f"{name}: evaluated {r['evaluated']}, sampled {r['sampled']}, best {best}"
            bar.update(tasks[name], completed=min(r["evaluated"], plan.budget), description=text)
            plain(text)

        def on_run_done(o: dict) -> None:
            if o["run"] in tasks:
                bar.remove_task(tasks.pop(o["run"]))
            t = o["totals"]
            console.print(f"{o['run']}: {o['stopped']}; {t['evaluated']} evaluated, {t['sampled']} sampled, "
                          f"{o['elapsed']:.1f} s of search", highlight=False)

        phase3_task: list[int] = []

        def on_phase(name: str) -> None:
            text = {"search": "Phase I: searching", "check": "Phase II on every run",
                    "phase3": "Phase III (shared)", "report": "writing the report"}[name]
            console.print(text, highlight=False)
            if name == "phase3":
                phase3_task.append(bar.add_task("Phase III", total=plan.max_epochs))

        def on_epoch(epoch: int, active: int) -> None:
            bar.update(phase3_task[0], completed=epoch, description=f"Phase III: epoch {epoch}, {active} runs training")
            plain(f"Phase III: epoch {epoch} of at most {plan.max_epochs}, {active} runs training")

        def on_race(epoch: int, active: int) -> None:
            last = max(plan.rungs)
            bar.update(phase3_task[0], description=f"Phase III race: epoch {epoch} of {last}, {active} racers training")
            plain(f"Phase III race: epoch {epoch} of {last}, {active} racers training")

        try:
            result = run_compare(plan, out_dir, s["jobs"],
                                 CompareHooks(on_round, on_run_done, on_phase, on_epoch, on_race),
                                 command_line(s), executor=where)
        except KeyboardInterrupt:
            console.print(f"interrupted: finished work is saved in {out_dir}; run the same command to resume", highlight=False)
            raise typer.Exit(130)
        except (RunError, ValueError, OSError) as err:
            fail(str(err))
    _print_summary(plan, result["summary"])
    console.print(f"report: {out_dir / 'compare.md'}", highlight=False)


def _print_summary(plan, summary: dict) -> None:
    metric = summary["metric"].upper()
    table = Table(title=f"{len(plan.seeds)} seeds, budget {plan.budget} evaluations (mean ± std)")
    versus = f"vs {summary['reference']}" if summary["reference"] else "vs baseline"
    for col in ("strategy", "best reward", "sampled", "evaluated", "pass II", f"test {metric} of best", versus):
        table.add_column(col)

    def cell(d: dict, digits: int = 4) -> str:
        return "–" if not d["n"] else f"{d['mean']:.{digits}f} ± {d['std']:.{digits}f}"

    for st in plan.strategies:
        p = summary["per_strategy"][st]
        table.add_row(st, cell(p["best_reward"]), cell(p["sampled"], 0), cell(p["evaluated"], 0), cell(p["passing"], 1),
                      cell(p["best_test"]), cell(p["vs_baseline"]))
    console.print(table)
