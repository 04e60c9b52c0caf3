"""Settings of the phases and their defaults: the one place for each default (a search's config
and limits, the Phase II pass mark, the Phase III selection), and the mapping from the flat option
names that the command line, TOML config files and old comparison plans use.

`SearchConfig` is what defines a search run (stored in its config.json; a resume must match it);
`SearchLimits` when it stops; `CheckSettings` Phase II; `Phase3Settings` which losses Phase III
trains and for how long.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields, replace

from lossgen.data.dataset import Dataset
from lossgen.phases.effectiveness import EARLY_STOP
from lossgen.runs.records import DEFAULT_THRESHOLD
from lossgen.search import create
from lossgen.ir.opset import parse_clamp
from lossgen.training.losses import BASELINES, parse_losses
from lossgen.training.metrics import metric_for_task
from lossgen.training.trainer import TrainConfig

DEFAULT_BASELINES = ",".join(BASELINES)  # BCE,MSE,Hinge,Focal
# When no stopping rule is given: 200 evaluations, or 500 rounds without validation improvement
# (a strategy that only proposes duplicates may never reach the budget).
DEFAULT_BUDGET, DEFAULT_PATIENCE = 200, 500
DEFAULT_DATASET = "synthetic"
# Phase I's smoothing-epsilon grid in the `lossgen` preset: every candidate that uses Log,
# Reciprocal or Sqrt trains once per value, side by side in the round's population, and keeps its
# best. Three decades where the paper's discovered losses work (MaxR as a program: test AUC 0.798
# at 1e-1, 0.806 at 1e-2 and 1e-3, 0.500 from 1e-5 down); Phase III tries the full grid.
DEFAULT_EPS_GRID = (1e-1, 1e-2, 1e-3)
REWARD_MODES = ("reference", "moving")


@dataclass(frozen=True)
class SearchConfig:
    """What defines a search run (stored in the run directory; a resume must match it)."""

    strategy: str = "rl"
    # e.g. {"op_set": "extended", "max_steps": 7}; the lossgen preset's strategies avoid re-proposing
    # programs (novelty), the paper preset's ({}) do not
    strategy_config: dict = field(default_factory=lambda: {"novelty": True})
    seed: int = 0
    per_round: int = 10  # candidates asked per round (the paper averages 10 rewards per update)
    proxy: bool = True  # zero-gradient and gradient-duplicate tests
    dedupe: bool = True  # run-wide fingerprint duplicates
    proxy_batch: int | None = None  # |B|; None: 5 up to 200,000 training examples, else 20
    delta: float = 1e-4
    zero_reward: float = -0.05  # reward of a zero-gradient (or diverged) candidate
    filtering: bool = True
    eta: float = 1e-3  # accept a copy when reward >= -eta
    model: str = "mf"
    dim: int = 64
    task: str = "classification"
    clamp: str = "symmetric"
    train: TrainConfig = TrainConfig()
    preset: str = "lossgen"  # the preset these settings started from (recorded with the run)
    # Phase I smoothing epsilons per candidate (empty: the paper's xi with sign(0) = 0)
    eps_grid: tuple[float, ...] = DEFAULT_EPS_GRID
    # `reference`: every candidate trains one epoch from the run's fixed reference state (the
    # initial recommender), so rewards are comparable across the run; `moving`: the paper's, from
    # the current recommender, which moves on with the best accepted copy (reward filtering)
    reward: str = "reference"
    strict: bool = True  # Phase I rejects candidates that fail the strict Phase II before training them

    def check(self) -> None:
        for name in ("delta", "eta", "zero_reward"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name.replace('_', '-')} must be a finite number, got {value}")
        if self.per_round < 1:
            raise ValueError(f"per_round must be at least 1, got {self.per_round}")
        if self.proxy_batch is not None and self.proxy_batch < 1:
            raise ValueError(f"proxy_batch must be at least 1, got {self.proxy_batch}")
        if self.delta < 0 or self.eta < 0:
            raise ValueError("delta and eta must be >= 0")
        if self.model not in ("mf", "mlp"):
            raise ValueError(f"unknown model {self.model!r}; choose mf or mlp")
        metric_for_task(self.task)
        parse_clamp(self.clamp)
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose {' or '.join(PRESETS)}")
        if self.reward not in REWARD_MODES:
            raise ValueError(f"unknown reward mode {self.reward!r}; choose {' or '.join(REWARD_MODES)}")
        for e in self.eps_grid:
            if not (isinstance(e, (int, float)) and math.isfinite(e) and e > 0):
                raise ValueError(f"eps-grid values must be finite numbers > 0, got {e}")
        if len(set(self.eps_grid)) != len(self.eps_grid):
            raise ValueError(f"eps-grid has a value twice: {','.join(f'{e:g}' for e in self.eps_grid)}")
        create(self.strategy, dict(self.strategy_config), seed=self.seed)  # validates name and config

    @staticmethod
    def from_preset(name: str, **changes) -> "SearchConfig":
        """The settings of preset `name` (`lossgen` or `paper`), with `changes` on top."""
        values = {k: v for k, v in preset_options(name).items() if k in _FIELDS}
        return SearchConfig(**{**values, **changes})

    def resolved(self, dataset: Dataset) -> "SearchConfig":
        """The config with data-dependent defaults filled in."""
        if self.proxy_batch is not None:
            return self
        return replace(self, proxy_batch=5 if len(dataset.train) <= 200_000 else 20)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "SearchConfig":
        """From the stored form; a config stored before presets existed gets the `paper` preset's
        values for the settings it lacks (what every run did then)."""
        d = dict(d)
        train = d.pop("train", {})
        if "preset" not in d:
            d = {**PAPER_SEARCH, **d}
        d["eps_grid"] = tuple(d.get("eps_grid", ()))
        return SearchConfig(**d, train=TrainConfig.from_dict(train))


@dataclass(frozen=True)
class SearchLimits:
    """When a run stops (checked between rounds; not part of the run's identity, so a finished
    run can be extended with larger limits). At least one must be set."""

    budget: int | None = None  # full candidate evaluations
    max_sampled: int | None = None  # sampled candidates
    time_limit: float | None = None  # seconds of search (accumulated over resumes)
    max_rounds: int | None = None
    patience: int | None = None  # rounds without improvement of the recommender's validation metric

    @staticmethod
    def default() -> "SearchLimits":
        """The limits when none is given."""
        return SearchLimits(budget=DEFAULT_BUDGET, patience=DEFAULT_PATIENCE)

    @property
    def empty(self) -> bool:
        return all(v is None for v in asdict(self).values())

    def check(self) -> None:
        values = asdict(self)
        if all(v is None for v in values.values()):
            raise ValueError("no stopping rule: give a budget, max_sampled, time_limit, max_rounds or patience")
        for name, v in values.items():
            if v is not None and not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v}")
            if v is not None and v <= 0:
                raise ValueError(f"{name} must be positive, got {v}")

    def reached(self, totals: dict, elapsed: float, rounds: int, stale: int) -> str | None:
        if self.budget is not None and totals["evaluated"] >= self.budget:
            return f"budget of {self.budget} evaluations reached"
        if self.max_sampled is not None and totals["sampled"] >= self.max_sampled:
            return f"{self.max_sampled} candidates sampled"
        if self.time_limit is not None and elapsed >= self.time_limit:
            return f"time limit of {self.time_limit:g} s reached"
        if self.max_rounds is not None and rounds >= self.max_rounds:
            return f"{self.max_rounds} rounds done"
        if self.patience is not None and stale >= self.patience:
            return f"no validation improvement for {self.patience} rounds"
        return None


@dataclass(frozen=True)
class CheckSettings:
    """Phase II, the validation check."""

    threshold: float = DEFAULT_THRESHOLD  # pass at a positive rate at or above this (paper Table 8)
    pairs: int = 2000  # synthesized (y_hat, y) pairs
    strict: bool = True  # also the strict rule (lossgen.phases.check.strict_pass); the paper preset: off

    def check(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.pairs < 2:
            raise ValueError(f"the validation check needs at least 2 pairs, got {self.pairs}")


@dataclass(frozen=True)
class Phase3Settings:
    """Which losses Phase III trains next to a run's candidates, and how long."""

    top: int = 3  # with selection `top`: best distinct passing candidates, by search reward
    seeds: int = 3  # seeds 0 .. seeds-1 per loss
    max_epochs: int = 300
    baselines: str = DEFAULT_BASELINES
    early_stop: str = "paper"  # a key of lossgen.phases.effectiveness.EARLY_STOP (paper, official)
    # `race`: every distinct passing candidate (each with the full epsilon grid) enters successive
    # halving on validation and the `survivors` best train to convergence; `top`: the paper's
    # selection of the `top` candidates by search reward
    selection: str = "race"
    survivors: int = 3
    rungs: tuple[int, ...] = (5, 15, 45)  # cumulative epochs at which the race keeps its best third

    def check(self) -> None:
        if self.selection not in SELECTIONS:
            raise ValueError(f"unknown selection {self.selection!r}; choose {' or '.join(SELECTIONS)}")
        if self.survivors < 1:
            raise ValueError(f"survivors must be at least 1, got {self.survivors}")
        if not self.rungs or any(r < 1 for r in self.rungs) or list(self.rungs) != sorted(set(self.rungs)):
            raise ValueError(f"rungs must be increasing epoch counts >= 1, got {','.join(map(str, self.rungs))}")
        if self.early_stop not in EARLY_STOP:
            raise ValueError(f"unknown early stop {self.early_stop!r}; choose {' or '.join(EARLY_STOP)}")
        for name in ("top", "seeds", "max_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.baselines.strip():
            parse_losses(self.baselines)


SELECTIONS = ("race", "top")
_FIELDS = {f.name for f in fields(SearchConfig)}


# ------------------------------------------------------------------------------ presets
#
# A preset names complete settings (DESIGN.md "Presets"): `lossgen`, the default, is the dataclass
# defaults above; `paper` is the paper's algorithm as printed. Both are written with the flat option
# names; an option given on the command line or in a config file overrides its preset value.

PAPER_SEARCH = {"preset": "paper", "clamp": "paper", "eps_grid": (), "reward": "moving", "strict": False,
                "strategy_config": {}}
PRESETS = {
    "lossgen": {"preset": "lossgen"},
    "paper": {**PAPER_SEARCH, "novelty": False, "selection": "top"},
}
DEFAULT_PRESET = "lossgen"


def preset_options(name: str | None) -> dict:
    """The flat option values of preset `name` (None: the default preset)."""
    name = DEFAULT_PRESET if name is None else name
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose {' or '.join(PRESETS)}")
    return dict(PRESETS[name])


def run_config(config: SearchConfig, dataset: Dataset, dataset_spec: str) -> dict:
    """The dict stored as the run's config.json: the search config plus what identifies the data."""
    return {**config.to_dict(), "dataset": dataset_spec, "data_key": dataset.key,
            "data_shape": [dataset.n_users, dataset.n_items, len(dataset.train), len(dataset.validation)]}


def parse_duration(text) -> float:
    """Seconds from 3600, '3600', '90s', '90m', '2h' or '1.5h'."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", str(text))
    if not match:
        raise ValueError(f"cannot read the time limit {text!r}; write e.g. 3600, 90m or 2h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


# ------------------------------------------------------------------------ the flat option names

_C, _T = SearchConfig(), TrainConfig()
# Flat option name -> default, for a search (the command line's and TOML files' names).
SEARCH_OPTIONS = {
    "strategy": _C.strategy, "dataset": DEFAULT_DATASET, "data_dir": None, "model": _C.model, "task": _C.task,
    "budget": None, "max_sampled": None, "time_limit": None, "max_rounds": None, "patience": None,
    "seed": _C.seed, "device": "cpu", "run_dir": None, "clamp": _C.clamp, "ops": "paper", "max_steps": 7,
    "per_round": _C.per_round, "proxy": _C.proxy, "dedupe": _C.dedupe, "filtering": _C.filtering, "eta": _C.eta,
    "delta": _C.delta, "proxy_batch": _C.proxy_batch, "zero_reward": _C.zero_reward, "optimizer": _T.optimizer,
    "lr": _T.lr, "preset": _C.preset, "eps_grid": _C.eps_grid, "reward": _C.reward, "strict": _C.strict,
    "novelty": True,
}
_CH, _P3 = CheckSettings(), Phase3Settings()
PHASE_OPTIONS = {"threshold": _CH.threshold, "top": _P3.top, "seeds": _P3.seeds, "max_epochs": _P3.max_epochs,
                 "baselines": _P3.baselines, "early_stop": _P3.early_stop, "selection": _P3.selection,
                 "survivors": _P3.survivors, "rungs": _P3.rungs}
# Types of the options whose default is None or not a plain scalar, for checking config-file values.
OPTION_TYPES = {"data_dir": str, "budget": int, "max_sampled": int, "time_limit": (str, int, float), "max_rounds": int,
                "patience": int, "run_dir": str, "proxy_batch": int, "eps_grid": (str, list, tuple),
                "rungs": (str, list, tuple)}
LIMIT_OPTIONS = ("budget", "max_sampled", "time_limit", "max_rounds", "patience")


def parse_numbers(text, name: str, kind=float) -> tuple:
    """A list of numbers from "0.1,0.01", a list, or ""/"none" (empty); ValueError names `name`."""
    if isinstance(text, (list, tuple)):
        items = list(text)
    elif str(text).strip().lower() in ("", "none"):
        items = []
    else:
        items = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        return tuple(kind(v) for v in items)
    except (TypeError, ValueError):
        raise ValueError(f"cannot read --{name.replace('_', '-')} {text!r}: write numbers separated by commas") from None


def preset_defaults(defaults: dict, preset: str | None) -> dict:
    """`defaults` (flat option name -> value) with the values of `preset` for the keys it has."""
    return {**defaults, **{k: v for k, v in preset_options(preset).items() if k in defaults}}


def with_preset(given: dict) -> dict:
    """Flat option values: `given` (None: not given) over the values of its preset over the
    defaults; the preset is `given["preset"]`, or the default one."""
    values = {**SEARCH_OPTIONS, **PHASE_OPTIONS, **preset_options(given.get("preset"))}
    return {**values, **{k: v for k, v in given.items() if v is not None}}


def phase_settings(s: dict) -> tuple[CheckSettings, Phase3Settings]:
    """(CheckSettings, Phase3Settings) from flat option values (missing ones: defaults); ValueError names a bad one."""
    s = with_preset(s)
    check = CheckSettings(s["threshold"], strict=bool(s["strict"]))
    phase3 = Phase3Settings(s["top"], s["seeds"], s["max_epochs"], s["baselines"], s["early_stop"], s["selection"],
                            s["survivors"], parse_numbers(s["rungs"], "rungs", int))
    check.check()
    phase3.check()
    return check, phase3


def search_from_options(s: dict) -> tuple[SearchConfig, SearchLimits]:
    """(SearchConfig, SearchLimits) from flat option values (`SEARCH_OPTIONS` names; missing
    ones take their preset's values, then the defaults); ValueError names a bad one. Without any
    limit: the default ones."""
    s = with_preset(s)
    if s["device"] != "cpu":
        raise ValueError(f"--device {s['device']!r}: the population trainers run on cpu only for now")
    try:
        time_limit = parse_duration(s["time_limit"]) if s["time_limit"] is not None else None
        limits = SearchLimits(s["budget"], s["max_sampled"], time_limit, s["max_rounds"], s["patience"])
        if limits.empty:
            limits = SearchLimits.default()
        limits.check()
        ops = s["ops"] if s["ops"] in ("paper", "extended") else tuple(p.strip() for p in s["ops"].split(",") if p.strip())
        strategy_config = {"op_set": ops, "max_steps": s["max_steps"]}
        if s["novelty"]:
            strategy_config["novelty"] = True
        config = SearchConfig(
            strategy=s["strategy"], strategy_config=strategy_config, seed=s["seed"],
            per_round=s["per_round"], proxy=s["proxy"], dedupe=s["dedupe"], proxy_batch=s["proxy_batch"],
            delta=s["delta"], zero_reward=s["zero_reward"], filtering=s["filtering"], eta=s["eta"],
            model=s["model"], task=s["task"], clamp=s["clamp"],
            train=TrainConfig(lr=s["lr"], optimizer=s["optimizer"]), preset=s["preset"],
            eps_grid=parse_numbers(s["eps_grid"], "eps_grid"), reward=s["reward"], strict=bool(s["strict"]))
        config.check()
    except TypeError as err:
        raise ValueError(str(err)) from None
    return config, limits
