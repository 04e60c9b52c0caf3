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
    are torch's own).

    The options are bench/mlp_ablation.py's variants: `emb_std` the embeddings' initial std;
    `linear_std` draws linear weights and biases from N(0, linear_std^2) instead of nn.Linear's
    init; `order` is what follows each hidden Linear before its Dropout ("bn-relu", "relu-bn",
    or "relu" without batch norm); `input_dropout` adds dropout on the concatenated embeddings."""

    ORDERS = ("bn-relu", "relu-bn", "relu")

    def __init__(self, num_users: int, num_items: int, dim: int = 64, seed: int = 0, *,
                 emb_std: float = INIT_STD, linear_std: float | None = None, order: str = "bn-relu",
                 input_dropout: bool = False):
        super().__init__()
        if order not in self.ORDERS:
            raise ValueError(f"unknown order {order!r}; choose {', '.join(self.ORDERS)}")
        gen = torch.Generator().manual_seed(int(seed))
        self.user_emb = nn.Embedding(num_users, dim)
        self.item_emb = nn.Embedding(num_items, dim)
        self.input_dropout = nn.Dropout(DROPOUT) if input_dropout else nn.Identity()
        sizes = (2 * dim,) + HIDDEN + (1,)
        layers: list[nn.Module] = []
        with torch.no_grad():
            self.user_emb.weight.copy_(torch.randn(num_users, dim, generator=gen) * emb_std)
            self.item_emb.weight.copy_(torch.randn(num_items, dim, generator=gen) * emb_std)
            for i in range(3):
                linear = nn.Linear(sizes[i], sizes[i + 1])
                if linear_std is not None:
                    linear.weight.copy_(torch.randn(sizes[i], sizes[i + 1], generator=gen).T * linear_std)
                    linear.bias.copy_(torch.randn(sizes[i + 1], generator=gen) * linear_std)
                else:
                    bound = 1.0 / sizes[i] ** 0.5
                    linear.weight.copy_(((torch.rand(sizes[i], sizes[i + 1], generator=gen) * 2 - 1) * bound).T)
                    linear.bias.copy_((torch.rand(sizes[i + 1], generator=gen) * 2 - 1) * bound)
                layers.append(linear)
                if i < 2:
                    bn, relu = nn.BatchNorm1d(sizes[i + 1]), nn.ReLU()
                    layers += {"bn-relu": [bn, relu], "relu-bn": [relu, bn], "relu": [relu]}[order]
                    layers.append(nn.Dropout(DROPOUT))
        self.layers = nn.Sequential(*layers)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores."""
        x = torch.cat([self.user_emb(users), self.item_emb(items)], dim=1)
        return self.layers(self.input_dropout(x)).squeeze(-1)
