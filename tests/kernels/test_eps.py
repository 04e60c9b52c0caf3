"""Per-candidate smoothing epsilons (DESIGN.md "The loss program": e replaces xi in Log, Reciprocal
and Sqrt, with sign(0) = +1 there), and eps=None being exactly the paper's smoothing."""

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lossgen import kernels
from lossgen.ir.formula import parse
from lossgen.ir.opset import CLAMP_BOUNDS, Op, parse_clamp
from lossgen.ir.programs import Program, batch
from lossgen.kernels.reference import vectorized_evaluate
from lossgen.kernels.verify import compare, fuzz
from lossgen.training.losses import LossKind, named_loss_grad, named_loss_torch
from devices import DEVICES
from strategies import point_pairs, programs

CLAMPS = ["paper", "official", "symmetric"]
SMOOTHED = (Op.LOG, Op.RECIPROCAL, Op.SQRT)
SAVED = Path(__file__).parent / "data" / "eps_none_reference.pt"
MAXR = "max(y_hat * (1 / y), y * (1 / y_hat))"


def _clamped(v: float, clamp: str) -> float:
    lo, hi = CLAMP_BOUNDS[parse_clamp(clamp)]
    return float(torch.clamp(torch.tensor(v, dtype=torch.float32), lo, hi))


# ----------------------------------------------------------------------------- eps=None: unchanged


def test_eps_none_reference_equals_the_saved_expectation():
    # Saved before per-candidate epsilons existed: 24 random programs (Log, Reciprocal and Sqrt four
    # times as likely as other ops) on every pair of verify.SPECIAL_INPUTS (zeros, ties, clamp
    # bounds), reference_evaluate in all three clamp modes.
    saved = torch.load(SAVED)
    for clamp in CLAMPS:
        values, grads = kernels.reference_evaluate(saved["programs"], saved["y_hat"], saved["y"], clamp)
        assert torch.equal(values, saved[clamp][0]) and torch.equal(grads, saved[clamp][1]), clamp
        values, grads = kernels.reference_evaluate(saved["programs"], saved["y_hat"], saved["y"], clamp, eps=None)
        assert torch.equal(values, saved[clamp][0]) and torch.equal(grads, saved[clamp][1]), clamp


@pytest.mark.parametrize("device", DEVICES)
def test_eps_none_kernel_matches_the_saved_expectation(device):
    saved = torch.load(SAVED)
    prog, y_hat, y = (saved[k].to(device) for k in ("programs", "y_hat", "y"))
    for mode, clamp in enumerate(CLAMPS):
        default = kernels.evaluate(prog, y_hat, y, clamp)
        explicit = kernels.evaluate(prog, y_hat, y, clamp, eps=None)
        raw = torch.ops.lossgen.evaluate(prog, y_hat, y, mode)  # a call written before eps existed
        for other in (explicit, raw):
            assert torch.equal(default[0], other[0]) and torch.equal(default[1], other[1])
        assert torch.equal(kernels.program_loss(prog, y_hat, y, clamp),
                           kernels.program_loss(prog, y_hat, y, clamp, eps=None))
        result = compare(saved["programs"], saved["y_hat"], saved["y"], clamp, *default)
        assert result.mismatches == 0, result.examples
        assert result.exact > 0.99 * result.points


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("clamp", CLAMPS)
def test_paper_smoothing_at_zero(device, clamp):
    prog = batch([Program([(op, 0, 0)]) for op in SMOOTHED]).to(device)
    values, grads = kernels.evaluate(prog, torch.zeros(3, device=device), torch.zeros(3, device=device), clamp)
    assert values.cpu().flatten().tolist() == [_clamped(0.0, clamp)] * 9
    assert grads.cpu().flatten().tolist() == [0.0] * 9


# ----------------------------------------------------------------------------- eps given


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("clamp", CLAMPS)
def test_smoothing_epsilon_at_zero_and_beyond(device, clamp):
    e = 0.01
    x = torch.tensor([0.0, -0.0, 2.0, -2.0], device=device)
    prog = batch([Program([(op, 0, 0)]) for op in SMOOTHED]).to(device)
    values, grads = kernels.evaluate(prog, x, torch.zeros_like(x), clamp, eps=e)
    e32 = float(torch.tensor(e, dtype=torch.float32))
    sign = [1.0, 1.0, 1.0, -1.0]  # sign(0) = +1, -0 too
    mag = [e32, e32, 2.0 + e32, 2.0 + e32]
    expected_v = [[s * math.log(m) for s, m in zip(sign, mag)],
                  [s / m for s, m in zip(sign, mag)],
                  [s * math.sqrt(m) for s, m in zip(sign, mag)]]
    expected_d = [[1 / m for m in mag], [-1 / m**2 for m in mag], [1 / (2 * math.sqrt(m)) for m in mag]]
    lo, hi = CLAMP_BOUNDS[parse_clamp(clamp)]
    for row in range(3):
        for col in range(4):
            v, d = expected_v[row][col], expected_d[row][col]
            inside = lo <= v <= hi
            assert float(values[row, col]) == pytest.approx(min(max(v, lo), hi), rel=1e-6)
            assert float(grads[row, col]) == pytest.approx(d if inside else 0.0, rel=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("clamp", CLAMPS)
def test_every_op_with_eps_equals_reference(device, clamp):
    y_hat = torch.tensor([0.0, 1e-6, -1e-6, 0.3, 0.5, 0.5, -2.0, 1e6, 2e6, 80.0, 81.0, 1e-5, 1e5, 0.01, -0.01])
    y = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1e-5, 1e5, 0.01, 0.01])
    progs = []
    for op in Op:
        operands = (0, 1) if op.arity == 2 else (0, 0)
        progs.append(Program([(op, *operands)]))
        progs.append(Program([(Op.NEG, 0, 0), (op, 3, 1) if op.arity == 2 else (op, 3, 0)]))
        progs.append(Program([(Op.ADD, 0, 1), (op, 3, 0) if op.arity == 2 else (op, 3, 0)]))  # y_hat + y: ties to 0
    prog = batch(progs)
    eps = torch.logspace(-6, 0, len(progs), dtype=torch.float32)
    for e in (eps, 0.01, 1e-6, 1.0):
        values, grads = kernels.evaluate(prog.to(device), y_hat.to(device), y.to(device), clamp,
                                         eps=e.to(device) if isinstance(e, torch.Tensor) else e)
        ref_v, ref_g = kernels.reference_evaluate(prog, y_hat, y, clamp, eps=e)
        torch.testing.assert_close(values.cpu(), ref_v, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grads.cpu(), ref_g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("clamp", CLAMPS)
@settings(max_examples=40, deadline=None)
@given(progs=st.lists(programs(max_steps=9), min_size=1, max_size=6), points=point_pairs(), data=st.data())
def test_evaluate_with_eps_equals_reference_and_autograd(device, clamp, progs, points, data):
    y_hat, y = points
    prog = batch(progs, max(len(p) for p in progs))
    per_candidate = data.draw(st.booleans())
    if per_candidate:
        eps = torch.tensor(data.draw(st.lists(st.floats(1e-6, 1.0).map(lambda v: max(v, 1e-6)), min_size=len(progs),
                                              max_size=len(progs))), dtype=torch.float32)
    else:
        eps = data.draw(st.sampled_from([1e-6, 1e-3, 0.01, 0.5, 1.0]))
    values, grads = kernels.evaluate(prog.to(device), y_hat.to(device), y.to(device), clamp,
                                     eps=eps.to(device) if per_candidate else eps)
    result = compare(prog, y_hat, y, clamp, values, grads, eps=eps)
    assert result.mismatches == 0, result.examples


@pytest.mark.parametrize("device", DEVICES)
def test_fuzz_with_random_eps(device):
    results = fuzz(kernels.evaluate, 1500, seed=17, points=256, device=device, smoothings=("random",))
    for clamp, r in results.items():
        assert r.mismatches == 0, (clamp, r.examples)
        assert r.exact > 0.999 * r.points


def test_eps_changes_only_the_smoothed_ops():
    prog = batch([parse("(y_hat - y)^2"), parse("sigmoid(y_hat) * tanh(y) + exp(y_hat)"), parse("log(y_hat)")])
    y_hat, y = torch.rand(50) * 0.9 + 0.05, torch.rand(50)
    plain = kernels.evaluate(prog, y_hat, y, "symmetric")
    smooth = kernels.evaluate(prog, y_hat, y, "symmetric", eps=0.1)
    assert torch.equal(plain[0][:2], smooth[0][:2]) and torch.equal(plain[1][:2], smooth[1][:2])
    torch.testing.assert_close(smooth[0][2], torch.log(y_hat + 0.1))


def test_vectorized_baseline_takes_eps():
    prog = batch([parse("log(y_hat - y) * (1 / y_hat)"), parse("sqrt(y_hat) + 1 / (y - y_hat)")])
    y_hat = torch.tensor([0.0, 0.5, 1.0, -0.3, 0.25])
    y = torch.tensor([0.0, 0.5, 0.0, 1.0, 1.0])
    for eps in (None, 0.01, torch.tensor([0.5, 1e-4])):
        v, g = vectorized_evaluate(prog, y_hat, y, "symmetric", eps=eps)
        rv, rg = kernels.reference_evaluate(prog, y_hat, y, "symmetric", eps=eps)
        torch.testing.assert_close(v, rv, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(g, rg, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("clamp", CLAMPS)
def test_program_loss_with_eps_is_the_mean_and_differentiable(device, clamp):
    torch.manual_seed(0)
    prog = batch([parse(s) for s in ["log(y_hat) * -y", MAXR, "sqrt(y_hat - y) + 1 / y_hat"]])
    y_hat = torch.rand(3, 1000) * 0.98 + 0.01
    y_hat[:, :10] = 0.0  # exact zeros: sign(0) = +1, derivatives from the right
    y = (torch.rand(3, 1000) < 0.5).float()
    eps = torch.tensor([1e-3, 1e-2, 0.5])
    leaf = y_hat.to(device).requires_grad_(True)
    loss = kernels.program_loss(prog.to(device), leaf, y.to(device), clamp, eps=eps.to(device))
    ref_v, ref_g = kernels.reference_evaluate(prog, y_hat, y, clamp, eps=eps)
    torch.testing.assert_close(loss.detach().cpu(), ref_v.mean(1), rtol=1e-5, atol=1e-6)
    (loss * torch.tensor([1.0, 2.0, 3.0], device=device)).sum().backward()
    expected = ref_g * torch.tensor([1.0, 2.0, 3.0]).unsqueeze(1) / 1000
    torch.testing.assert_close(leaf.grad.cpu(), expected, rtol=1e-5, atol=1e-9)


def test_program_loss_with_eps_shared_row_gradient():
    prog = batch([parse("log(y_hat) * y"), parse("1 / (y_hat + y)")])
    y_hat = torch.rand(50).requires_grad_(True)
    y = (torch.rand(50) < 0.5).float()
    kernels.program_loss(prog, y_hat, y, "symmetric", eps=torch.tensor([0.1, 0.01])).sum().backward()
    _, grads = kernels.reference_evaluate(prog, y_hat.detach(), y, "symmetric", eps=torch.tensor([0.1, 0.01]))
    torch.testing.assert_close(y_hat.grad, grads.sum(0) / 50, rtol=1e-5, atol=1e-8)


@pytest.mark.filterwarnings("ignore:Input #0 requires gradient and is not a double")
@pytest.mark.parametrize("eps", [0.3, torch.tensor([0.05, 0.3, 1.0])], ids=["float", "per-candidate"])
def test_program_loss_gradcheck_with_eps(eps):
    # float32 kernels: float32 tolerances, at points away from kinks (no sign change within +-eps).
    prog = batch([parse(s) for s in ["log(y_hat) * (1 / (y + 1))", "1 / y_hat + y", "sqrt(y_hat) * tanh(y)"]])
    y_hat = (torch.rand(3, 16, dtype=torch.float32) * 0.8 + 0.1).requires_grad_(True)
    y = torch.rand(3, 16)
    assert torch.autograd.gradcheck(
        lambda x: kernels.program_loss(prog, x, y, "symmetric", eps=eps), (y_hat,), eps=1e-3, atol=1e-3, rtol=1e-2
    )


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_with_eps(device):
    prog = batch([parse("log(y_hat) * -y"), parse(MAXR)]).to(device)
    y_hat = (torch.rand(2, 33) * 0.9 + 0.05).to(device)
    y = (torch.rand(2, 33) < 0.5).float().to(device)
    eps = torch.tensor([0.01, 0.5], device=device)
    torch.library.opcheck(torch.ops.lossgen.evaluate.default, (prog, y_hat, y, 0, eps))
    torch.library.opcheck(torch.ops.lossgen.evaluate.default, (prog, y_hat, y, 2), {"eps": eps})
    torch.library.opcheck(torch.ops.lossgen.evaluate.default, (prog, y_hat, y, 1, None))
    torch.library.opcheck(torch.ops.lossgen.program_loss.default, (prog, y_hat, y, 2, eps))
    torch.library.opcheck(torch.ops.lossgen.program_loss.default,
                          (prog, y_hat.clone().requires_grad_(True), y, 0, eps))
    torch.library.opcheck(torch.ops.lossgen.program_loss.default, (prog, y_hat[0], y[0], 1, eps))
    values, grads = torch.empty(2, 33, device=device), torch.empty(2, 33, device=device)
    torch.library.opcheck(torch.ops.lossgen.evaluate_out.default, (prog, y_hat, y, 2, values, grads, eps))


@pytest.mark.parametrize("device", DEVICES)
def test_evaluate_into_preallocated_outputs_with_eps(device):
    prog = batch([parse("log(y_hat) * -y"), parse("1 / y_hat")]).to(device)
    y_hat, y = torch.rand(2, 300, device=device), torch.rand(300, device=device)
    values, grads = torch.full((2, 300), 7.0, device=device), torch.full((2, 300), 7.0, device=device)
    out = kernels.evaluate(prog, y_hat, y, "symmetric", 0.05, out=(values, grads))
    assert out[0] is values and out[1] is grads
    expected = kernels.evaluate(prog, y_hat, y, "symmetric", eps=0.05)
    assert torch.equal(values, expected[0]) and torch.equal(grads, expected[1])


def test_torch_compile_with_eps():
    prog = batch([parse("(y_hat - y)^2"), parse("log(y_hat) * -y")])
    eps = torch.tensor([0.01, 0.1])

    def f(y_hat, y):
        return kernels.program_loss(prog, y_hat, y, "symmetric", eps=eps).sum() * 2

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    y_hat = torch.rand(2, 40)
    y = (torch.rand(2, 40) < 0.5).float()
    torch.testing.assert_close(compiled(y_hat, y), f(y_hat, y))


def test_a_float_eps_is_every_candidates_eps():
    prog = batch([parse("log(y_hat) * -y"), parse("1 / y_hat")])
    y_hat, y = torch.rand(40), torch.rand(40)
    a = kernels.evaluate(prog, y_hat, y, "symmetric", eps=0.2)
    b = kernels.evaluate(prog, y_hat, y, "symmetric", eps=torch.tensor([0.2, 0.2]))
    c = kernels.evaluate(prog, y_hat, y, "symmetric", eps=torch.tensor(0.2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and torch.equal(a[0], c[0])


# ----------------------------------------------------------------------------- MaxR as a program


@pytest.mark.parametrize("clamp", CLAMPS)
def test_maxr_program_with_eps(clamp):
    """The paper's "(x + e)" smoothing: the program MAXR with e = 0.01 against the reference, and
    how it relates to the named MaxR = max((y_hat + e) / (y + e), (y + e) / (y_hat + e)).

    The program smooths each reciprocal only, y_hat / (y + e) instead of (y_hat + e) / (y + e): for
    labels y in {0, 1} and y_hat in (0, 1) its gradient equals the named MaxR's at y = 0
    (both 1 / e) and is the named one divided by (1 + e) at y = 1 (-1 / (y_hat + e)^2 against
    -(1 + e) / (y_hat + e)^2); the values differ by at most 1 (exactly 1 at y = 0: y_hat / e
    against y_hat / e + 1)."""
    e = 0.01
    prog = batch([parse(MAXR)])
    y_hat = torch.cat([torch.linspace(0.001, 0.999, 499), torch.linspace(0.001, 0.999, 499)])
    y = torch.cat([torch.zeros(499), torch.ones(499)])
    values, grads = kernels.evaluate(prog, y_hat, y, clamp, eps=e)
    ref_v, ref_g = kernels.reference_evaluate(prog, y_hat, y, clamp, eps=e)
    torch.testing.assert_close(values, ref_v, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads, ref_g, rtol=1e-5, atol=1e-6)
    score = torch.logit(y_hat.double())
    e32 = float(torch.tensor(e, dtype=torch.float32))
    named_v = named_loss_torch(LossKind.MAXR, score, y.double(), e32)
    named_g = named_loss_grad(LossKind.MAXR, score, y_hat.double(), y.double(), torch.tensor(e32)) / (
        y_hat.double() * (1 - y_hat.double()))  # d/d y_hat from d/d score
    zero, one = y == 0, y == 1
    torch.testing.assert_close(grads[0][zero].double(), named_g[zero], rtol=1e-5, atol=0)
    torch.testing.assert_close(grads[0][one].double() * (1 + e32), named_g[one], rtol=1e-5, atol=0)
    gap = (named_v - values[0].double()).abs()
    torch.testing.assert_close(gap[zero], torch.ones(499, dtype=torch.float64), rtol=0, atol=1e-4)
    assert float(gap[one].max()) < 1


# ----------------------------------------------------------------------------- bad eps


BAD_EPS = [
    (-1.0, r"eps = -1: the smoothing epsilon must be finite and > 0"),
    (0.0, r"eps = 0: the smoothing epsilon must be finite and > 0"),
    (float("nan"), r"eps = nan: the smoothing epsilon must be finite and > 0"),
    (float("inf"), r"eps = inf: the smoothing epsilon must be finite and > 0"),
    (1e-50, r"eps = 1e-50: the smoothing epsilon must be finite and > 0 \(in float32\)"),
    (1e40, r"eps = 1e\+40: the smoothing epsilon must be finite and > 0 \(in float32\)"),
    (True, "eps must be a float or a float32 \\[K\\] tensor, got bool"),
    ("0.1", "eps must be a float or a float32 \\[K\\] tensor, got str"),
    (torch.tensor([0.1, -0.5]), r"eps\[1\] = -0.5: the smoothing epsilon must be finite and > 0"),
    (torch.tensor([float("nan"), 0.5]), r"eps\[0\] = nan: the smoothing epsilon must be finite and > 0"),
    (torch.tensor([0.1, float("inf")]), r"eps\[1\] = inf: the smoothing epsilon must be finite and > 0"),
    (torch.tensor([0.1, 0.0]), r"eps\[1\] = 0: the smoothing epsilon must be finite and > 0"),
    (torch.tensor([0.1, 0.2, 0.3]), r"eps must have shape \[K\] = \[2\], got \[3\]"),
    (torch.tensor([[0.1, 0.2]]), r"eps must have shape \[K\] = \[2\], got \[1, 2\]"),
    (torch.tensor([0.1, 0.2], dtype=torch.float64), "eps must be float32"),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("eps, message", BAD_EPS, ids=[str(i) for i in range(len(BAD_EPS))])
@pytest.mark.parametrize("fn", ["evaluate", "program_loss", "reference_evaluate"])
def test_bad_eps_raises_value_error(device, eps, message, fn):
    p = batch([parse("max(y_hat, y)"), parse("y_hat * log(y)")])
    yh, y = torch.rand(8), torch.rand(8)
    if fn != "reference_evaluate":
        p, yh, y = p.to(device), yh.to(device), y.to(device)
        eps = eps.to(device) if isinstance(eps, torch.Tensor) else eps
    with pytest.raises(ValueError, match=message):
        getattr(kernels, fn)(p, yh, y, "symmetric", eps=eps)


@pytest.mark.parametrize("device", DEVICES)
def test_bad_eps_through_the_raw_ops(device):
    p = batch([parse("log(y_hat)")]).to(device)
    yh, y = torch.rand(8, device=device), torch.rand(8, device=device)
    with pytest.raises(ValueError, match=r"eps\[0\] = -2: the smoothing epsilon must be finite and > 0"):
        torch.ops.lossgen.evaluate(p, yh, y, 0, torch.tensor([-2.0], device=device))
    with pytest.raises(ValueError, match=r"eps must have shape \[K\] = \[1\], got \[\]"):
        torch.ops.lossgen.program_loss(p, yh, y, 0, torch.tensor(0.5, device=device))
    with pytest.raises(ValueError, match=r"eps\[0\] = 0: the smoothing epsilon"):
        torch.ops.lossgen.evaluate_out(p, yh, y, 0, torch.empty(1, 8, device=device), torch.empty(1, 8, device=device),
                                       torch.zeros(1, device=device))
