"""The paper's MLP recommender written the usual PyTorch way (nn.Embedding, nn.Linear,
nn.BatchNorm1d, nn.Dropout, autograd, torch.optim.SGD with dense weight decay): the per-candidate
baseline of bench/training.py for the MLP population."""

from __future__ import annotations

import torch
from torch import nn

from lossgen.models.mf import INIT_STD
from lossgen.models.mlp import DROPOUT, HIDDEN
from lossgen.training.losses import LossSpec
from torch_mf import batch_loss


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


def train_torch_mlp(model: TorchMLP, spec: LossSpec, users, items, labels, batch_size: int, lr: float,
                    l2: float) -> float:
    """SGD over the examples in the given order in mini-batches (training mode); returns the mean loss."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=l2)
    total = 0.0
    for start in range(0, users.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        optimizer.zero_grad()
        loss = batch_loss(spec, model(users[sl], items[sl]), labels[sl])
        loss.backward()
        optimizer.step()
        total += loss.item() * (min(start + batch_size, users.shape[0]) - start)
    return total / users.shape[0]
