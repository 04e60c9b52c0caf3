"""Recommender models as populations of K independent copies held in batched parameters."""

from typing import Sequence

from lossgen.models.mf import MFPopulation
from lossgen.models.mlp import MLPPopulation

MODELS = {"mf": MFPopulation, "mlp": MLPPopulation}


def create_population(model: str, num_users: int, num_items: int, seeds: Sequence[int], dim: int = 64):
    """A freshly initialised population, candidate k seeded with seeds[k]."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose {', '.join(MODELS)}")
    return MODELS[model].init(num_users, num_items, seeds, dim)


__all__ = ["MFPopulation", "MLPPopulation", "MODELS", "create_population"]
