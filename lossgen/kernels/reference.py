"""Loss programs in plain PyTorch: the oracle of the compiled kernels and their benchmark baselines.

`reference_values` defines the semantics: every op as DESIGN.md's table states, each result
clamped, inputs not clamped. The kernels' derivatives must equal PyTorch autograd applied to it,
so how each op is written here matters at the edges:

- Log, Reciprocal and Sqrt have two smoothings. Without a per-candidate epsilon (``eps=None``,
  the paper's): sign(x) * f(abs(x) + XI) with torch.sign and torch.abs, whose autograd derivatives
  are 0 at x = 0, so value and derivative at exactly 0 are 0. With a candidate's epsilon e:
  s(x) * f(x * s(x) + e) with s(x) = +1 for x >= 0, -1 for x < 0, a constant to autograd; x * s(x)
  is abs(x) with derivative s(x), +1 at 0, so f(0) = f(e) and the derivative at 0 is the limit
  from the right (Log'(0) = 1/e, Reciprocal'(0) = -1/e^2, Sqrt'(0) = 1/(2 sqrt(e))).
- Max and Min split the gradient in half at ties (torch.maximum/minimum's rule).
- Exp reads min(x, EXP_INPUT_MAX) so that exp never overflows: otherwise autograd would multiply
  the clamp's zero gradient by inf and produce NaN.
- Clamping passes the gradient on the closed interval [lo, hi] (torch.clamp's rule).

`vectorized_evaluate` is the fastest all-candidates-at-once formulation plain PyTorch allows
(forward-mode derivatives by hand, one masked pass per op present at a step); it is the
"vectorized PyTorch" baseline of ``bench/kernels.py``.
"""

from __future__ import annotations

import torch

from lossgen.kernels.checks import check_eps, check_inputs, eps_tensor
from lossgen.ir.opset import CLAMP_BOUNDS, EXP_INPUT_MAX, N_INPUT_SLOTS, XI, Clamp, Op, parse_clamp

SMOOTHED_OPS = (Op.LOG, Op.RECIPROCAL, Op.SQRT)
"""The ops that use the smoothing epsilon."""


def _nonneg_sign(a: torch.Tensor) -> torch.Tensor:
    """s(x) = +1 for x >= 0, -1 for x < 0, as a constant (no gradient flows through it)."""
    return torch.where(a.detach() >= 0, 1.0, -1.0).to(a.dtype)


def _apply(op: Op, a: torch.Tensor, b: torch.Tensor | None, eps: float | None = None) -> torch.Tensor:
    if eps is not None and op in SMOOTHED_OPS:
        s = _nonneg_sign(a)
        magnitude = a * s  # abs(a), with derivative s(a): +1 at a = 0
        if op == Op.LOG:
            return s * torch.log(magnitude + eps)
        if op == Op.RECIPROCAL:
            return s / (magnitude + eps)
        return s * torch.sqrt(magnitude + eps)
    if op == Op.ADD:
        return a + b
    if op == Op.MUL:
        return a * b
    if op == Op.MAX:
        return torch.maximum(a, b)
    if op == Op.MIN:
        return torch.minimum(a, b)
    if op == Op.NEG:
        return -a
    if op == Op.IDENTITY:
        return a
    if op == Op.LOG:
        return torch.sign(a) * torch.log(torch.abs(a) + XI)
    if op == Op.SQUARE:
        return a * a
    if op == Op.RECIPROCAL:
        return torch.sign(a) / (torch.abs(a) + XI)
    if op == Op.SIGMOID:
        return torch.sigmoid(a)
    if op == Op.TANH:
        return torch.tanh(a)
    if op == Op.RELU:
        return torch.relu(a)
    if op == Op.ABS:
        return torch.abs(a)
    if op == Op.SQRT:
        return torch.sign(a) * torch.sqrt(torch.abs(a) + XI)
    if op == Op.EXP:
        return torch.exp(torch.clamp(a, max=EXP_INPUT_MAX))
    raise ValueError(f"op code {int(op)} out of range")


def program_values(steps, y_hat: torch.Tensor, y: torch.Tensor, clamp=Clamp.PAPER, eps: float | None = None) -> torch.Tensor:
    """Value of one program (rows of ``(op, a, b)``) at every point; differentiable in y_hat.
    `eps`: the candidate's smoothing epsilon (a float32 value), or None for the paper's."""
    lo, hi = CLAMP_BOUNDS[parse_clamp(clamp)]
    slots = [y_hat, y, torch.ones_like(y_hat)]
    for op, a, b in steps:
        op = Op(int(op))
        value = _apply(op, slots[int(a)], slots[int(b)] if op.arity == 2 else None, eps)
        slots.append(torch.clamp(value, lo, hi))
    return slots[-1]


def _broadcast(programs: torch.Tensor, y_hat: torch.Tensor, y: torch.Tensor):
    check_inputs(programs, y_hat, y)
    k = programs.shape[0]
    n = y_hat.shape[-1]
    return y_hat.expand(k, n), y.expand(k, n)


def candidate_eps(eps, k: int) -> list[float | None]:
    """The kernel API's ``eps`` (None, a float, or float32 ``[K]``) checked as the kernels check
    it, as one Python float (a float32 value) or None per candidate."""
    eps = eps_tensor(eps, k)
    check_eps(eps, k)
    return [None] * k if eps is None else [float(e) for e in eps.detach().cpu()]


def reference_values(programs: torch.Tensor, y_hat: torch.Tensor, y: torch.Tensor, clamp="paper",
                     eps=None) -> torch.Tensor:
    """``[K, N]`` values, candidate by candidate; autograd flows to y_hat."""
    y_hat_k, y_k = _broadcast(programs, y_hat, y)
    rows = programs.tolist()
    e = candidate_eps(eps, len(rows))
    return torch.stack([program_values(rows[k], y_hat_k[k], y_k[k], clamp, e[k]) for k in range(len(rows))])


def reference_evaluate(programs: torch.Tensor, y_hat: torch.Tensor, y: torch.Tensor, clamp="paper", eps=None):
    """``(values, grads)``, each ``[K, N]``: eager PyTorch, one candidate at a time, derivatives by
    autograd. The oracle for the kernels and the per-candidate benchmark baseline. `eps` as in
    `lossgen.kernels.evaluate`: None (the paper's smoothing), a float, or float32 ``[K]``."""
    y_hat_k, y_k = _broadcast(programs, y_hat.detach(), y.detach())
    rows = programs.tolist()
    e = candidate_eps(eps, len(rows))
    values, grads = [], []
    for k, steps in enumerate(rows):
        x = y_hat_k[k].clone().requires_grad_(True)
        with torch.enable_grad():
            v = program_values(steps, x, y_k[k], clamp, e[k])
            # A program that never reads y_hat has no graph: its derivative is 0.
            g = torch.autograd.grad(v.sum(), x, allow_unused=True)[0] if v.requires_grad else None
        values.append(v.detach())
        grads.append(torch.zeros_like(x) if g is None else g)
    return torch.stack(values), torch.stack(grads)


def _forward_mode(op: Op, a, da, b, db, rounded=lambda x: x, eps=None):
    """Value and d/d y_hat of one op, written with the same rules autograd applies above.
    `rounded` is applied to the intermediates a derivative is computed from (the verifier uses it
    to model their float32 rounding). `eps`: None (the paper's smoothing) or the candidates'
    epsilons (a float, or a tensor that broadcasts against `a`)."""
    if eps is not None and op in SMOOTHED_OPS:
        s = _nonneg_sign(a)
        if op == Op.SQRT:
            r = rounded(torch.sqrt(a.abs() + eps))
            return s * r, da / (2.0 * r)
        den = rounded(a.abs() + eps)
        if op == Op.LOG:
            return s * torch.log(den), da / den
        return s / den, -da / (den * den)
    if op == Op.ADD:
        return a + b, da + db
    if op == Op.MUL:
        return a * b, da * b + db * a
    if op in (Op.MAX, Op.MIN):
        pick_a = a > b if op == Op.MAX else a < b
        value = torch.where(pick_a, a, b)
        d = torch.where(pick_a, da, db)
        return value, torch.where(a == b, 0.5 * (da + db), d)
    if op == Op.NEG:
        return -a, -da
    if op == Op.IDENTITY:
        return a, da
    if op == Op.LOG:
        den = rounded(a.abs() + XI)
        return torch.sign(a) * torch.log(den), torch.where(a != 0, da / den, 0.0)
    if op == Op.SQUARE:
        return a * a, 2.0 * a * da
    if op == Op.RECIPROCAL:
        den = rounded(a.abs() + XI)
        return torch.sign(a) / den, torch.where(a != 0, -da / (den * den), 0.0)
    if op == Op.SIGMOID:
        s = rounded(torch.sigmoid(a))
        return s, da * (1.0 - s) * s
    if op == Op.TANH:
        t = rounded(torch.tanh(a))
        return t, da * (1.0 - t * t)
    if op == Op.RELU:
        return torch.relu(a), torch.where(a > 0, da, 0.0)
    if op == Op.ABS:
        return a.abs(), torch.sign(a) * da
    if op == Op.SQRT:
        r = rounded(torch.sqrt(a.abs() + XI))
        return torch.sign(a) * r, torch.where(a != 0, da / (2.0 * r), 0.0)
    if op == Op.EXP:
        e = rounded(torch.exp(torch.clamp(a, max=EXP_INPUT_MAX)))
        return e, torch.where(a <= EXP_INPUT_MAX, da * e, 0.0)
    raise ValueError(f"op code {int(op)} out of range")


def vectorized_evaluate(programs: torch.Tensor, y_hat: torch.Tensor, y: torch.Tensor, clamp="paper", eps=None):
    """``(values, grads)`` for all K candidates at once in plain PyTorch (benchmark baseline).

    Slots live in one ``[S * K, N]`` table (row ``slot * K + k``); each step gathers the operand
    rows of the candidates that run a given op with `index_select` (contiguous row copies, the
    fastest gather PyTorch has), applies the op once for all of them, and writes back with
    `index_copy_`. One pass per distinct op per step, no Python loop over candidates."""
    lo, hi = CLAMP_BOUNDS[parse_clamp(clamp)]
    y_hat_k, y_k = _broadcast(programs, y_hat.detach(), y.detach())
    k, length = programs.shape[0], programs.shape[1]
    e = eps_tensor(eps, k)
    check_eps(e, k)
    e = None if e is None else e.to(y_hat_k.device).unsqueeze(1)
    n = y_hat_k.shape[1]
    vals = y_hat_k.new_empty((N_INPUT_SLOTS + length) * k, n)
    ders = torch.empty_like(vals)
    vals[:k], vals[k : 2 * k], vals[2 * k : 3 * k] = y_hat_k, y_k, 1.0
    ders[:k], ders[k : 3 * k] = 1.0, 0.0
    prog = programs.to(torch.long).cpu()
    cand = torch.arange(k)
    for t in range(length):
        ops = prog[:, t, 0]
        a_rows = prog[:, t, 1] * k + cand
        b_rows = prog[:, t, 2] * k + cand
        out_rows = (N_INPUT_SLOTS + t) * k + cand
        for code in torch.unique(ops).tolist():
            op = Op(code)
            sel = (ops == code).nonzero().flatten()
            ia = a_rows[sel].to(vals.device)
            a, da = vals.index_select(0, ia), ders.index_select(0, ia)
            if op.arity == 2:
                ib = b_rows[sel].to(vals.device)
                b, db = vals.index_select(0, ib), ders.index_select(0, ib)
            else:
                b = db = None
            sel_eps = None if e is None else e.index_select(0, sel.to(e.device))
            v, d = _forward_mode(op, a, da, b, db, eps=sel_eps)
            d = torch.where((v >= lo) & (v <= hi), d, 0.0)
            io = out_rows[sel].to(vals.device)
            vals.index_copy_(0, io, torch.clamp(v, lo, hi))
            ders.index_copy_(0, io, d)
    last = (N_INPUT_SLOTS + length - 1) * k
    return vals[last:], ders[last:]
