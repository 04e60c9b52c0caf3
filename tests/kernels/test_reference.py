import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lossgen.ir.programs import batch
from lossgen.kernels.reference import reference_evaluate, reference_values, vectorized_evaluate
from lossgen.kernels.verify import rounding_envelope
from strategies import point_pairs, programs


@pytest.mark.parametrize("clamp", ["paper", "official", "symmetric"])
@settings(max_examples=50, deadline=None)
@given(progs=st.lists(programs(max_steps=8), min_size=1, max_size=8), points=point_pairs())
def test_vectorized_baseline_equals_the_reference(clamp, progs, points):
    y_hat, y = points
    prog = batch(progs)
    v, g = vectorized_evaluate(prog, y_hat, y, clamp)
    rv, rg = reference_evaluate(prog, y_hat, y, clamp)
    ok = torch.isclose(v, rv, rtol=1e-5, atol=1e-6) & torch.isclose(g, rg, rtol=1e-5, atol=1e-6)
    for k, n in (~ok).nonzero().tolist():  # float32 rounding differences: within the envelope
        v64, g64, env_v, env_g = rounding_envelope(prog[k].tolist(), y_hat[n : n + 1], y[n : n + 1], clamp)
        assert abs(float(v[k, n]) - float(v64)) <= 1e-6 + 1e-5 * abs(float(v64)) + 2 * float(env_v)
        assert abs(float(g[k, n]) - float(g64)) <= 1e-6 + 1e-5 * abs(float(g64)) + 2 * float(env_g)


def test_reference_values_are_differentiable():
    from lossgen.ir.formula import parse

    prog = batch([parse("max(y_hat, y) * (1 / (y_hat + 1))")])
    y_hat = torch.rand(5, requires_grad=True)
    reference_values(prog, y_hat, torch.rand(5)).sum().backward()
    assert y_hat.grad is not None


def test_program_without_y_hat_has_zero_derivative():
    from lossgen.ir.formula import parse

    _, g = reference_evaluate(batch([parse("log(y) * y")]), torch.rand(4), torch.rand(4))
    assert torch.equal(g, torch.zeros(1, 4))
