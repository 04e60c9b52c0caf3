"""What a comparison runs: every strategy x seed as its own search run, under one directory.

    OUT/plan.json             the plan of the latest invocation (strategies, seeds, budget, settings, data key)
    OUT/runs/<strategy>-s<seed>/   one resumable search run each (lossgen.runs)
    OUT/phase3/               the shared Phase III (all runs' best candidates + the baselines)
    OUT/compare.{md,csv,json} and OUT/*.png   the report

All runs share every search setting but the strategy and the seed. The seed fixes the
recommender's initialisation and batch order, so runs of one seed start from the same
recommender whatever their strategy. The budget counts full candidate evaluations; the safety
stops (patience, max_sampled, time_limit, max_rounds) end a run whose strategy proposes only
duplicates and so never spends it.

The plan holds library settings: `search` is a `SearchConfig` in its stored form (without the
strategy and seed, which vary per run) and `limits` the safety stops of `SearchLimits`. Plans
written before that held the command line's flat option names in `search`; `from_dict` reads
them through `search_from_options`, so old comparison directories still resume.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from lossgen.phases.settings import (DEFAULT_DATASET, LIMIT_OPTIONS, CheckSettings, Phase3Settings, SearchConfig,
                                     SearchLimits, search_from_options)
from lossgen.search import STRATEGIES

_PER_RUN = ("strategy", "seed")  # SearchConfig fields a plan sets per run
SAFETY_STOPS = ("max_sampled", "time_limit", "max_rounds", "patience")
PLAN_FILE = "plan.json"  # what identifies the comparison (OUT/plan.json); compare.json is the report's


def shared_search(config: SearchConfig) -> dict:
    """The stored form of the settings every run shares."""
    return {k: v for k, v in config.to_dict().items() if k not in _PER_RUN}


@dataclass(frozen=True)
class ComparePlan:
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    budget: int  # full candidate evaluations per run
    dataset: str = DEFAULT_DATASET
    data_dir: str | None = None
    search: dict = field(default_factory=lambda: shared_search(SearchConfig()))  # SearchConfig, stored form
    limits: dict = field(default_factory=dict)  # safety stops: SearchLimits fields other than budget
    top: int = Phase3Settings.top  # best distinct passing candidates per run taken to Phase III
    threshold: float = CheckSettings.threshold  # Phase II pass mark
    phase3_seeds: int = Phase3Settings.seeds
    max_epochs: int = Phase3Settings.max_epochs
    baselines: str = Phase3Settings.baselines
    early_stop: str = Phase3Settings.early_stop  # Phase III early-stop rules (older plans: paper)
    # which candidates of a run Phase III trains: `race` (every distinct passing one races, the
    # `survivors` best train) or `top` (the `top` best by search reward). Older plans: top.
    selection: str = Phase3Settings.selection
    survivors: int = Phase3Settings.survivors
    rungs: tuple[int, ...] = Phase3Settings.rungs

    def check(self) -> None:
        if not self.strategies:
            raise ValueError("no strategies to compare")
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown:
            raise ValueError(f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError(f"a strategy is listed twice: {','.join(self.strategies)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be a non-empty list without repeats")
        if self.budget < 1:
            raise ValueError(f"budget must be at least 1, got {self.budget}")
        unknown_stops = set(self.limits) - set(SAFETY_STOPS)
        if unknown_stops:
            raise ValueError(f"unknown safety stop {sorted(unknown_stops)[0]!r}; choose from {', '.join(SAFETY_STOPS)}")
        self.phase3_settings().check()
        CheckSettings(self.threshold).check()
        for strategy in self.strategies:
            self.search_config(strategy, self.seeds[0]).check()
        self.search_limits().check()

    def phase3_settings(self) -> Phase3Settings:
        return Phase3Settings(self.top, self.phase3_seeds, self.max_epochs, self.baselines, self.early_stop,
                              self.selection, self.survivors, tuple(self.rungs))

    def search_config(self, strategy: str, seed: int) -> SearchConfig:
        """The SearchConfig of one run."""
        return SearchConfig.from_dict({**self.search, "strategy": strategy, "seed": seed})

    def search_limits(self) -> SearchLimits:
        return SearchLimits(budget=self.budget, **self.limits)

    def runs(self) -> list[tuple[str, int]]:
        """(strategy, seed) pairs, seed-major so that early results cover every strategy."""
        return [(strategy, seed) for seed in self.seeds for strategy in self.strategies]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["strategies"], d["seeds"], d["rungs"] = list(self.strategies), list(self.seeds), list(self.rungs)
        return d

    @staticmethod
    def from_dict(d: dict) -> "ComparePlan":
        """From plan.json's `plan`, either form (library settings, or the older flat option names)."""
        d = dict(d)
        d["strategies"], d["seeds"] = tuple(d["strategies"]), tuple(d["seeds"])
        d.setdefault("selection", "top")  # written before the race: Phase III took the top candidates
        d["rungs"] = tuple(d.get("rungs", Phase3Settings.rungs))
        if "limits" not in d:  # written before plans held library settings: the flat option names
            flat = {"preset": "paper", **d.pop("search", {})}  # written before presets: the paper's
            config, _ = search_from_options({**flat, "budget": d["budget"]})
            d["dataset"], d["data_dir"] = flat.get("dataset", DEFAULT_DATASET), flat.get("data_dir")
            d["search"] = shared_search(config)
            limits = search_from_options({**{k: flat.get(k) for k in LIMIT_OPTIONS}, "budget": d["budget"]})[1]
            d["limits"] = {k: v for k, v in asdict(limits).items() if k in SAFETY_STOPS and v is not None}
        return ComparePlan(**d)


def run_name(strategy: str, seed: int) -> str:
    return f"{strategy}-s{seed}"


def run_dir(out: Path, strategy: str, seed: int) -> Path:
    return Path(out) / "runs" / run_name(strategy, seed)
