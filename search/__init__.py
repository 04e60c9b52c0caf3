"""lossgen.search: strategies that propose candidate loss programs (see DESIGN.md).

This directory sits at the top of the repository but is installed and imported only as
``lossgen.search`` (setuptools package-dir mapping).

    strategy = lossgen.search.create("rl", seed=0)          # or "evolution", "random"
    candidates = strategy.ask(10)
    strategy.tell(candidates, rewards)                       # also accepts Candidate.seed(...)
"""

from __future__ import annotations

from lossgen.search.base import Candidate, SearchStrategy, StrategyConfig, program_key
from lossgen.search.evolution import EvolutionConfig, EvolutionSearch
from lossgen.search.random_search import RandomConfig, RandomSearch
from lossgen.search.rl import RLConfig, RLController

STRATEGIES = {
    "rl": (RLController, RLConfig),
    "evolution": (EvolutionSearch, EvolutionConfig),
    "random": (RandomSearch, RandomConfig),
}


def create(name: str, config: StrategyConfig | dict | None = None, seed: int = 0) -> SearchStrategy:
    """Build a strategy by name. `config` is the strategy's config dataclass, a dict of its
    fields (e.g. ``{"op_set": "extended"}``), or None for the paper's defaults."""
    try:
        cls, config_cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}") from None
    if config is None:
        config = config_cls()
    elif isinstance(config, dict):
        config = config_cls(**config)
    elif not isinstance(config, config_cls):
        raise TypeError(f"strategy {name!r} takes a {config_cls.__name__}, got {type(config).__name__}")
    return cls(config, seed=seed)


__all__ = [
    "Candidate",
    "SearchStrategy",
    "StrategyConfig",
    "program_key",
    "create",
    "STRATEGIES",
    "RLConfig",
    "RLController",
    "EvolutionConfig",
    "EvolutionSearch",
    "RandomConfig",
    "RandomSearch",
]
