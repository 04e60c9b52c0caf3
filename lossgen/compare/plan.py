"""What a comparison runs: every strategy x seed as its own search run, under one directory.

    OUT/plan.json             the plan of the latest invocation (strategies, seeds, budget, settings, data key)
    OUT/runs/<strategy>-s<seed>/   one resumable search run each (lossgen.store)
    OUT/phase3/               the shared Phase III (all runs' best candidates + the baselines)
    OUT/compare.{md,csv,json} and OUT/*.png   the report

All runs share every search setting but the strategy and the seed. The seed fixes the
recommender's initialisation and batch order, so runs of one seed start from the same
recommender whatever their strategy. The budget counts full candidate evaluations; the safety
stops (patience, max_sampled, time_limit) end a run whose strategy proposes only duplicates and
so never spends it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from lossgen.losses import parse_losses
from lossgen.search import STRATEGIES


@dataclass(frozen=True)
class ComparePlan:
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    budget: int  # full candidate evaluations per run
    search: dict = field(default_factory=dict)  # search options shared by all runs (cli_pipeline names)
    top: int = 3  # best distinct passing candidates per run taken to Phase III
    threshold: float = 0.9  # Phase II pass mark
    phase3_seeds: int = 3
    max_epochs: int = 300
    baselines: str = "BCE,MSE,Hinge,Focal"

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
        for name in ("budget", "top", "phase3_seeds", "max_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.baselines.strip():
            parse_losses(self.baselines)  # an unknown name fails now, not after hours of search

    def runs(self) -> list[tuple[str, int]]:
        """(strategy, seed) pairs, seed-major so that early results cover every strategy."""
        return [(strategy, seed) for seed in self.seeds for strategy in self.strategies]

    def run_settings(self, out: Path, strategy: str, seed: int) -> dict:
        """The `lossgen search` option values of one run."""
        return {**self.search, "strategy": strategy, "seed": seed, "budget": self.budget,
                "run_dir": str(run_dir(out, strategy, seed))}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["strategies"], d["seeds"] = list(self.strategies), list(self.seeds)
        return d

    @staticmethod
    def from_dict(d: dict) -> "ComparePlan":
        return ComparePlan(**{**d, "strategies": tuple(d["strategies"]), "seeds": tuple(d["seeds"])})


def run_name(strategy: str, seed: int) -> str:
    return f"{strategy}-s{seed}"


def run_dir(out: Path, strategy: str, seed: int) -> Path:
    return Path(out) / "runs" / run_name(strategy, seed)
