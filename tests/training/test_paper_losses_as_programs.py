"""MaxR, SumR and LogMin written as IR programs with a smoothing epsilon (DESIGN.md: sign(0) = +1,
so 1 / y is 1 / (y + e) at y = 0) are the paper's named losses up to terms that do not change
training: the same gradient for y = 0 (MaxR, SumR) and gradients within a factor 1 +- e (MaxR,
SumR at y = 1) or 2 log(1 + e) (LogMin) elsewhere. Measured on ML-100K they reach the named losses'
test AUC (docs/results/README.md)."""

import math

import pytest
import torch

from lossgen import kernels
from lossgen.ir.formula import parse_loss
from lossgen.training.losses import LossKind, named_loss_torch

PROGRAMS = {
    LossKind.MAXR: "max(y_hat * (1 / y), y * (1 / y_hat))",
    LossKind.SUMR: "(y_hat + y) * (1 / (y_hat * y))",
    LossKind.LOGMIN: "-log(min(y_hat, y)) * (y_hat + y + min(y_hat, y))",
}


def _named_grads(kind, y_hat, y, eps):
    """d loss / d y_hat of the named loss (named_loss_torch takes the score: chain through it)."""
    score = torch.logit(y_hat.double()).requires_grad_(True)
    (g_score,) = torch.autograd.grad(named_loss_torch(kind, score, y.double(), eps).sum(), score)
    p = torch.sigmoid(score.detach())
    return named_loss_torch(kind, score.detach(), y.double(), eps), g_score / (p * (1 - p))


@pytest.mark.parametrize("kind", list(PROGRAMS))
@pytest.mark.parametrize("eps", [0.1, 0.01, 1e-3])
def test_program_forms_have_the_named_losses_gradients(kind, eps):
    program, _ = parse_loss(PROGRAMS[kind])
    assert program.uses_epsilon
    y_hat = torch.linspace(0.02, 0.98, 97).repeat(2)
    y = torch.cat([torch.zeros(97), torch.ones(97)])
    values, grads = kernels.evaluate(program, y_hat, y, "symmetric", eps)
    want_values, want = _named_grads(kind, y_hat, y, eps)
    grads, values = grads[0].double(), values[0].double()
    assert torch.equal(torch.sign(grads), torch.sign(want))  # pushed the same way everywhere
    if kind == LossKind.LOGMIN:
        bound = 2 * math.log1p(eps) + 1e-4 * want.abs()
    else:
        bound = 1.01 * eps * want.abs() + 1e-4 * want.abs()
        negative = y == 0  # y = 0: exactly the named gradient, 1 / e
        torch.testing.assert_close(grads[negative], want[negative], rtol=1e-5, atol=0)
    assert bool(((grads - want).abs() <= bound).all()), float(((grads - want).abs() - bound).max())
    # values differ by the terms the epsilon moves (a constant per label for y = 0 of MaxR and SumR)
    if kind != LossKind.LOGMIN:
        diff = (values - want_values)[y == 0]
        torch.testing.assert_close(diff, torch.full_like(diff, float(diff[0])), rtol=0, atol=1e-4 / eps)
