import os
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lossgen import kernels
from lossgen.ir.formula import parse
from lossgen.ir.opset import PAPER_OPS, Op
from lossgen.ir.programs import Program, batch
from lossgen.kernels.verify import compare, fuzz
from devices import DEVICES
from strategies import point_pairs, programs

CLAMPS = ["paper", "official", "symmetric"]


def test_backend_is_compiled():
    assert kernels.backend() == "compiled-cpu"
    if torch.cuda.is_available():
        assert kernels.backend("cuda") == "compiled-cuda"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("clamp", CLAMPS)
@settings(max_examples=60, deadline=None)
@given(progs=st.lists(programs(max_steps=9), min_size=1, max_size=6), points=point_pairs(), data=st.data())
def test_evaluate_equals_reference_and_autograd(device, clamp, progs, points, data):
    y_hat, y = points
    length = max(len(p) for p in progs)
    prog = batch(progs, length)
    per_candidate = data.draw(st.booleans())
    if per_candidate:  # [K, N] inputs instead of one shared [N] row
        y_hat, y = y_hat.expand(len(progs), -1).contiguous(), y.expand(len(progs), -1).contiguous()
    values, grads = kernels.evaluate(prog.to(device), y_hat.to(device), y.to(device), clamp)
    result = compare(prog, y_hat, y, clamp, values, grads)
    assert result.mismatches == 0, result.examples


@pytest.mark.parametrize("device", DEVICES)
def test_every_op_code_and_clamp_mode(device):
    y_hat = torch.tensor([0.0, 1e-6, -1e-6, 0.3, 0.5, 0.5, -2.0, 1e6, 2e6, 80.0, 81.0])
    y = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    progs = []
    for op in Op:
        operands = (0, 1) if op.arity == 2 else (0, 0)
        progs.append(Program([(op, *operands)]))
        progs.append(Program([(Op.NEG, 0, 0), (op, 3, 1) if op.arity == 2 else (op, 3, 0)]))
    prog = batch(progs)
    for clamp in CLAMPS:
        values, grads = kernels.evaluate(prog.to(device), y_hat.to(device), y.to(device), clamp)
        ref_v, ref_g = kernels.reference_evaluate(prog, y_hat, y, clamp)
        torch.testing.assert_close(values.cpu(), ref_v, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grads.cpu(), ref_g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_fuzz_thousands_of_programs(device):
    results = fuzz(kernels.evaluate, 3000, seed=11, points=256, device=device)
    for clamp, r in results.items():
        assert r.mismatches == 0, (clamp, r.examples)
        assert r.exact > 0.999 * r.points


def test_verifier_catches_a_wrong_kernel():
    prog = batch([parse("(y_hat - y)^2"), parse("log(y_hat) * y")])
    y_hat = torch.rand(64) * 0.9 + 0.05
    y = (torch.rand(64) < 0.5).float()
    values, grads = kernels.evaluate(prog, y_hat, y, "symmetric")
    assert compare(prog, y_hat, y, "symmetric", values, grads).mismatches == 0
    assert compare(prog, y_hat, y, "symmetric", values * 1.001, grads).mismatches > 0
    assert compare(prog, y_hat, y, "symmetric", values, -grads).mismatches > 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("clamp", CLAMPS)
def test_program_loss_is_the_mean_and_differentiable(device, clamp):
    torch.manual_seed(0)
    prog = batch([parse(s) for s in ["(y_hat - y)^2", "max(y_hat, y) * (1 / (y_hat + 1))", "log(y_hat) * -y"]])
    y_hat = (torch.rand(3, 1000) * 0.98 + 0.01).to(device).requires_grad_(True)
    y = (torch.rand(3, 1000) < 0.5).float().to(device)
    loss = kernels.program_loss(prog.to(device), y_hat, y, clamp)
    ref_v, ref_g = kernels.reference_evaluate(prog, y_hat.detach().cpu(), y.cpu(), clamp)
    torch.testing.assert_close(loss.detach().cpu(), ref_v.mean(1), rtol=1e-5, atol=1e-6)
    (loss * torch.tensor([1.0, 2.0, 3.0], device=device)).sum().backward()
    expected = ref_g * torch.tensor([1.0, 2.0, 3.0]).unsqueeze(1) / 1000
    torch.testing.assert_close(y_hat.grad.cpu(), expected, rtol=1e-5, atol=1e-9)


def test_program_loss_shared_row_gradient_sums_over_candidates():
    prog = batch([parse("(y_hat - y)^2"), parse("y_hat * y")])
    y_hat = torch.rand(50).requires_grad_(True)
    y = (torch.rand(50) < 0.5).float()
    kernels.program_loss(prog, y_hat, y, "symmetric").sum().backward()
    _, grads = kernels.reference_evaluate(prog, y_hat.detach(), y, "symmetric")
    torch.testing.assert_close(y_hat.grad, grads.sum(0) / 50, rtol=1e-5, atol=1e-8)


@pytest.mark.filterwarnings("ignore:Input #0 requires gradient and is not a double")
def test_program_loss_gradcheck():
    # The kernels are float32 only: gradcheck with float32 tolerances, at points away from kinks.
    prog = batch([parse(s) for s in ["(y_hat - y)^2", "log(y_hat + 1) * (1 / (y + 1))", "sigmoid(y_hat) * tanh(y)"]])
    y_hat = (torch.rand(3, 16, dtype=torch.float32) * 0.8 + 0.1).requires_grad_(True)
    y = torch.rand(3, 16)
    assert torch.autograd.gradcheck(
        lambda x: kernels.program_loss(prog, x, y, "symmetric"), (y_hat,), eps=1e-3, atol=1e-3, rtol=1e-2
    )


def test_double_backward_is_refused():
    prog = batch([parse("(y_hat - y)^2")])
    y_hat = torch.rand(8).requires_grad_(True)
    loss = kernels.program_loss(prog, y_hat, torch.zeros(8))
    (g,) = torch.autograd.grad(loss.sum(), y_hat, create_graph=False)
    assert g.shape == (8,)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(kernels.program_loss(prog, y_hat, torch.zeros(8)).sum(), y_hat, create_graph=True)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    prog = batch([parse("(y_hat - y)^2"), parse("max(y_hat, y) * (1 / (y_hat + 1))")]).to(device)
    y_hat = (torch.rand(2, 33) * 0.9 + 0.05).to(device)
    y = (torch.rand(2, 33) < 0.5).float().to(device)
    torch.library.opcheck(torch.ops.lossgen.evaluate.default, (prog, y_hat, y, 0))
    torch.library.opcheck(torch.ops.lossgen.program_loss.default, (prog, y_hat, y, 2))
    torch.library.opcheck(torch.ops.lossgen.program_loss.default, (prog, y_hat.clone().requires_grad_(True), y, 0))
    torch.library.opcheck(torch.ops.lossgen.program_loss.default, (prog, y_hat[0], y[0], 1))


def test_torch_compile():
    prog = batch([parse("(y_hat - y)^2"), parse("log(y_hat) * -y")])

    def f(y_hat, y):
        return kernels.program_loss(prog, y_hat, y, "symmetric").sum() * 2

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    y_hat = torch.rand(2, 40)
    y = (torch.rand(2, 40) < 0.5).float()
    torch.testing.assert_close(compiled(y_hat, y), f(y_hat, y))


def test_empty_and_odd_shapes():
    prog = batch([parse("(y_hat - y)^2")])
    values, grads = kernels.evaluate(prog, torch.empty(0), torch.empty(0))
    assert values.shape == (1, 0) and grads.shape == (1, 0)
    values, grads = kernels.evaluate(prog[:0], torch.rand(5), torch.rand(5))
    assert values.shape == (0, 5)
    # not a multiple of the CPU block, non-contiguous input
    y_hat = torch.rand(2, 1201)[:, ::2]
    y = torch.rand(1, 601).expand(2, 601)
    values, _ = kernels.evaluate(batch([parse("y_hat * y"), parse("y_hat + y")]), y_hat, y, "symmetric")
    torch.testing.assert_close(values[0], y_hat[0] * y[0])


def test_list_of_programs_is_accepted():
    values, _ = kernels.evaluate([parse("y_hat * y"), parse("(y_hat - y)^2")], torch.rand(10), torch.rand(10))
    assert values.shape == (2, 10)


BAD_INPUTS = [
    (lambda p, yh, y: (p.long(), yh, y), "programs must be int32"),
    (lambda p, yh, y: (p[0], yh, y), r"programs must have shape \[K, L, 3\]"),
    (lambda p, yh, y: (p[:, :0], yh, y), "at least one step"),
    (lambda p, yh, y: (p, yh.double(), y), "y_hat must be float32"),
    (lambda p, yh, y: (p, yh, y.half()), "y must be float32"),
    (lambda p, yh, y: (p, yh.reshape(1, 2, 4), y), r"y_hat must have shape \[K, N\] or \[N\]"),
    (lambda p, yh, y: (p, yh, y[:5]), "y_hat has 8 points but y has 5"),
    (lambda p, yh, y: (p, yh.expand(3, 8), y), "y_hat has 3 rows but there are 2 programs"),
    (lambda p, yh, y: (_set(p, (0, 0, 0), 15), yh, y), "program 0, step 0: op code 15 out of range"),
    (lambda p, yh, y: (_set(p, (1, 1, 1), 9), yh, y), "program 1, step 1: operand a=9 is not yet written"),
    (lambda p, yh, y: (_set(p, (1, 1, 2), 9), yh, y), "program 1, step 1: operand b=9 is not yet written"),
    (lambda p, yh, y: (_set(p, (0, 0, 2), 0), yh, y), "needs distinct operands, got a = b = 0"),
    (lambda p, yh, y: (p, _nan(yh), y), "y_hat contains NaN or inf"),
    (lambda p, yh, y: (p, yh, _nan(y)), "y contains NaN or inf"),
]


def _set(p, index, value):
    p = p.clone()
    p[index] = value
    return p


def _nan(t):
    t = t.clone()
    t[3] = float("nan")
    return t


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("make, message", BAD_INPUTS)
@pytest.mark.parametrize("fn", ["evaluate", "program_loss", "reference_evaluate"])
def test_bad_input_raises_value_error(device, make, message, fn):
    p = batch([parse("max(y_hat, y)"), parse("y_hat * log(y)")])  # rows: (Max 0 1), (Log 1 .) (Mul 0 3)
    yh, y = torch.rand(8), torch.rand(8)
    args = make(p, yh, y)
    args = [a.to(device) for a in args] if fn != "reference_evaluate" else args
    with pytest.raises(ValueError, match=message):
        getattr(kernels, fn)(*args)


def test_unknown_clamp_mode():
    with pytest.raises(ValueError, match="unknown clamp mode"):
        kernels.evaluate([parse("y_hat * y")], torch.rand(3), torch.rand(3), "loose")
    with pytest.raises(ValueError, match="clamp mode 7 out of range"):
        torch.ops.lossgen.evaluate(batch([parse("y_hat * y")]), torch.rand(3), torch.rand(3), 7)


def test_too_long_programs_are_refused():
    long = Program([(Op.NEG, 0, 0)] + [(Op.NEG, 3 + t, 0) for t in range(13)])
    with pytest.raises(ValueError, match="at most 13"):
        kernels.evaluate([long], torch.rand(3), torch.rand(3))


def test_results_do_not_depend_on_thread_count():
    prog = batch([parse("log(y_hat) * y + (y_hat - y)^2"), parse("max(y_hat, y) * (1 / (y_hat + 1))")] * 40)
    y_hat, y = torch.rand(5000), (torch.rand(5000) < 0.5).float()
    script = (
        "import torch, sys; from lossgen import kernels; torch.set_num_threads(int(sys.argv[1]));"
        "d = torch.load(sys.argv[2]); v, g = kernels.evaluate(d['p'], d['yh'], d['y']);"
        "l = kernels.program_loss(d['p'], d['yh'], d['y']); torch.save((v, g, l), sys.argv[3])"
    )
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        torch.save({"p": prog, "yh": y_hat, "y": y}, f"{tmp}/in.pt")
        outs = []
        for threads in (1, 2):
            subprocess.run([sys.executable, "-c", script, str(threads), f"{tmp}/in.pt", f"{tmp}/{threads}.pt"],
                           check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
            outs.append(torch.load(f"{tmp}/{threads}.pt"))
    for a, b in zip(*outs):
        assert torch.equal(a, b)


def test_paper_ops_only_programs_are_well_conditioned():
    results = fuzz(kernels.evaluate, 500, seed=3, ops=PAPER_OPS, clamps=("paper",), points=256)
    assert results["paper"].mismatches == 0


@pytest.mark.parametrize("device", DEVICES)
def test_evaluate_into_preallocated_outputs(device):
    prog = batch([parse("(y_hat - y)^2"), parse("log(y_hat) * -y")]).to(device)
    y_hat, y = torch.rand(2, 300, device=device), torch.rand(300, device=device)
    values, grads = torch.full((2, 300), 7.0, device=device), torch.full((2, 300), 7.0, device=device)
    out = kernels.evaluate(prog, y_hat, y, "symmetric", out=(values, grads))
    assert out[0] is values and out[1] is grads
    expected = kernels.evaluate(prog, y_hat, y, "symmetric")
    assert torch.equal(values, expected[0]) and torch.equal(grads, expected[1])
    with pytest.raises(ValueError, match=r"values must have shape \[2, 300\]"):
        kernels.evaluate(prog, y_hat, y, out=(values[:1], grads))
    with pytest.raises(ValueError, match="grads must be float32"):
        kernels.evaluate(prog, y_hat, y, out=(values, grads.double()))
    with pytest.raises(ValueError, match="values must be contiguous"):
        kernels.evaluate(prog, y_hat, y, out=(torch.empty(300, 2, device=device).t(), grads))
    torch.library.opcheck(torch.ops.lossgen.evaluate_out.default, (prog, y_hat, y, 0, values, grads))
