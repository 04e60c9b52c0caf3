"""The search options that `search`, `run` and `compare` share, declared once.

Each command names the options it takes; `with_options` adds them to its signature (typer reads
the signature) and hands the given values to the command as one dict, `options`. Defaults are the
library's (`lossgen.phases.settings.SEARCH_OPTIONS`): every option is declared with default None
so that a value from `--config FILE` can fill what the command line leaves out.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable, Optional

import typer

from lossgen.phases.settings import DEFAULT_BUDGET, DEFAULT_PATIENCE, SEARCH_OPTIONS

_D = SEARCH_OPTIONS


def _help(text: str, key: str | None = None) -> str:
    return text if key is None else f"{text} [default: {_D[key]}]"


# name -> (type, typer option)
SEARCH = {
    "strategy": (str, typer.Option(None, help=_help("Search strategy: rl, evolution or random.", "strategy"))),
    "dataset": (str, typer.Option(None, help=_help("ml-100k, synthetic[:...], a split directory or a ratings CSV.", "dataset"))),
    "data_dir": (str, typer.Option(None, "--data-dir", help="Directory holding ml-100k/u.data.")),
    "model": (str, typer.Option(None, help=_help("Recommender: mf or mlp.", "model"))),
    "task": (str, typer.Option(None, help=_help("classification (AUC reward) or regression (-RMSE).", "task"))),
    "budget": (int, typer.Option(None, help=f"Stop after this many full candidate evaluations. [default: {DEFAULT_BUDGET}, with --patience {DEFAULT_PATIENCE}, if no limit is given]")),
    "max_sampled": (int, typer.Option(None, "--max-sampled", help="Stop after this many sampled candidates.")),
    "time_limit": (str, typer.Option(None, "--time-limit", help="Stop after this much search time: 3600, 90m, 2h.")),
    "max_rounds": (int, typer.Option(None, "--max-rounds", help="Stop after this many rounds.")),
    "patience": (int, typer.Option(None, help="Stop when the recommender's validation metric has not improved for this many rounds.")),
    "seed": (int, typer.Option(None, help=_help("Seed of the strategy, the recommender and the batch order.", "seed"))),
    "device": (str, typer.Option(None, help=_help("cpu (the population trainers run on cpu).", "device"))),
    "run_dir": (str, typer.Option(None, "--run-dir", help="Run directory. [default: runs/<strategy>-<dataset>-<model>-s<seed>]")),
    "clamp": (str, typer.Option(None, help=_help("Clamp mode: paper, official or symmetric.", "clamp"))),
    "ops": (str, typer.Option(None, help=_help("Operator set: paper (Table 2), extended, or names like add,mul,log.", "ops"))),
    "max_steps": (int, typer.Option(None, "--max-steps", help=_help("Longest program.", "max_steps"))),
    "per_round": (int, typer.Option(None, "--per-round", help=_help("Candidates asked per round.", "per_round"))),
    "proxy": (bool, typer.Option(None, "--proxy/--no-proxy", help="Proxy test (zero-gradient and gradient duplicates). [default: on]")),
    "dedupe": (bool, typer.Option(None, "--dedupe/--no-dedupe", help="Run-wide fingerprint duplicates. [default: on]")),
    "filtering": (bool, typer.Option(None, "--filtering/--no-filtering", help="Reward filtering. [default: on]")),
    "eta": (float, typer.Option(None, help=_help("Reward filtering accepts reward >= -eta.", "eta"))),
    "delta": (float, typer.Option(None, help=_help("Proxy test threshold on gradient norms and distances.", "delta"))),
    "proxy_batch": (int, typer.Option(None, "--proxy-batch", help="|B| of the proxy test. [default: 5, or 20 above 200,000 training examples]")),
    "zero_reward": (float, typer.Option(None, "--zero-reward", help=_help("Reward of zero-gradient and diverged candidates.", "zero_reward"))),
    "optimizer": (str, typer.Option(None, help=_help("Recommender optimizer: sgd or adam.", "optimizer"))),
    "lr": (float, typer.Option(None, help=_help("Recommender learning rate.", "lr"))),
    "preset": (str, typer.Option(None, help=_help("Complete settings: lossgen (what finds good losses) or paper (the paper's algorithm as printed); any option given overrides its preset value.", "preset"))),
    "eps_grid": (str, typer.Option(None, "--eps-grid", help="Smoothing epsilons Phase I tries per candidate that uses Log, Reciprocal or Sqrt, e.g. 0.1,0.01,0.001; none: the paper's xi. [default: 0.1,0.01,0.001; paper preset: none]")),
    "reward": (str, typer.Option(None, help="Phase I reward: reference (one epoch from the run's fixed initial recommender: comparable across the run) or moving (the paper's: from the current recommender, which moves on). [default: reference; paper preset: moving]")),
    "strict": (bool, typer.Option(None, "--strict/--no-strict", help="The strict Phase II (both labels pushed the right way, no exploding gradient), also applied in Phase I before training. [default: on; paper preset: off]")),
    "novelty": (bool, typer.Option(None, "--novelty/--no-novelty", help="Strategies avoid proposing programs they proposed before. [default: on; paper preset: off]")),
}


def with_options(names: list[str], table: dict = SEARCH) -> Callable:
    """Add the options `names` (from `table`) to a command, collected into its `options` argument."""
    def wrap(command: Callable) -> Callable:
        signature = inspect.signature(command)
        own = [p for p in signature.parameters.values() if p.name != "options"]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=table[name][1],
                                   annotation=Optional[table[name][0]]) for name in names]

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            options = {name: kwargs.pop(name, None) for name in names}
            return command(*args, options=options, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=[*own, *added])
        return wrapper

    return wrap
