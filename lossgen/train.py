"""The population trainer: K recommenders trained side by side, each with its own loss, on the
same mini-batch order (DESIGN.md: "Candidates of a round are trained side by side as a
population from the same recommender state")."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lossgen.models.mf import LossTable, MFPopulation


@dataclass(frozen=True)
class TrainConfig:
    """The paper's recommender optimisation defaults."""

    lr: float = 0.01
    batch_size: int = 128
    l2: float = 1e-4  # PyTorch weight_decay semantics: w <- (1 - lr * l2) w - lr * grad


def train_epoch(model: MFPopulation, losses: LossTable, users: torch.Tensor, items: torch.Tensor,
                labels: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """One epoch of SGD for every candidate; returns each candidate's mean training loss."""
    if losses.kinds.shape[0] != model.size:
        raise ValueError(f"{losses.kinds.shape[0]} losses for a population of {model.size}")
    order = torch.randperm(users.shape[0], generator=generator)
    return model.sgd(losses, users[order].contiguous(), items[order].contiguous(), labels[order].contiguous(),
                     config.batch_size, config.lr, config.l2)
