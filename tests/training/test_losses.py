"""LossSpec: a program's optional smoothing epsilon (None: the paper's smoothing)."""

import pytest
import torch

from lossgen import kernels
from lossgen.ir.formula import parse
from lossgen.training.losses import LossKind, from_program, loss_plan, losses_and_grads, named

PROGRAM = parse("log(y_hat) * -y")


def test_programs_default_to_the_paper_smoothing():
    spec = from_program(PROGRAM, "symmetric")
    assert spec.eps is None and not spec.uses_epsilon and spec.label() == spec.name


def test_a_program_can_carry_an_epsilon():
    spec = from_program(PROGRAM, "symmetric", eps=0.01)
    assert spec.eps == 0.01 and spec.uses_epsilon and spec.label() == f"{spec.name} (e=0.01)"
    assert spec.with_eps(0.5).eps == 0.5 and spec.with_eps(None).eps is None


@pytest.mark.parametrize("eps", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_program_eps_is_refused(eps):
    with pytest.raises(ValueError, match="a program's smoothing epsilon must be finite and > 0"):
        from_program(PROGRAM, eps=eps)


def test_a_named_loss_needs_an_epsilon():
    with pytest.raises(ValueError, match="the named loss MaxR needs an epsilon"):
        named("MaxR").with_eps(None)


def test_loss_plan_splits_programs_by_smoothing():
    specs = [from_program(PROGRAM), named("BCE"), from_program(PROGRAM, eps=0.1), from_program(PROGRAM, eps=0.2)]
    plan = loss_plan(specs)
    programs = [entry for entry in plan if entry[0] == LossKind.PROGRAM]
    assert [entry[1].tolist() for entry in programs] == [[0], [2, 3]]
    assert programs[0][4] is None
    torch.testing.assert_close(programs[1][4], torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="same clamp mode"):
        loss_plan([from_program(PROGRAM, "paper"), from_program(PROGRAM, "symmetric", eps=0.1)])


def test_losses_and_grads_pass_the_epsilon_to_the_kernels():
    scores = torch.randn(2, 50, generator=torch.Generator().manual_seed(0))
    labels = (torch.rand(50, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    specs = [from_program(PROGRAM, "symmetric", eps=0.1), from_program(PROGRAM, "symmetric")]
    losses, _ = losses_and_grads(specs, scores, labels)
    p = torch.sigmoid(scores)
    v0, _ = kernels.evaluate([PROGRAM], p[0], labels, "symmetric", eps=0.1)
    v1, _ = kernels.evaluate([PROGRAM], p[1], labels, "symmetric")
    torch.testing.assert_close(losses, torch.stack([v0.mean(), v1.mean()]))
