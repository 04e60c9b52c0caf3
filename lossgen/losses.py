"""Losses a recommender can be trained with: a candidate program, or a named baseline.

Named losses (value of one point, y_hat = sigmoid(s) with s the pre-sigmoid score):
    MSE     (y_hat - y)^2
    BCE     -(y log y_hat + (1 - y) log(1 - y_hat))
    Hinge   max(0, 1 - t s), t = 2y - 1 (margin on the score, as the paper's Table 4 baseline)
    Focal   -(y (1 - y_hat)^2 log y_hat + (1 - y) y_hat^2 log(1 - y_hat))   (gamma = 2)
    MaxR    max((y_hat + e) / (y + e), (y + e) / (y_hat + e))
    SumR    (y_hat + y + e) / (y_hat y + e)
    LogMin  log((1 + e) / (min(y_hat, y) + e)) (y_hat + y + min(y_hat, y))
MaxR, SumR and LogMin are the paper's discovered losses (Table 4); e is their smoothing epsilon,
chosen by grid search in the effectiveness test. The same formulas run in C++ inside the fused
MF step (csrc/named_losses.h); `named_loss_torch` is the PyTorch twin (tests compare them).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch

from lossgen.opset import Clamp, parse_clamp
from lossgen.programs import Program


class LossKind(enum.IntEnum):
    PROGRAM = 0
    MSE = 1
    BCE = 2
    HINGE = 3
    FOCAL = 4
    MAXR = 5
    SUMR = 6
    LOGMIN = 7


NAMED = {"MSE": LossKind.MSE, "BCE": LossKind.BCE, "Hinge": LossKind.HINGE, "Focal": LossKind.FOCAL,
         "MaxR": LossKind.MAXR, "SumR": LossKind.SUMR, "LogMin": LossKind.LOGMIN}
BASELINES = ("BCE", "MSE", "Hinge", "Focal")
PAPER_FOUND = ("MaxR", "SumR", "LogMin")
USES_EPSILON = {LossKind.MAXR, LossKind.SUMR, LossKind.LOGMIN}

# Identity(y_hat): the program slot of a named loss (ignored by the kernels, but must be valid).
_PLACEHOLDER = Program([(5, 0, 0)])


@dataclass(frozen=True)
class LossSpec:
    """What one candidate trains with."""

    name: str
    kind: LossKind
    eps: float = 1e-6
    program: Program = _PLACEHOLDER
    clamp: Clamp = Clamp.PAPER

    @property
    def uses_epsilon(self) -> bool:
        return self.kind in USES_EPSILON

    def with_eps(self, eps: float) -> "LossSpec":
        return LossSpec(self.name, self.kind, eps, self.program, self.clamp)

    def label(self) -> str:
        return f"{self.name} (e={self.eps:g})" if self.uses_epsilon else self.name


def named(name: str, eps: float = 1e-6) -> LossSpec:
    for key, kind in NAMED.items():
        if key.lower() == name.strip().lower():
            return LossSpec(key, kind, eps)
    raise ValueError(f"unknown loss {name!r}; named losses: {', '.join(NAMED)}")


def from_program(program: Program, clamp="paper", name: str | None = None) -> LossSpec:
    return LossSpec(name or str(program), LossKind.PROGRAM, 0.0, program, parse_clamp(clamp))


def parse_losses(text: str) -> list[LossSpec]:
    """``"BCE,MSE,MaxR"`` -> specs (named losses only; programs come from `from_program`)."""
    names = [part for part in (p.strip() for p in text.split(",")) if part]
    if not names:
        raise ValueError("no losses given")
    return [named(n) for n in names]


def named_loss_torch(kind: LossKind, score: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-point value of a named loss from the score, differentiable (for the MLP and tests)."""
    y_hat = torch.sigmoid(score)
    if kind == LossKind.MSE:
        return (y_hat - y) ** 2
    if kind == LossKind.BCE:
        return -(y * torch.nn.functional.logsigmoid(score) + (1 - y) * torch.nn.functional.logsigmoid(-score))
    if kind == LossKind.HINGE:
        return torch.relu(1 - (2 * y - 1) * score)
    if kind == LossKind.FOCAL:
        p = torch.clamp(y_hat, 1e-7, 1 - 1e-7)
        return -(y * (1 - p) ** 2 * torch.log(p) + (1 - y) * p**2 * torch.log(1 - p))
    if kind == LossKind.MAXR:
        return torch.maximum((y_hat + eps) / (y + eps), (y + eps) / (y_hat + eps))
    if kind == LossKind.SUMR:
        return (y_hat + y + eps) / (y_hat * y + eps)
    if kind == LossKind.LOGMIN:
        m = torch.minimum(y_hat, y)
        return torch.log((1 + eps) / (m + eps)) * (y_hat + y + m)
    raise ValueError(f"{kind!r} is not a named loss")
