"""The Gram matrix of a recommender's prediction Jacobian on a small batch, for the proxy test.

Under a loss f, the gradient of the batch loss (1/|B|) sum_b f(y_hat_b, y_b) with respect to the
parameters is J^T g, with J[b] = d y_hat_b / d theta and g_b = f'(y_hat_b, y_b) / |B|. So the
gradient norm is sqrt(g^T G g) and the distance between two candidates' gradients is
sqrt((g1 - g2)^T G (g1 - g2)), with G = J J^T only |B| x |B|: one Jacobian per round serves every
candidate, and no per-candidate gradient is ever materialised.
"""

from __future__ import annotations

from typing import Callable

import torch


def prediction_gram(forward: Callable[[dict[str, torch.Tensor]], torch.Tensor],
                    params: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``forward(params)`` -> predictions [B] (differentiable in `params`); returns the
    predictions (float32, detached) and G = J J^T (float64 [B, B])."""
    leaves = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
    with torch.enable_grad():
        y_hat = forward(leaves)
        rows = []
        for b in range(y_hat.shape[0]):
            grads = torch.autograd.grad(y_hat[b], list(leaves.values()), retain_graph=True, allow_unused=True)
            rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).double()
                                   for g, p in zip(grads, leaves.values())]))
    jac = torch.stack(rows)
    return y_hat.detach().float(), jac @ jac.T
