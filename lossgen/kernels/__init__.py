"""Public front of the compiled loss-program kernels (DESIGN.md, "Kernels").

    evaluate(programs, y_hat, y, clamp="paper") -> (values, grads)   # [K, N] each
    program_loss(programs, y_hat, y, clamp="paper") -> Tensor[K]      # mean loss, differentiable
    reference_evaluate(...)                                            # plain PyTorch oracle
    backend(device=None) -> "compiled-cpu" | "compiled-cuda" | "reference"

`programs` is an int32 ``[K, L, 3]`` tensor or a list of `Program`. y_hat and y are float32
``[K, N]`` or ``[N]`` (shared by all candidates). The ops are registered with the PyTorch
dispatcher as ``torch.ops.lossgen.evaluate`` and ``torch.ops.lossgen.program_loss``, so the same
call runs on CPU or CUDA tensors and works under ``torch.compile``.

The compiled extension is required. The reference is used instead only when the user asks for
it explicitly with ``LOSSGEN_BACKEND=reference``; it is never a silent fallback.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch

from lossgen.kernels.checks import check_inputs
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


def evaluate(programs, y_hat: torch.Tensor, y: torch.Tensor, clamp: str | Clamp = "paper", out=None):
    """Loss values and d(value)/d(y_hat), each float32 ``[K, N]`` (no autograd graph).

    ``out=(values, grads)`` writes into preallocated contiguous float32 ``[K, N]`` tensors and
    returns them: a hot loop that reuses its buffers then allocates nothing."""
    programs = as_program_tensor(programs)
    mode = int(parse_clamp(clamp))
    if _FORCE_REFERENCE:
        values, grads = reference_evaluate(programs, y_hat, y, Clamp(mode))
        if out is None:
            return values, grads
        out[0].copy_(values)
        out[1].copy_(grads)
        return out
    _require_compiled()
    if out is None:
        return torch.ops.lossgen.evaluate(programs, y_hat.detach(), y.detach(), mode)
    values, grads = out
    torch.ops.lossgen.evaluate_out(programs, y_hat.detach(), y.detach(), mode, values, grads)
    return values, grads


def program_loss(programs, y_hat: torch.Tensor, y: torch.Tensor, clamp: str | Clamp = "paper") -> torch.Tensor:
    """Mean loss over the N points per candidate, ``[K]``; differentiable with respect to y_hat
    (the backward pass runs the compiled derivative kernel)."""
    programs = as_program_tensor(programs)
    mode = int(parse_clamp(clamp))
    if _FORCE_REFERENCE:
        return reference_values(programs, y_hat, y, Clamp(mode)).mean(dim=1)
    _require_compiled()
    return torch.ops.lossgen.program_loss(programs, y_hat, y, mode)


# ----------------------------------------------------------------------------- op registration
# Shapes for FakeTensor/torch.compile, and autograd for program_loss.

if _C is not None:

    @torch.library.register_fake("lossgen::evaluate")
    def _evaluate_fake(programs, y_hat, y, clamp):
        k, n = programs.shape[0], y_hat.shape[-1]
        return y_hat.new_empty(k, n), y_hat.new_empty(k, n)

    @torch.library.register_fake("lossgen::evaluate_out")
    def _evaluate_out_fake(programs, y_hat, y, clamp, values, grads):
        return None

    @torch.library.register_fake("lossgen::program_loss")
    def _program_loss_fake(programs, y_hat, y, clamp):
        return y_hat.new_empty(programs.shape[0])

    def _program_loss_setup(ctx, inputs, output):
        programs, y_hat, y, clamp = inputs
        ctx.save_for_backward(programs, y_hat, y)
        ctx.clamp = clamp

    def _program_loss_backward(ctx, grad_loss):
        programs, y_hat, y = ctx.saved_tensors
        if torch.is_grad_enabled():
            raise RuntimeError("lossgen.program_loss does not support double backward (create_graph=True)")
        _, grads = torch.ops.lossgen.evaluate(programs, y_hat, y, ctx.clamp)
        grad_y_hat = grads * (grad_loss / y_hat.shape[-1]).unsqueeze(1)
        if y_hat.dim() == 1:  # one y_hat row was shared by all candidates
            grad_y_hat = grad_y_hat.sum(0)
        return None, grad_y_hat, None, None

    torch.library.register_autograd(
        "lossgen::program_loss", _program_loss_backward, setup_context=_program_loss_setup
    )
