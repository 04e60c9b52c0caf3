"""The paper's MLP recommender written the usual PyTorch way (nn.Embedding, nn.Linear,
nn.BatchNorm1d, nn.Dropout, autograd, torch.optim.SGD with dense weight decay): the per-candidate
baseline of bench/training.py for the MLP population."""

from __future__ import annotations

import torch
from torch import nn

from lossgen.models.mf import INIT_STD
from lossgen.models.mlp import DROPOUT, HIDDEN


class TorchMLP(nn.Module):
    """concat(user, item) -> Linear -> BatchNorm1d -> ReLU -> Dropout, twice -> Linear -> score.
    Initialised from the same draws as MLPPopulation.init with the same seed (its dropout masks
    are torch's own)."""

    def __init__(self, num_users: int, num_items: int, dim: int = 64, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(int(seed))
        self.user_emb = nn.Embedding(num_users, dim)
        self.item_emb = nn.Embedding(num_items, dim)
        sizes = (2 * dim,) + HIDDEN + (1,)
        layers: list[nn.Module] = []
        with torch.no_grad():
            self.user_emb.weight.copy_(torch.randn(num_users, dim, generator=gen) * INIT_STD)
            self.item_emb.weight.copy_(torch.randn(num_items, dim, generator=gen) * INIT_STD)
            for i in range(3):
                linear = nn.Linear(sizes[i], sizes[i + 1])
                bound = 1.0 / sizes[i] ** 0.5
                linear.weight.copy_(((torch.rand(sizes[i], sizes[i + 1], generator=gen) * 2 - 1) * bound).T)
                linear.bias.copy_((torch.rand(sizes[i + 1], generator=gen) * 2 - 1) * bound)
                layers.append(linear)
                if i < 2:
                    layers += [nn.BatchNorm1d(sizes[i + 1]), nn.ReLU(), nn.Dropout(DROPOUT)]
        self.layers = nn.Sequential(*layers)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores."""
        x = torch.cat([self.user_emb(users), self.item_emb(items)], dim=1)
        return self.layers(x).squeeze(-1)
