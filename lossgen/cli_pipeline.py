"""`lossgen search | check | run`: Phase I, Phase II and the whole pipeline from the command line.

Every option can also come from `--config FILE` (TOML, keys = option names; see cli_config.py).
A search writes a run directory (lossgen.store); the same command again resumes it, and a
larger limit extends a finished one. User errors print one line and exit 2.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()

# When no stopping rule is given: 200 evaluations, or 500 rounds without validation improvement
# (a strategy that only proposes duplicates may never reach the budget).
DEFAULT_BUDGET, DEFAULT_PATIENCE = 200, 500

# Option name -> built-in default (None: unset). The command line overrides the config file.
SEARCH_DEFAULTS = {
    "strategy": "rl", "dataset": "synthetic", "data_dir": None, "model": "mf", "task": "classification",
    "budget": None, "max_sampled": None, "time_limit": None, "max_rounds": None, "patience": None,
    "seed": 0, "device": "cpu", "run_dir": None, "clamp": "paper", "ops": "paper", "max_steps": 7,
    "per_round": 10, "proxy": True, "dedupe": True, "filtering": True, "eta": 1e-3, "delta": 1e-4,
    "proxy_batch": None, "zero_reward": -0.05, "optimizer": "sgd", "lr": 0.01,
}
# Types of the options whose default is None, for checking config-file values.
OPTION_TYPES = {"data_dir": str, "budget": int, "max_sampled": int, "time_limit": (str, int, float), "max_rounds": int,
                "patience": int, "run_dir": str, "proxy_batch": int}
PHASE_DEFAULTS = {"threshold": 0.9, "top": 3, "seeds": 3, "max_epochs": 300, "baselines": "BCE,MSE,Hinge,Focal"}

# Options shared by `search` and `run`.
STRATEGY_OPT = typer.Option(None, help="Search strategy: rl, evolution or random. [default: rl]")
DATASET_OPT = typer.Option(None, help="ml-100k, synthetic[:...], a split directory or a ratings CSV. [default: synthetic]")
DATA_DIR_OPT = typer.Option(None, "--data-dir", help="Directory holding ml-100k/u.data.")
MODEL_OPT = typer.Option(None, help="Recommender: mf or mlp. [default: mf]")
TASK_OPT = typer.Option(None, help="classification (AUC reward) or regression (-RMSE). [default: classification]")
BUDGET_OPT = typer.Option(None, help=f"Stop after this many full candidate evaluations. [default: {DEFAULT_BUDGET}, with --patience {DEFAULT_PATIENCE}, if no limit is given]")
MAX_SAMPLED_OPT = typer.Option(None, "--max-sampled", help="Stop after this many sampled candidates.")
TIME_LIMIT_OPT = typer.Option(None, "--time-limit", help="Stop after this much search time: 3600, 90m, 2h.")
MAX_ROUNDS_OPT = typer.Option(None, "--max-rounds", help="Stop after this many rounds.")
PATIENCE_OPT = typer.Option(None, help="Stop when the recommender's validation metric has not improved for this many rounds.")
SEED_OPT = typer.Option(None, help="Seed of the strategy, the recommender and the batch order. [default: 0]")
DEVICE_OPT = typer.Option(None, help="cpu (the population trainers run on cpu). [default: cpu]")
RUN_DIR_OPT = typer.Option(None, "--run-dir", help="Run directory. [default: runs/<strategy>-<dataset>-<model>-s<seed>]")
CONFIG_OPT = typer.Option(None, "--config", help="TOML file of option values (command line wins).")
CLAMP_OPT = typer.Option(None, help="Clamp mode: paper, official or symmetric. [default: paper]")
OPS_OPT = typer.Option(None, help="Operator set: paper (Table 2), extended, or names like add,mul,log. [default: paper]")
MAX_STEPS_OPT = typer.Option(None, "--max-steps", help="Longest program. [default: 7]")
PER_ROUND_OPT = typer.Option(None, "--per-round", help="Candidates asked per round. [default: 10]")
PROXY_OPT = typer.Option(None, "--proxy/--no-proxy", help="Proxy test (zero-gradient and gradient duplicates). [default: on]")
DEDUPE_OPT = typer.Option(None, "--dedupe/--no-dedupe", help="Run-wide fingerprint duplicates. [default: on]")
FILTERING_OPT = typer.Option(None, "--filtering/--no-filtering", help="Reward filtering. [default: on]")
ETA_OPT = typer.Option(None, help="Reward filtering accepts reward >= -eta. [default: 0.001]")
DELTA_OPT = typer.Option(None, help="Proxy test threshold on gradient norms and distances. [default: 1e-4]")
PROXY_BATCH_OPT = typer.Option(None, "--proxy-batch", help="|B| of the proxy test. [default: 5, or 20 above 200,000 training examples]")
ZERO_REWARD_OPT = typer.Option(None, "--zero-reward", help="Reward of zero-gradient and diverged candidates. [default: -0.05]")
OPTIMIZER_OPT = typer.Option(None, help="Recommender optimizer: sgd or adam. [default: sgd]")
LR_OPT = typer.Option(None, help="Recommender learning rate. [default: 0.01]")


def _fail(message: str) -> None:
    from lossgen.cli import fail

    fail(message)


def parse_duration(text: str) -> float:
    """Seconds from '3600', '90s', '90m', '2h' or '1.5h'."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", str(text))
    if not match:
        raise ValueError(f"cannot read the time limit {text!r}; write e.g. 3600, 90m or 2h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _settings(cli: dict, config_file: Optional[Path], extra_defaults: dict | None = None) -> dict:
    from lossgen.cli_config import load_config_file, resolve

    defaults = {**SEARCH_DEFAULTS, **(extra_defaults or {})}
    try:
        # one file serves `search` and `run`: search reads the search keys and ignores the phase keys
        file = load_config_file(config_file, set(SEARCH_DEFAULTS) | set(PHASE_DEFAULTS))
        return resolve(cli, file, defaults, OPTION_TYPES)
    except ValueError as err:
        _fail(str(err))


def search_setup(s: dict):
    """(SearchConfig, SearchLimits) from resolved option values; ValueError names a bad one."""
    from lossgen.phases.search import SearchConfig, SearchLimits
    from lossgen.train import TrainConfig

    if s["device"] != "cpu":
        raise ValueError(f"--device {s['device']!r}: the population trainers run on cpu only for now")
    try:
        time_limit = parse_duration(s["time_limit"]) if s["time_limit"] is not None else None
        limits = SearchLimits(s["budget"], s["max_sampled"], time_limit, s["max_rounds"], s["patience"])
        if all(v is None for v in (limits.budget, limits.max_sampled, limits.time_limit, limits.max_rounds, limits.patience)):
            limits = SearchLimits(budget=DEFAULT_BUDGET, patience=DEFAULT_PATIENCE)
        limits.check()
        ops = s["ops"] if s["ops"] in ("paper", "extended") else tuple(p.strip() for p in s["ops"].split(",") if p.strip())
        config = SearchConfig(
            strategy=s["strategy"], strategy_config={"op_set": ops, "max_steps": s["max_steps"]}, seed=s["seed"],
            per_round=s["per_round"], proxy=s["proxy"], dedupe=s["dedupe"], proxy_batch=s["proxy_batch"],
            delta=s["delta"], zero_reward=s["zero_reward"], filtering=s["filtering"], eta=s["eta"],
            model=s["model"], task=s["task"], clamp=s["clamp"],
            train=TrainConfig(lr=s["lr"], optimizer=s["optimizer"]))
        config.check()
    except TypeError as err:
        raise ValueError(str(err)) from None
    return config, limits


def _search_config(s: dict):
    try:
        return search_setup(s)
    except ValueError as err:
        _fail(str(err))


def default_run_dir(s: dict) -> Path:
    data = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(s["dataset"])).name) or "data"
    return Path("runs") / f"{s['strategy']}-{data}-{s['model']}-s{s['seed']}"


def _load_data(spec: str, data_dir: Optional[str]):
    from lossgen.data import load

    try:
        return load(spec, data_dir)
    except (ValueError, OSError) as err:
        _fail(str(err))


def _round_line(r) -> str:
    best = "-" if r.best_so_far is None else f"{r.best_so_far:+.4f}"
    t = r.totals
    return (f"round {r.round} | evaluated {t['evaluated']} | sampled {t['sampled']} | best reward {best} | "
            f"accepted {t['accepted']} | proxy skipped {t['zero_gradient']} | duplicates {t['duplicates']} | "
            f"val {r.metric.upper()} {r.validation:.4f}")


def run_search(s: dict):
    """Phase I with resolved settings `s`; returns (store, dataset, result)."""
    from lossgen.phases.search import LossSearch, run_config
    from lossgen.store import RunError, RunStore

    config, limits = _search_config(s)
    dataset = _load_data(s["dataset"], s["data_dir"])
    run_dir = Path(s["run_dir"]) if s["run_dir"] else default_run_dir(s)
    try:
        config = config.resolved(dataset)
        store = RunStore.open_or_create(run_dir, run_config(config, dataset, str(s["dataset"])))
        search = LossSearch(dataset, store, config)
    except (RunError, ValueError) as err:
        _fail(str(err))
    resumed = store.last_round() + 1
    console.print(f"run directory {run_dir}" + (f" (resuming after round {resumed - 1})" if resumed else ""), highlight=False)
    total = limits.budget or limits.max_sampled or limits.max_rounds
    columns = [TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()]
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            job = bar.add_task("searching", total=total)

            def progress(r) -> None:
                done = {limits.budget: r.totals["evaluated"], limits.max_sampled: r.totals["sampled"]}.get(total, r.round + 1)
                bar.update(job, completed=done, description=_round_line(r))

            result = search.run(limits, progress)
    except KeyboardInterrupt:
        console.print(f"interrupted: completed rounds are saved in {run_dir}; run the same command to resume", highlight=False)
        raise typer.Exit(130)
    seconds = max(result.elapsed, 1e-9)
    t = result.totals
    console.print(f"search stopped: {result.stopped}. {result.rounds} rounds, {t['sampled']} sampled "
                  f"({t['sampled'] / seconds:.1f}/s), {t['evaluated']} evaluated ({t['evaluated'] / seconds:.1f}/s), "
                  f"{t['accepted']} accepted, {t['zero_gradient']} zero-gradient, {t['duplicates']} duplicates, {result.elapsed:.1f} s", highlight=False)
    if result.best_id is not None:
        best = store.candidates("WHERE id = ?", (result.best_id,))[0]
        console.print(f"best candidate {best['id']}: {best['formula']} (reward {best['reward']:+.4f})", highlight=False)
    return store, dataset, result


def search(
    strategy: Optional[str] = STRATEGY_OPT, dataset: Optional[str] = DATASET_OPT, data_dir: Optional[str] = DATA_DIR_OPT,
    model: Optional[str] = MODEL_OPT, task: Optional[str] = TASK_OPT, budget: Optional[int] = BUDGET_OPT,
    max_sampled: Optional[int] = MAX_SAMPLED_OPT, time_limit: Optional[str] = TIME_LIMIT_OPT,
    max_rounds: Optional[int] = MAX_ROUNDS_OPT, patience: Optional[int] = PATIENCE_OPT, seed: Optional[int] = SEED_OPT,
    device: Optional[str] = DEVICE_OPT, run_dir: Optional[str] = RUN_DIR_OPT, config: Optional[Path] = CONFIG_OPT,
    clamp: Optional[str] = CLAMP_OPT, ops: Optional[str] = OPS_OPT, max_steps: Optional[int] = MAX_STEPS_OPT,
    per_round: Optional[int] = PER_ROUND_OPT, proxy: Optional[bool] = PROXY_OPT, dedupe: Optional[bool] = DEDUPE_OPT,
    filtering: Optional[bool] = FILTERING_OPT, eta: Optional[float] = ETA_OPT, delta: Optional[float] = DELTA_OPT,
    proxy_batch: Optional[int] = PROXY_BATCH_OPT, zero_reward: Optional[float] = ZERO_REWARD_OPT,
    optimizer: Optional[str] = OPTIMIZER_OPT, lr: Optional[float] = LR_OPT,
) -> None:
    """Phase I: search for losses with a strategy; resumable (run the same command again)."""
    cli = {k: v for k, v in locals().items() if k != "config"}
    store, _, _ = run_search(_settings(cli, config))
    store.close()


def _open_run(run: Path):
    from lossgen.store import RunError, RunStore

    try:
        return RunStore.open_existing(run)
    except RunError as err:
        _fail(str(err))


def run_check(store, threshold: float, pairs: int = 2000):
    from lossgen.phases.runs import check_run
    from lossgen.store import RunError

    try:
        summary = check_run(store, threshold, pairs)
    except (RunError, ValueError) as err:
        _fail(str(err))
    console.print(f"Phase II: {summary.passed} of {summary.distinct} distinct evaluated losses pass "
                  f"(positive rate >= {summary.threshold:g}); {summary.checked} candidates rated", highlight=False)
    return summary


def check(
    run: Optional[Path] = typer.Argument(None, help="A run directory: rate every candidate it recorded."),
    loss: list[str] = typer.Option([], "--loss", help="A loss formula; repeatable (instead of a run)."),
    clamp: str = typer.Option("paper", help="Clamp mode of --loss formulas (a run uses its own)."),
    threshold: float = typer.Option(0.9, help="Pass at a positive rate at or above this."),
    pairs: int = typer.Option(2000, help="Synthesized (y_hat, y) pairs."),
) -> None:
    """Phase II, the validation check: the share of synthesized pairs where a loss's gradient has
    the right sign (>= 0 for y = 0, <= 0 for y = 1). With formulas, exit 1 if any fails."""
    from lossgen.formula import parse
    from lossgen.phases.check import validation_check

    if run is not None:
        if loss:
            _fail("give a run directory or --loss formulas, not both")
        store = _open_run(run)
        run_check(store, threshold, pairs)
        store.close()
        return
    if not loss:
        _fail("give a run directory or at least one --loss formula")
    try:
        programs = [parse(text) for text in loss]
        result = validation_check(programs, clamp, threshold, pairs)
    except ValueError as err:
        _fail(str(err))
    table = Table(title=f"Validation check ({pairs:,} pairs, clamp={clamp}, pass at >= {threshold:g})")
    for col in ("loss", "positive rate", "result"):
        table.add_column(col)
    for program, rate, ok in zip(programs, result.rates, result.passed):
        table.add_row(str(program), f"{rate:.4f}", "pass" if ok else "fail")
    console.print(table)
    if not all(result.passed):
        raise typer.Exit(1)


def run(
    strategy: Optional[str] = STRATEGY_OPT, dataset: Optional[str] = DATASET_OPT, data_dir: Optional[str] = DATA_DIR_OPT,
    model: Optional[str] = MODEL_OPT, task: Optional[str] = TASK_OPT, budget: Optional[int] = BUDGET_OPT,
    max_sampled: Optional[int] = MAX_SAMPLED_OPT, time_limit: Optional[str] = TIME_LIMIT_OPT,
    max_rounds: Optional[int] = MAX_ROUNDS_OPT, patience: Optional[int] = PATIENCE_OPT, seed: Optional[int] = SEED_OPT,
    device: Optional[str] = DEVICE_OPT, run_dir: Optional[str] = RUN_DIR_OPT, config: Optional[Path] = CONFIG_OPT,
    clamp: Optional[str] = CLAMP_OPT, ops: Optional[str] = OPS_OPT, max_steps: Optional[int] = MAX_STEPS_OPT,
    per_round: Optional[int] = PER_ROUND_OPT, proxy: Optional[bool] = PROXY_OPT, dedupe: Optional[bool] = DEDUPE_OPT,
    filtering: Optional[bool] = FILTERING_OPT, eta: Optional[float] = ETA_OPT, delta: Optional[float] = DELTA_OPT,
    proxy_batch: Optional[int] = PROXY_BATCH_OPT, zero_reward: Optional[float] = ZERO_REWARD_OPT,
    optimizer: Optional[str] = OPTIMIZER_OPT, lr: Optional[float] = LR_OPT,
    threshold: Optional[float] = typer.Option(None, help="Phase II pass mark. [default: 0.9]"),
    top: Optional[int] = typer.Option(None, help="Best distinct passing candidates taken to Phase III. [default: 3]"),
    seeds: Optional[int] = typer.Option(None, help="Phase III seeds per loss. [default: 3]"),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs", help="Phase III epoch cap per run. [default: 300]"),
    baselines: Optional[str] = typer.Option(None, help="Handcrafted losses trained next to them. [default: BCE,MSE,Hinge,Focal]"),
) -> None:
    """All three phases: search, validation check, effectiveness test; then the run's report.
    Resumable: the same command again continues where it stopped."""
    from lossgen.cli_evaluate import run_phase3

    cli = {k: v for k, v in locals().items() if k not in ("config", "run_phase3")}
    s = _settings(cli, config, PHASE_DEFAULTS)
    if s["top"] < 1 or s["seeds"] < 1 or s["max_epochs"] < 1:
        _fail("--top, --seeds and --max-epochs must be at least 1")
    store, data, _ = run_search(s)
    run_check(store, s["threshold"])
    run_phase3(store, data, s["top"], s["seeds"], s["max_epochs"], s["baselines"], s["optimizer"])
    from lossgen.run_report import write_report

    paths = write_report(store.path)
    console.print(f"report: {paths[0].parent}", highlight=False)
    store.close()
