"""A cheap, model-free reward for exercising strategies: does the loss push y_hat the right way?

The reward of a program is the share of probe pairs (y_hat, y) on which d loss / d y_hat has
the strictly right sign (> 0 for y = 0, < 0 for y = 1), the same criterion as phase II's
validation check but strict, so that constant losses score 0. It needs no recommender and
scores a whole batch of candidates in one compiled `kernels.evaluate` call; tests and
`bench/sampling.py` use it to show that a strategy learns and to time it.
"""

from __future__ import annotations

from typing import Sequence

import torch

from lossgen import kernels
from lossgen.ir.programs import Program, batch


class GradientSignReward:
    def __init__(self, points: int = 8, clamp: str = "symmetric", tol: float = 1e-6):
        grid = torch.linspace(0.05, 0.95, points)
        self.y_hat = torch.cat([grid, grid])
        self.y = torch.cat([torch.zeros(points), torch.ones(points)])
        self.clamp = clamp
        self.tol = tol

    def __call__(self, programs: Sequence[Program]) -> list[float]:
        if not programs:
            return []
        _, grads = kernels.evaluate(batch(list(programs)), self.y_hat, self.y, self.clamp)
        right = torch.where(self.y == 0, grads > self.tol, grads < -self.tol)
        return right.float().mean(1).tolist()
