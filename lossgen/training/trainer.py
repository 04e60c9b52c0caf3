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
                  config: "TrainConfig", order_row: torch.Tensor | None = None) -> torch.Tensor: ...


def epoch_order(n: int, generator: torch.Generator | Sequence[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The example order of one epoch: ``([N], None)`` from one generator (every candidate the
    same order), or ``([S, N], row [K])`` from one generator per candidate: the S distinct
    generators' orders, and which of them each candidate follows. A generator listed for
    several candidates (runs of one seed) is drawn from once: they share its order."""
    if isinstance(generator, torch.Generator):
        return torch.randperm(n, generator=generator), None
    index: dict[int, int] = {}
    orders, rows = [], []
    for gen in generator:
        if id(gen) not in index:
            index[id(gen)] = len(orders)
            orders.append(torch.randperm(n, generator=gen))
        rows.append(index[id(gen)])
    return torch.stack(orders), torch.tensor(rows, dtype=torch.long)


def train_epoch(model: Population, losses: Sequence[LossSpec] | Any, users: torch.Tensor,
                items: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
                generator: torch.Generator | Sequence[torch.Generator]) -> torch.Tensor:
    """One epoch of SGD for every candidate, returning each candidate's mean training loss
    ``[K]``. `generator`: one generator (the same shuffled order for all candidates: Phase I
    compares candidates from one state and one order), or one per candidate (each run of a
    population its own order, Phase III: a seed sets the initialisation and the data order).
    `losses`: one LossSpec per candidate (or the MF trainer's prebuilt `LossTable`)."""
    if not isinstance(generator, torch.Generator) and len(generator) != model.size:
        raise ValueError(f"{len(generator)} generators for a population of {model.size}")
    order, row = epoch_order(users.shape[0], generator)
    users, items, labels = users[order].contiguous(), items[order].contiguous(), labels[order].contiguous()
    return model.fit_epoch(losses, users, items, labels, config, row)
