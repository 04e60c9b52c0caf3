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
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lossgen.cli_pipeline import (
    CLAMP_OPT, CONFIG_OPT, DATA_DIR_OPT, DATASET_OPT, DEDUPE_OPT, DEFAULT_PATIENCE, DELTA_OPT, DEVICE_OPT, ETA_OPT,
    FILTERING_OPT, LR_OPT, MAX_ROUNDS_OPT, MAX_SAMPLED_OPT, MAX_STEPS_OPT, MODEL_OPT, OPS_OPT, OPTIMIZER_OPT,
    OPTION_TYPES, PER_ROUND_OPT, PROXY_BATCH_OPT, PROXY_OPT, SEARCH_DEFAULTS, TASK_OPT, TIME_LIMIT_OPT,
    ZERO_REWARD_OPT, _fail,
)

console = Console()

# The search options every run shares (the strategy, seed, budget and run directory are per run).
SHARED_SEARCH = [k for k in SEARCH_DEFAULTS if k not in ("strategy", "seed", "run_dir", "budget")]
COMPARE_DEFAULTS = {
    **{k: SEARCH_DEFAULTS[k] for k in SHARED_SEARCH}, "patience": DEFAULT_PATIENCE,
    "strategies": "rl,evolution,random", "seeds": 3, "budget": 300, "out": None, "jobs": 1, "top": 3,
    "threshold": 0.9, "phase3_seeds": 3, "max_epochs": 300, "baselines": "BCE,MSE,Hinge,Focal",
}
ALWAYS_SHOWN = ("strategies", "seeds", "budget", "dataset", "model", "out")  # first in the recorded command


def _settings(cli: dict, config_file: Optional[Path]) -> dict:
    from lossgen.cli_config import load_config_file, resolve

    try:
        file = load_config_file(config_file, set(COMPARE_DEFAULTS))
        return resolve(cli, file, COMPARE_DEFAULTS, {**OPTION_TYPES, "out": str})
    except ValueError as err:
        _fail(str(err))


def command_line(s: dict) -> str:
    """The command that reproduces these settings (options at their default left out)."""
    parts = ["lossgen", "compare"]
    for key in sorted(s, key=lambda k: ALWAYS_SHOWN.index(k) if k in ALWAYS_SHOWN else len(ALWAYS_SHOWN)):
        value = s[key]
        if value is None or (key not in ALWAYS_SHOWN and value == COMPARE_DEFAULTS[key]):
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{key.replace('_', '-')}")
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def _plan(s: dict):
    from lossgen.compare.plan import ComparePlan

    if s["out"] is None:
        _fail("--out is required: the directory that holds the comparison")
    strategies = tuple(p.strip() for p in str(s["strategies"]).split(",") if p.strip())
    plan = ComparePlan(strategies=strategies, seeds=tuple(range(s["seeds"])) if s["seeds"] >= 1 else (),
                       budget=s["budget"], search={k: s[k] for k in SHARED_SEARCH}, top=s["top"],
                       threshold=s["threshold"], phase3_seeds=s["phase3_seeds"], max_epochs=s["max_epochs"],
                       baselines=s["baselines"])
    try:
        plan.check()
        if s["jobs"] < 1:
            raise ValueError(f"--jobs must be at least 1, got {s['jobs']}")
        from lossgen.cli_pipeline import search_setup

        search_setup(plan.run_settings(Path(s["out"]), strategies[0], 0))  # every run's settings check out
    except ValueError as err:
        _fail(str(err))
    return plan


def compare(
    strategies: Optional[str] = typer.Option(None, help="Comma-separated strategies. [default: rl,evolution,random]"),
    seeds: Optional[int] = typer.Option(None, help="Search seeds per strategy (0, 1, ...). [default: 3]"),
    budget: Optional[int] = typer.Option(None, help="Full candidate evaluations per run. [default: 300]"),
    out: Optional[str] = typer.Option(None, help="Directory of the comparison (runs, Phase III, report)."),
    jobs: Optional[int] = typer.Option(None, help="Searches run in parallel processes. [default: 1]"),
    dataset: Optional[str] = DATASET_OPT, data_dir: Optional[str] = DATA_DIR_OPT, model: Optional[str] = MODEL_OPT,
    task: Optional[str] = TASK_OPT,
    patience: Optional[int] = typer.Option(None, help=f"Safety stop per run: rounds without validation improvement. [default: {DEFAULT_PATIENCE}]"),
    max_sampled: Optional[int] = MAX_SAMPLED_OPT, time_limit: Optional[str] = TIME_LIMIT_OPT,
    max_rounds: Optional[int] = MAX_ROUNDS_OPT,
    top: Optional[int] = typer.Option(None, help="Best distinct passing candidates per run taken to Phase III. [default: 3]"),
    threshold: Optional[float] = typer.Option(None, help="Phase II pass mark. [default: 0.9]"),
    phase3_seeds: Optional[int] = typer.Option(None, "--phase3-seeds", help="Phase III seeds per loss. [default: 3]"),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs", help="Phase III epoch cap per training run. [default: 300]"),
    baselines: Optional[str] = typer.Option(None, help="Handcrafted losses in the same Phase III. [default: BCE,MSE,Hinge,Focal]"),
    device: Optional[str] = DEVICE_OPT, config: Optional[Path] = CONFIG_OPT, clamp: Optional[str] = CLAMP_OPT,
    ops: Optional[str] = OPS_OPT, max_steps: Optional[int] = MAX_STEPS_OPT, per_round: Optional[int] = PER_ROUND_OPT,
    proxy: Optional[bool] = PROXY_OPT, dedupe: Optional[bool] = DEDUPE_OPT, filtering: Optional[bool] = FILTERING_OPT,
    eta: Optional[float] = ETA_OPT, delta: Optional[float] = DELTA_OPT, proxy_batch: Optional[int] = PROXY_BATCH_OPT,
    zero_reward: Optional[float] = ZERO_REWARD_OPT, optimizer: Optional[str] = OPTIMIZER_OPT, lr: Optional[float] = LR_OPT,
) -> None:
    """Compare search strategies head to head: equal budgets, several seeds, one Phase III, paired
    tests. Resumable: the same command again continues where it stopped."""
    from lossgen.compare.runner import CompareHooks, run_compare
    from lossgen.store import RunError

    s = _settings({k: v for k, v in locals().items() if k != "config"}, config)
    plan = _plan(s)
    out_dir = Path(s["out"])
    columns = [TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def on_round(name: str, r: dict) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=plan.budget)
            best = "-" if r["best"] is None else f"{r['best']:+.4f}"
            bar.update(tasks[name], completed=min(r["evaluated"], plan.budget),
                       description=f"{name}: evaluated {r['evaluated']}, sampled {r['sampled']}, best {best}")

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

        try:
            result = run_compare(plan, out_dir, s["jobs"], CompareHooks(on_round, on_run_done, on_phase, on_epoch),
                                 command_line(s))
        except KeyboardInterrupt:
            console.print(f"interrupted: finished work is saved in {out_dir}; run the same command to resume", highlight=False)
            raise typer.Exit(130)
        except (RunError, ValueError, OSError) as err:
            _fail(str(err))
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
