"""The evaluator of Phase I: trains candidates side by side as a population and scores them.

Every candidate of a round trains one epoch from a copy of the same recommender state, over the
same batch order (DESIGN.md: "Candidates of a round are trained side by side as a population
from the same recommender state"); its reward is the change of the validation metric (AUC, or
-RMSE for regression). The evaluator never knows which strategy proposed a candidate, and the
search loop never touches a model's training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from lossgen.data.dataset import Dataset, Split
from lossgen.training.losses import LossSpec
from lossgen.training.metrics import metric_for_task
from lossgen.training.trainer import TrainConfig, train_epoch


@dataclass
class Evaluation:
    """One population's epoch: the trained copies and, per candidate, the validation utility
    (higher is better: AUC, or -RMSE) and the mean training loss."""

    population: object
    utilities: torch.Tensor  # float64 [K]
    train_losses: torch.Tensor  # [K]


class Evaluator:
    """Scores losses by one epoch of training from a shared recommender state."""

    def __init__(self, dataset: Dataset, task: str, train: TrainConfig):
        self.dataset, self.train = dataset, train
        self.metric = metric_for_task(task)

    def utility(self, model, split: Split) -> torch.Tensor:
        """Higher-is-better metric of every member of `model` on `split` (float64 [K])."""
        return self.metric.utility(model.predict(split.users, split.items), split.labels).double()

    def reported(self, utility: float) -> float:
        """The metric as users read it (RMSE, not -RMSE)."""
        return utility if self.metric.higher_is_better else -utility

    def evaluate(self, model, specs: Sequence[LossSpec], order: torch.Generator) -> Evaluation:
        """Train len(specs) copies of member 0 of `model` one epoch each, candidate k with
        specs[k], over one batch order drawn from `order`."""
        population = model.select([0] * len(specs))
        train = self.dataset.train
        losses = train_epoch(population, specs, train.users, train.items, train.labels, self.train, order)
        return Evaluation(population, self.utility(population, self.dataset.validation), losses)
