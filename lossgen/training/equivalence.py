"""Which named loss a program is, judged by what training sees: its derivative.

SGD trains with d f / d y_hat only, so two losses with the same derivative on every (y_hat, y)
train the same model (a constant between them changes nothing), and a derivative c > 0 times
another's trains as that loss would with a learning rate c times larger. Questions such as "did
the regression search recover MSE?" (the paper: it does) are answered here: a program matches a
named loss when their derivatives agree on a probe grid of (y_hat, y), `equal` when the factor
is 1, `proportional` otherwise. The run-wide fingerprint (`lossgen.phases.proxy`) rounds the
same probe derivatives to a hash, which tells programs apart but cannot compare a program with
a named loss computed another way (PyTorch, float64); this compares values with a tolerance.

Named losses are written on the pre-sigmoid score (Hinge's margin is on it); their derivative
with respect to y_hat is taken through s = logit(y_hat) by autograd.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import torch

from lossgen import kernels
from lossgen.ir.programs import Program
from lossgen.training.losses import ALL_NAMED, NAMED, USES_EPSILON, named_loss_torch

# y_hat at 33 points of (0, 1), y in {0, 1}: the fingerprint's probe grid (lossgen.phases.proxy)
PROBE_Y_HAT = torch.linspace(0.01, 0.99, 33).repeat(2)
PROBE_Y = torch.cat([torch.zeros(33), torch.ones(33)])

NAMED_EPS = 1e-6  # a named loss's epsilon when the program has none (the paper's smoothing)


EXACT = 1e-3  # relative residual and scale tolerance of "the same function" (float32 kernels)
CLOSE = 0.05  # what reports call close (e.g. MaxR's program form at e = 0.1 differs by up to 1 + e)


@dataclass(frozen=True)
class NamedMatch:
    """A program's derivative is `scale` times the named loss `name`'s on the probe grid, up to
    `residual` (the norm of the difference relative to the program's derivative's)."""

    name: str
    scale: float
    residual: float = 0.0

    @property
    def proportional(self) -> bool:
        return self.residual <= EXACT

    @property
    def equal(self) -> bool:
        return self.proportional and abs(self.scale - 1.0) <= EXACT

    def label(self) -> str:
        """`= MSE`, `= 2 x MSE` (proportional), `≈ MaxR` / `≈ 0.5 x MaxR` (within the tolerance asked)."""
        sign = "=" if self.proportional else "≈"
        return f"{sign} {self.name}" if abs(self.scale - 1.0) <= EXACT else f"{sign} {self.scale:.3g} x {self.name}"


def named_label(program: Program, clamp="paper", eps: float | None = None) -> str | None:
    """What reports print for a found program: `match_named` within CLOSE, as a label (`= MSE`,
    `≈ SumR`), or None when it is no named loss."""
    match = match_named(program, clamp, eps, rtol=CLOSE)
    return match.label() if match is not None else None


def named_probe_gradient(name: str, eps: float = NAMED_EPS) -> torch.Tensor:
    """d f / d y_hat of a named loss on the probe grid, float64 [66] (a fresh copy)."""
    return _named_probe_gradient(name, float(eps)).clone()


@functools.lru_cache(maxsize=256)  # a report matches every survivor of a run against all seven
def _named_probe_gradient(name: str, eps: float) -> torch.Tensor:
    y_hat = PROBE_Y_HAT.double().requires_grad_(True)
    score = torch.log(y_hat) - torch.log1p(-y_hat)
    value = named_loss_torch(NAMED[name], score, PROBE_Y.double(), eps).sum()
    (grad,) = torch.autograd.grad(value, y_hat)
    return grad.detach()


def program_probe_gradient(program: Program, clamp="paper", eps: float | None = None) -> torch.Tensor:
    """d f / d y_hat of a program on the probe grid (the compiled kernels), float64 [66]."""
    _, grad = kernels.evaluate([program], PROBE_Y_HAT, PROBE_Y, clamp, None if eps is None else float(eps))
    return grad[0].double()


def match_named(program: Program, clamp="paper", eps: float | None = None, names: Sequence[str] = ALL_NAMED,
                rtol: float = EXACT) -> NamedMatch | None:
    """The one of `names` whose probe derivative, times the best positive factor, is closest to the
    program's, if within `rtol` (relative, Euclidean norm over the grid); else None. A named loss
    with an epsilon is compared at the program's epsilon (NAMED_EPS for a program without one)."""
    g = program_probe_gradient(program, clamp, eps)
    norm = float(torch.linalg.vector_norm(g))
    if not torch.isfinite(g).all() or norm == 0.0:
        return None
    best = None
    for name in names:
        h = _named_probe_gradient(name, float(eps) if (eps is not None and NAMED[name] in USES_EPSILON) else NAMED_EPS)
        hh = float(h @ h)
        if hh == 0.0:
            continue
        scale = float(g @ h) / hh
        residual = float(torch.linalg.vector_norm(g - scale * h)) / norm
        if scale > 0 and residual <= rtol and (best is None or residual < best.residual):
            best = NamedMatch(name, scale, residual)
    return best
