"""Input checks of the kernel API in Python (the compiled ops make the same checks in C++).

Used by the PyTorch reference so that it rejects exactly what the kernels reject, with the same
messages; ValueError names the problem.
"""

from __future__ import annotations

import math
import numbers

import torch

from lossgen.ir.opset import N_INPUT_SLOTS, N_OPS, Op


def check_inputs(programs: torch.Tensor, y_hat: torch.Tensor, y: torch.Tensor) -> None:
    """Raise ValueError naming the first problem with the inputs of evaluate/program_loss."""
    if not isinstance(programs, torch.Tensor) or programs.dtype != torch.int32:
        raise ValueError(f"programs must be int32, got {getattr(programs, 'dtype', type(programs).__name__)}")
    if programs.dim() != 3 or programs.shape[2] != 3:
        raise ValueError(f"programs must have shape [K, L, 3], got {list(programs.shape)}")
    k, length = programs.shape[0], programs.shape[1]
    if length < 1:
        raise ValueError("programs must have at least one step (L >= 1), got L = 0")
    for name, t in (("y_hat", y_hat), ("y", y)):
        if t.dtype != torch.float32:
            raise ValueError(f"{name} must be float32, got {t.dtype}")
        if t.dim() not in (1, 2):
            raise ValueError(f"{name} must have shape [K, N] or [N], got {list(t.shape)}")
        if t.dim() == 2 and t.shape[0] != k:
            raise ValueError(f"{name} has {t.shape[0]} rows but there are {k} programs")
    if y.shape[-1] != y_hat.shape[-1]:
        raise ValueError(f"y_hat has {y_hat.shape[-1]} points but y has {y.shape[-1]}")
    _check_program_rows(programs)
    if not torch.isfinite(y_hat).all():
        raise ValueError("y_hat contains NaN or inf")
    if not torch.isfinite(y).all():
        raise ValueError("y contains NaN or inf")


def _check_program_rows(programs: torch.Tensor) -> None:
    p = programs.detach().to("cpu", torch.long)
    ops, a, b = p[..., 0], p[..., 1], p[..., 2]
    written = N_INPUT_SLOTS + torch.arange(p.shape[1]).expand_as(ops)
    binary = (ops >= 0) & (ops <= int(Op.MIN))
    problems = [
        ((ops < 0) | (ops >= N_OPS), lambda k, t: f"op code {int(ops[k, t])} out of range 0..{N_OPS - 1}"),
        ((a < 0) | (a >= written), lambda k, t: f"operand a={int(a[k, t])} is not yet written (slots 0..{int(written[k, t]) - 1})"),
        (binary & ((b < 0) | (b >= written)), lambda k, t: f"operand b={int(b[k, t])} is not yet written (slots 0..{int(written[k, t]) - 1})"),
        (binary & (a == b), lambda k, t: f"binary op {Op(int(ops[k, t])).pretty} needs distinct operands, got a = b = {int(a[k, t])}"),
    ]
    first = None
    for mask, message in problems:
        hits = mask.nonzero()
        if len(hits):
            k, t = hits[0].tolist()
            if first is None or (k, t) < first[:2]:
                first = (k, t, message(k, t))
    if first is not None:
        raise ValueError(f"program {first[0]}, step {first[1]}: {first[2]}")


def eps_tensor(eps, k: int, device=None) -> torch.Tensor | None:
    """The ``eps`` argument of the kernel API as float32 ``[K]``: None stays None (the paper's
    smoothing), a float is checked and broadcast to every candidate, a 0-dim tensor is broadcast,
    a ``[K]`` tensor passes through (`check_eps` and the compiled ops check it)."""
    if eps is None:
        return None
    if isinstance(eps, torch.Tensor):
        return eps.expand(k) if eps.dim() == 0 else eps
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise ValueError(f"eps must be a float or a float32 [K] tensor, got {type(eps).__name__}")
    value = float(eps)
    single = float(torch.tensor(value, dtype=torch.float32))  # what the kernels will see
    if not (math.isfinite(value) and math.isfinite(single) and single > 0):
        raise ValueError(f"eps = {value:g}: the smoothing epsilon must be finite and > 0 (in float32)")
    return torch.full((k,), value, dtype=torch.float32, device=device)


def check_eps(eps: torch.Tensor | None, k: int) -> None:
    """Raise ValueError naming the first problem with per-candidate epsilons (None is fine)."""
    if eps is None:
        return
    if not isinstance(eps, torch.Tensor) or eps.dtype != torch.float32:
        raise ValueError(f"eps must be float32, got {getattr(eps, 'dtype', type(eps).__name__)}")
    if eps.dim() != 1 or eps.shape[0] != k:
        raise ValueError(f"eps must have shape [K] = [{k}], got {list(eps.shape)}")
    values = eps.detach().cpu()
    bad = (~(torch.isfinite(values) & (values > 0))).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"eps[{i}] = {float(values[i]):g}: the smoothing epsilon must be finite and > 0")
