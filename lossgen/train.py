"""The population trainer: K recommenders trained side by side, each with its own loss, on the
same mini-batch order (DESIGN.md: "Candidates of a round are trained side by side as a
population from the same recommender state")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from lossgen.losses import LossSpec
from lossgen.models.mf import LossTable, MFPopulation
from lossgen.models.mlp import MLPPopulation


@dataclass(frozen=True)
class TrainConfig:
    """The paper's recommender optimisation defaults."""

    lr: float = 0.01
    batch_size: int = 128
    l2: float = 1e-4  # PyTorch weight_decay semantics: w <- (1 - lr * l2) w - lr * grad


def train_epoch(model: MFPopulation | MLPPopulation, losses: Sequence[LossSpec] | LossTable, users: torch.Tensor,
                items: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
                generator: torch.Generator) -> torch.Tensor:
    """One epoch of SGD for every candidate over one shuffled order (drawn from `generator`);
    returns each candidate's mean training loss ``[K]``."""
    order = torch.randperm(users.shape[0], generator=generator)
    users, items, labels = users[order].contiguous(), items[order].contiguous(), labels[order].contiguous()
    if isinstance(model, MFPopulation):
        table = losses if isinstance(losses, LossTable) else LossTable.build(losses)
        if table.kinds.shape[0] != model.size:
            raise ValueError(f"{table.kinds.shape[0]} losses for a population of {model.size}")
        return model.sgd(table, users, items, labels, config.batch_size, config.lr, config.l2)
    if len(losses) != model.size:
        raise ValueError(f"{len(losses)} losses for a population of {model.size}")
    total = torch.zeros(model.size, dtype=torch.float64)
    for start in range(0, users.shape[0], config.batch_size):
        sl = slice(start, start + config.batch_size)
        total += model.step(losses, users[sl], items[sl], labels[sl], config.lr, config.l2).double() * labels[sl].numel()
    return total / users.shape[0]
