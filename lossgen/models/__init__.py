"""Recommender models as populations of K independent copies held in batched parameters."""

import math
from typing import Sequence

from lossgen.models.mf import INIT_STD, MFPopulation
from lossgen.models.mlp import MLPPopulation

MODELS = {"mf": MFPopulation, "mlp": MLPPopulation}


def create_population(model: str, num_users: int, num_items: int, seeds: Sequence[int], dim: int = 64,
                      init_std: float = INIT_STD):
    """A freshly initialised population, candidate k seeded with seeds[k]; embeddings drawn from
    N(0, init_std^2)."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose {', '.join(MODELS)}")
    if not (math.isfinite(init_std) and init_std > 0):
        raise ValueError(f"init_std = {init_std!r}: the embeddings' initial standard deviation must be > 0")
    return MODELS[model].init(num_users, num_items, seeds, dim, init_std=init_std)


__all__ = ["MFPopulation", "MLPPopulation", "MODELS", "create_population"]
