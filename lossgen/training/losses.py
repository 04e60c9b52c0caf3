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
A program may carry a smoothing epsilon too (the e its Log, Reciprocal and Sqrt use, see
`lossgen.kernels.evaluate`); without one (None) it runs with the paper's smoothing.

For a population (candidate k's loss on row k of the scores): `batch_losses` (differentiable),
and `losses_and_grads` (values and d loss / d score written out, no autograd: the MLP step),
both grouped by kind through `loss_plan`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from typing import Sequence

import torch

from lossgen import kernels
from lossgen.ir.opset import Clamp, parse_clamp
from lossgen.ir.programs import Program


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
ALL_NAMED = BASELINES + PAPER_FOUND
USES_EPSILON = {LossKind.MAXR, LossKind.SUMR, LossKind.LOGMIN}

# Identity(y_hat): the program slot of a named loss (ignored by the kernels, but must be valid).
_PLACEHOLDER = Program([(5, 0, 0)])


@dataclass(frozen=True)
class LossSpec:
    """What one candidate trains with. `eps`: a named loss's smoothing epsilon; a program's
    smoothing epsilon for Log, Reciprocal and Sqrt, or None for the paper's smoothing (xi with
    sign(0) = 0, what programs ran with before they could carry one)."""

    name: str
    kind: LossKind
    eps: float | None = 1e-6
    program: Program = _PLACEHOLDER
    clamp: Clamp = Clamp.PAPER

    def __post_init__(self):
        if self.kind == LossKind.PROGRAM and self.eps is not None:
            if not (math.isfinite(self.eps) and self.eps > 0):
                raise ValueError(f"eps = {self.eps:g}: a program's smoothing epsilon must be finite and > 0 "
                                 "(or None for the paper's smoothing)")
        elif self.kind != LossKind.PROGRAM and self.eps is None:
            raise ValueError(f"the named loss {self.name} needs an epsilon (a float), got None")

    @property
    def uses_epsilon(self) -> bool:
        """Whether `eps` changes the loss: MaxR, SumR, LogMin, and programs that carry one."""
        return self.kind in USES_EPSILON or (self.kind == LossKind.PROGRAM and self.eps is not None)

    def with_eps(self, eps: float | None) -> "LossSpec":
        return LossSpec(self.name, self.kind, eps, self.program, self.clamp)

    def label(self) -> str:
        return f"{self.name} (e={self.eps:g})" if self.uses_epsilon else self.name


def named(name: str, eps: float = 1e-6) -> LossSpec:
    for key, kind in NAMED.items():
        if key.lower() == name.strip().lower():
            return LossSpec(key, kind, eps)
    raise ValueError(f"unknown loss {name!r}; named losses: {', '.join(NAMED)}")


def from_program(program: Program, clamp="paper", name: str | None = None, eps: float | None = None) -> LossSpec:
    """A candidate program as a loss; `eps` its smoothing epsilon (None: the paper's smoothing)."""
    return LossSpec(name or str(program), LossKind.PROGRAM, None if eps is None else float(eps), program,
                    parse_clamp(clamp))


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


# ----------------------------------------------------------------------------- populations


def batch_losses(specs: Sequence[LossSpec], scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Batch-mean loss of every candidate ``[K]`` (candidate k's loss on row k of the scores),
    differentiable. Candidates are grouped by loss kind, so a population costs one pass per kind."""
    parts, order = [], []
    for kind, rows, *extra in loss_plan(specs):
        if kind == LossKind.PROGRAM:
            parts.append(kernels.program_loss(extra[0], torch.sigmoid(scores[rows]), labels, extra[1], extra[2]))
        else:
            parts.append(named_loss_torch(kind, scores[rows], labels, extra[0].to(scores.dtype)).mean(1))
        order.append(rows)
    return torch.cat(parts)[torch.argsort(torch.cat(order))]


def loss_plan(specs: Sequence[LossSpec]) -> list[tuple]:
    """Candidates grouped by loss kind, with what each group's evaluation needs, for
    ``losses_and_grads`` (a population reuses it every step). Programs form two groups: those with
    the paper's smoothing (eps None) and those with their own epsilons (one kernel call each)."""
    program_clamps = {spec.clamp for spec in specs if spec.kind == LossKind.PROGRAM}
    if len(program_clamps) > 1:
        raise ValueError("all programs of a population must use the same clamp mode")
    groups: dict[tuple, list[int]] = {}
    for i, spec in enumerate(specs):
        smoothed = spec.kind == LossKind.PROGRAM and spec.eps is not None
        groups.setdefault((spec.kind, smoothed), []).append(i)
    plan = []
    for (kind, smoothed), idx in groups.items():
        if kind == LossKind.PROGRAM:
            eps = torch.tensor([specs[i].eps for i in idx], dtype=torch.float32) if smoothed else None
            extra = (kernels.as_program_tensor([specs[i].program for i in idx]), specs[idx[0]].clamp, eps)
        else:
            extra = (torch.tensor([specs[i].eps for i in idx]).unsqueeze(1),)
        plan.append((kind, torch.tensor(idx)) + extra)
    return plan


def losses_and_grads(specs: Sequence[LossSpec] | list[tuple], scores: torch.Tensor,
                     labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_losses`` and its gradient with respect to the scores ``[K, N]``, without autograd
    (on the [K, 128] scores of a step its graph cost as much as the layer-1 products). Named
    losses use their derivatives written out; programs the kernels' derivative. ``specs`` may
    be a ``loss_plan``."""
    plan = specs if specs and isinstance(specs[0], tuple) else loss_plan(specs)
    values, grads = torch.empty_like(scores), torch.empty_like(scores)
    p_all = torch.sigmoid(scores)
    for kind, rows, *extra in plan:
        p = p_all.index_select(0, rows)
        y = labels if labels.dim() == 1 else labels.index_select(0, rows)  # [N], or each candidate's own
        if kind == LossKind.PROGRAM:
            v, d_p = kernels.evaluate(extra[0], p, y, extra[1], extra[2])
            d_s = d_p.mul_((1 - p).mul_(p))
        else:
            s = scores.index_select(0, rows)
            v = named_loss_torch(kind, s, y, extra[0])
            d_s = named_loss_grad(kind, s, p, y, extra[0])
        values.index_copy_(0, rows, v)
        grads.index_copy_(0, rows, d_s)
    return values.mean(1), grads.div_(scores.shape[1])


def named_loss_grad(kind: LossKind, s: torch.Tensor, p: torch.Tensor, y: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """d loss / d score per point for ``named_loss_torch``; ties of max/min split the gradient
    as torch.maximum/minimum do."""
    dp_ds = (1 - p) * p
    if kind == LossKind.BCE:
        return p - y
    if kind == LossKind.HINGE:
        t = 2 * y - 1
        return -t * (1 - t * s > 0)
    if kind == LossKind.MSE:
        d_p = 2 * (p - y)
    elif kind == LossKind.FOCAL:
        q = torch.clamp(p, 1e-7, 1 - 1e-7)
        inside = (p >= 1e-7) & (p <= 1 - 1e-7)
        d_q = -(y * (-2 * (1 - q) * torch.log(q) + (1 - q) ** 2 / q)
                + (1 - y) * (2 * q * torch.log(1 - q) - q**2 / (1 - q)))
        d_p = d_q * inside
    elif kind == LossKind.MAXR:
        a, b = (p + eps) / (y + eps), (y + eps) / (p + eps)
        w = (a > b) + 0.5 * (a == b)
        d_p = w / (y + eps) - (1 - w) * (y + eps) / (p + eps) ** 2
    elif kind == LossKind.SUMR:
        den = p * y + eps
        d_p = 1 / den - (p + y + eps) * y / den**2
    elif kind == LossKind.LOGMIN:
        m = torch.minimum(p, y)
        w = (p < y) + 0.5 * (p == y)
        log = torch.log((1 + eps) / (m + eps))
        d_p = log + w * (log - (p + y + m) / (m + eps))
    else:
        raise ValueError(f"{kind!r} is not a named loss")
    return d_p * dp_ds
