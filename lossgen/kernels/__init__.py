"""Public front of the compiled loss-program kernels (DESIGN.md, "Kernels").

    evaluate(programs, y_hat, y, clamp="paper", eps=None) -> (values, grads)   # [K, N] each
    program_loss(programs, y_hat, y, clamp="paper", eps=None) -> Tensor[K]      # mean loss, differentiable
    reference_evaluate(...)                                                      # plain PyTorch oracle
    backend(device=None) -> "compiled-cpu" | "compiled-cuda" | "reference"

`programs` is an int32 ``[K, L, 3]`` tensor or a list of `Program`. y_hat and y are float32
``[K, N]`` or ``[N]`` (shared by all candidates). `eps` is each candidate's smoothing epsilon
for Log, Reciprocal and Sqrt: a float (every candidate) or float32 ``[K]``, each finite and > 0,
with sign(0) = +1 in those ops (Reciprocal(0) = 1/e, Log(0) = log(e)); None is the paper's
smoothing, xi = 1e-6 with sign(0) = 0 (the results of the kernels before eps existed, bit for
bit). docs/kernels.md states the derivatives at 0. The ops are registered with the PyTorch
dispatcher as ``torch.ops.lossgen.evaluate`` and ``torch.ops.lossgen.program_loss``, so the same
call runs on CPU or CUDA tensors and works under ``torch.compile``.

The compiled extension is required. The reference is used instead only when the user asks for
it explicitly with ``LOSSGEN_BACKEND=reference``; it is never a silent fallback.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch

from lossgen.kernels.checks import check_inputs, eps_tensor
from lossgen.ir.opset import Clamp, parse_clamp
from lossgen.ir.programs import Program, batch
from lossgen.kernels.reference import reference_evaluate, reference_values, vectorized_evaluate

__all__ = [
    "evaluate",
    "program_loss",
    "reference_evaluate",
    "vectorized_evaluate",
    "backend",
    "check_inputs",
    "as_program_tensor",
]

_FORCE_REFERENCE = os.environ.get("LOSSGEN_BACKEND", "").strip().lower() == "reference"

try:
    from lossgen import _C  # noqa: F401  (importing registers torch.ops.lossgen.*)

    _IMPORT_ERROR: Exception | None = None
except ImportError as err:  # pragma: no cover - exercised only on a broken install
    _C = None
    _IMPORT_ERROR = err


def _require_compiled() -> None:
    if _C is None:
        raise RuntimeError(
            "lossgen's compiled extension lossgen._C is missing "
            f"({_IMPORT_ERROR}); build it with `pip install --no-build-isolation -e .`, "
            "or set LOSSGEN_BACKEND=reference to run the slow PyTorch reference on purpose"
        )


def backend(device: torch.device | str | None = None) -> str:
    """What evaluates programs on `device` (default CPU)."""
    if _FORCE_REFERENCE:
        return "reference"
    _require_compiled()
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda":
        if not _C.built_with_cuda():
            raise RuntimeError("lossgen._C was built without CUDA; rebuild with FORCE_CUDA=1 on a CUDA machine")
        return "compiled-cuda"
    return "compiled-cpu"


def as_program_tensor(programs: torch.Tensor | Sequence[Program] | Program) -> torch.Tensor:
    """A list of `Program` (or one) becomes int32 ``[K, L, 3]``; tensors pass through."""
    if isinstance(programs, Program):
        programs = [programs]
    if isinstance(programs, torch.Tensor):
        return programs
    return batch(list(programs))


def _eps(eps, programs: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor | None:
    """None, or float32 [K] (a float broadcast to every candidate, on y_hat's device)."""
    if eps is None:
        return None
    e = eps_tensor(eps, programs.shape[0] if programs.dim() == 3 else 0, y_hat.device)
    return e.detach()


def evaluate(programs, y_hat: torch.Tensor, y: torch.Tensor, clamp: str | Clamp = "paper", eps=None, *, out=None):
    """Loss values and d(value)/d(y_hat), each float32 ``[K, N]`` (no autograd graph).

    ``out=(values, grads)`` writes into preallocated contiguous float32 ``[K, N]`` tensors and
    returns them: a hot loop that reuses its buffers then allocates nothing. ``eps``: see the
    module doc (None: the paper's smoothing)."""
    programs = as_program_tensor(programs)
    mode = int(parse_clamp(clamp))
    if _FORCE_REFERENCE:
        values, grads = reference_evaluate(programs, y_hat, y, Clamp(mode), eps)
        if out is None:
            return values, grads
        out[0].copy_(values)
        out[1].copy_(grads)
        return out
    _require_compiled()
    e = _eps(eps, programs, y_hat)
    if out is None:
        return torch.ops.lossgen.evaluate(programs, y_hat.detach(), y.detach(), mode, e)
    values, grads = out
    torch.ops.lossgen.evaluate_out(programs, y_hat.detach(), y.detach(), mode, values, grads, e)
    return values, grads


def program_loss(programs, y_hat: torch.Tensor, y: torch.Tensor, clamp: str | Clamp = "paper",
                 eps=None) -> torch.Tensor:
    """Mean loss over the N points per candidate, ``[K]``; differentiable with respect to y_hat
    (the backward pass runs the compiled derivative kernel). ``eps``: see the module doc."""
    programs = as_program_tensor(programs)
    mode = int(parse_clamp(clamp))
    if _FORCE_REFERENCE:
        return reference_values(programs, y_hat, y, Clamp(mode), eps).mean(dim=1)
    _require_compiled()
    return torch.ops.lossgen.program_loss(programs, y_hat, y, mode, _eps(eps, programs, y_hat))


# ----------------------------------------------------------------------------- op registration
# Shapes for FakeTensor/torch.compile, and autograd for program_loss.

if _C is not None:

    @torch.library.register_fake("lossgen::evaluate")
    def _evaluate_fake(programs, y_hat, y, clamp, eps=None):
        k, n = programs.shape[0], y_hat.shape[-1]
        return y_hat.new_empty(k, n), y_hat.new_empty(k, n)

    @torch.library.register_fake("lossgen::evaluate_out")
    def _evaluate_out_fake(programs, y_hat, y, clamp, values, grads, eps=None):
        return None

    @torch.library.register_fake("lossgen::program_loss")
    def _program_loss_fake(programs, y_hat, y, clamp, eps=None):
        return y_hat.new_empty(programs.shape[0])

    def _program_loss_setup(ctx, inputs, output):
        programs, y_hat, y, clamp, *rest = inputs
        eps = rest[0] if rest else None
        ctx.save_for_backward(programs, y_hat, y, eps)
        ctx.clamp = clamp

    def _program_loss_backward(ctx, grad_loss):
        programs, y_hat, y, eps = ctx.saved_tensors
        if torch.is_grad_enabled():
            raise RuntimeError("lossgen.program_loss does not support double backward (create_graph=True)")
        _, grads = torch.ops.lossgen.evaluate(programs, y_hat, y, ctx.clamp, eps)
        grad_y_hat = grads * (grad_loss / y_hat.shape[-1]).unsqueeze(1)
        if y_hat.dim() == 1:  # one y_hat row was shared by all candidates
            grad_y_hat = grad_y_hat.sum(0)
        return None, grad_y_hat, None, None, None

    torch.library.register_autograd(
        "lossgen::program_loss", _program_loss_backward, setup_context=_program_loss_setup
    )
