"""The population trainer: K recommenders trained side by side, each with its own loss, on the
same mini-batch order (DESIGN.md: "Candidates of a round are trained side by side as a
population from the same recommender state")."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import torch

from lossgen.training.losses import LossSpec


@dataclass(frozen=True)
class TrainConfig:
    """The paper's recommender optimisation defaults."""

    lr: float = 0.01
    batch_size: int = 128
    l2: float = 1e-4  # PyTorch weight_decay semantics: w <- (1 - lr * l2) w - lr * grad
    optimizer: str = "sgd"  # or "adam": lazy Adam on embedding rows, coupled L2 (docs/training.md)
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose sgd or adam")
        if not all(math.isfinite(v) for v in (self.lr, self.l2, self.adam_eps, *self.betas)):
            raise ValueError(f"lr, l2, betas and adam_eps must be finite numbers, got lr={self.lr}, l2={self.l2}")
        if self.lr <= 0 or self.l2 < 0 or not 1 <= self.batch_size <= 256:
            raise ValueError("lr must be > 0, l2 >= 0 and batch_size in 1..256")

    @staticmethod
    def from_dict(d: dict) -> "TrainConfig":
        """From its stored (JSON) form, where the betas tuple became a list."""
        return TrainConfig(**{**d, "betas": tuple(d["betas"])} if "betas" in d else d)


class Population(Protocol):
    """What the trainer needs of a recommender population (`lossgen.models` implements it; the
    trainer sits below the models, so it names the protocol, not the classes)."""

    size: int

    def fit_epoch(self, losses: Any, users: torch.Tensor, items: torch.Tensor, labels: torch.Tensor,
                  config: "TrainConfig") -> torch.Tensor: ...


def train_epoch(model: Population, losses: Sequence[LossSpec] | Any, users: torch.Tensor,
                items: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
                generator: torch.Generator) -> torch.Tensor:
    """One epoch of SGD for every candidate over one shuffled order (drawn from `generator`);
    returns each candidate's mean training loss ``[K]``. `losses`: one LossSpec per candidate (or
    the MF trainer's prebuilt `LossTable`)."""
    order = torch.randperm(users.shape[0], generator=generator)
    users, items, labels = users[order].contiguous(), items[order].contiguous(), labels[order].contiguous()
    return model.fit_epoch(losses, users, items, labels, config)
