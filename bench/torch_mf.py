"""Biased MF written the usual PyTorch way (nn.Module, autograd, torch.optim.SGD with dense
weight decay): the oracle the fused population trainer is tested against, and the per-candidate
baseline of bench/training.py."""

from __future__ import annotations

import torch
from torch import nn

from lossgen import kernels
from lossgen.training.losses import LossKind, LossSpec, named_loss_torch
from lossgen.models.mf import INIT_STD


class TorchBiasedMF(nn.Module):
    def __init__(self, num_users: int, num_items: int, dim: int = 64, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(int(seed))  # same draws as MFPopulation.init
        self.user_emb = nn.Parameter(torch.randn(num_users, dim, generator=gen) * INIT_STD)
        self.item_emb = nn.Parameter(torch.randn(num_items, dim, generator=gen) * INIT_STD)
        self.user_bias = nn.Parameter(torch.zeros(num_users))
        self.item_bias = nn.Parameter(torch.zeros(num_items))
        self.global_bias = nn.Parameter(torch.zeros(()))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores."""
        dot = (self.user_emb[users] * self.item_emb[items]).sum(-1)
        return dot + self.user_bias[users] + self.item_bias[items] + self.global_bias


def batch_loss(spec: LossSpec, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean loss of a batch, differentiable with respect to the scores."""
    if spec.kind == LossKind.PROGRAM:
        return kernels.program_loss([spec.program], torch.sigmoid(scores), labels, spec.clamp, spec.eps)[0]
    return named_loss_torch(spec.kind, scores, labels, spec.eps).mean()


def train_torch(model: nn.Module, spec: LossSpec, users, items, labels, batch_size: int, lr: float,
                l2: float, clip: float | None = None) -> float:
    """SGD over the examples in the given order in mini-batches, in training mode (the plain
    PyTorch MF and MLP of the benches: any module mapping (users, items) to scores); returns the
    mean loss. `clip`: clip every gradient to +-clip by value before each step (the authors' code)."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=l2)
    total = 0.0
    for start in range(0, users.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        optimizer.zero_grad()
        loss = batch_loss(spec, model(users[sl], items[sl]), labels[sl])
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_value_(model.parameters(), clip)
        optimizer.step()
        total += loss.item() * (min(start + batch_size, users.shape[0]) - start)
    return total / users.shape[0]
