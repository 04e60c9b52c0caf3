"""Recommender models as populations of K independent copies held in batched parameters."""

from lossgen.models.mf import MFPopulation

__all__ = ["MFPopulation"]
