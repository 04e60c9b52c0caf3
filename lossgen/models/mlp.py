"""The paper's MLP recommender as a population of K independent models (DESIGN.md "Paper
defaults"): concat(user 64, item 64) -> 128x64 -> 64x16 -> 16x1, each hidden layer followed by
batch norm, ReLU and dropout 0.2; prediction sigmoid(score).

All K models live in ``[K, ...]`` tensors and run with batched matrix products; each candidate
has its own loss, its own dropout generator and its own batch-norm statistics, so candidate k
of a population computes exactly what a single model with seed k computes (the test checks it).

Optimisation is SGD with PyTorch's weight_decay semantics. The small dense layers decay
directly; the embedding tables are stored divided by a per-candidate scale (as in the MF
population), so their decay is O(1) per step and only the rows a batch touches are written.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from lossgen import kernels
from lossgen.losses import LossKind, LossSpec, named_loss_torch
from lossgen.models.mf import INIT_STD

HIDDEN = (64, 16)
DROPOUT = 0.2
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
DENSE = ("w1", "b1", "g1", "beta1", "w2", "b2", "g2", "beta2", "w3", "b3")
STATE = ("user_emb", "item_emb", "scale") + DENSE + ("rm1", "rv1", "rm2", "rv2")


def _linear_init(gen: torch.Generator, fan_in: int, fan_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.Linear's default init (uniform in +-1/sqrt(fan_in)), stored as [in, out] for bmm."""
    bound = 1.0 / math.sqrt(fan_in)
    w = (torch.rand(fan_in, fan_out, generator=gen) * 2 - 1) * bound
    b = (torch.rand(fan_out, generator=gen) * 2 - 1) * bound
    return w, b


class MLPPopulation:
    def __init__(self, tensors: dict[str, torch.Tensor], seeds: Sequence[int], dim: int):
        self.t = tensors
        self.seeds = list(seeds)
        self.dim = dim
        # Dropout draws come from one generator per candidate, seeded from the candidate's seed.
        self.dropout_gens = [torch.Generator().manual_seed(10_007 * int(s) + 1) for s in self.seeds]

    @staticmethod
    def init(num_users: int, num_items: int, seeds: Sequence[int], dim: int = 64) -> "MLPPopulation":
        parts: dict[str, list[torch.Tensor]] = {name: [] for name in STATE}
        for seed in seeds:
            gen = torch.Generator().manual_seed(int(seed))
            parts["user_emb"].append(torch.randn(num_users, dim, generator=gen) * INIT_STD)
            parts["item_emb"].append(torch.randn(num_items, dim, generator=gen) * INIT_STD)
            parts["scale"].append(torch.ones((), dtype=torch.float64))
            sizes = (2 * dim,) + HIDDEN + (1,)
            for layer in range(3):
                w, b = _linear_init(gen, sizes[layer], sizes[layer + 1])
                parts[f"w{layer + 1}"].append(w)
                parts[f"b{layer + 1}"].append(b)
            for layer, width in enumerate(HIDDEN, start=1):
                parts[f"g{layer}"].append(torch.ones(width))
                parts[f"beta{layer}"].append(torch.zeros(width))
                parts[f"rm{layer}"].append(torch.zeros(width))
                parts[f"rv{layer}"].append(torch.ones(width))
        return MLPPopulation({n: torch.stack(v).contiguous() for n, v in parts.items()}, seeds, dim)

    @property
    def size(self) -> int:
        return self.t["w1"].shape[0]

    # ------------------------------------------------------------------ forward

    def _embed(self, users, items, scale: torch.Tensor):
        s = scale.to(torch.float32)[:, None, None]
        return s * self.t["user_emb"][:, users], s * self.t["item_emb"][:, items]

    def _hidden(self, x, layer: int, train: bool, dense: dict[str, torch.Tensor]):
        h = torch.baddbmm(dense[f"b{layer}"].unsqueeze(1), x, dense[f"w{layer}"])
        if train:
            mean = h.mean(1, keepdim=True)
            var = h.var(1, unbiased=False, keepdim=True)
            with torch.no_grad():  # running statistics, as nn.BatchNorm1d keeps them
                n = h.shape[1]
                self.t[f"rm{layer}"].mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * mean.squeeze(1))
                unbiased = var.squeeze(1) * (n / max(n - 1, 1))
                self.t[f"rv{layer}"].mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * unbiased)
        else:
            mean, var = self.t[f"rm{layer}"].unsqueeze(1), self.t[f"rv{layer}"].unsqueeze(1)
        h = (h - mean) / torch.sqrt(var + BN_EPS) * dense[f"g{layer}"].unsqueeze(1) + dense[f"beta{layer}"].unsqueeze(1)
        h = torch.relu(h)
        if train:
            keep = torch.stack([torch.rand(h.shape[1], h.shape[2], generator=g) for g in self.dropout_gens])
            h = h * (keep >= DROPOUT).to(h.dtype) / (1 - DROPOUT)
        return h

    def _scores(self, ue, ie, train: bool, dense) -> torch.Tensor:
        h = torch.cat([ue, ie], dim=-1)
        for layer in (1, 2):
            h = self._hidden(h, layer, train, dense)
        return torch.baddbmm(dense["b3"].unsqueeze(1), h, dense["w3"]).squeeze(-1)

    @torch.no_grad()
    def scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores ``[K, N]`` in evaluation mode (running batch-norm statistics)."""
        ue, ie = self._embed(users, items, self.t["scale"])
        return self._scores(ue, ie, False, self.t)

    def predict(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.scores(users, items))

    # ------------------------------------------------------------------ training

    def step(self, specs: Sequence[LossSpec], users, items, labels, lr: float, l2: float) -> torch.Tensor:
        """One SGD step on a mini-batch for every candidate; returns the batch losses ``[K]``."""
        k = self.size
        scale = self.t["scale"]
        with torch.no_grad():
            ue0, ie0 = self._embed(users, items, scale)
        ue = ue0.requires_grad_(True)
        ie = ie0.requires_grad_(True)
        dense = {n: self.t[n].detach().requires_grad_(True) for n in DENSE}
        scores = self._scores(ue, ie, True, dense)
        losses = batch_losses(specs, scores, labels)
        grads = torch.autograd.grad(losses.sum(), [ue, ie] + [dense[n] for n in DENSE])
        with torch.no_grad():
            for name, g in zip(DENSE, grads[2:]):
                self.t[name].mul_(1 - lr * l2).sub_(lr * g)
            s_next = scale * (1 - lr * l2)
            step = (lr / s_next).to(torch.float32)[:, None, None]
            rows = torch.arange(k)[:, None]
            for table, ids, g in (("user_emb", users, grads[0]), ("item_emb", items, grads[1])):
                flat = self.t[table].view(-1, self.dim)
                n_rows = self.t[table].shape[1]
                flat.index_add_(0, (rows * n_rows + ids[None, :]).reshape(-1), (-step * g).reshape(-1, self.dim))
            scale.copy_(s_next)
            if float(scale.min()) < 1e-3:
                self._renormalize()
        return losses.detach()

    def _renormalize(self) -> None:
        s = self.t["scale"].to(torch.float32)[:, None, None]
        self.t["user_emb"].mul_(s)
        self.t["item_emb"].mul_(s)
        self.t["scale"].fill_(1.0)

    def select(self, index: Sequence[int]) -> "MLPPopulation":
        idx = torch.as_tensor(list(index), dtype=torch.long)
        chosen = MLPPopulation({n: t.index_select(0, idx).contiguous() for n, t in self.t.items()},
                               [self.seeds[i] for i in idx.tolist()], self.dim)
        for i, j in enumerate(idx.tolist()):  # carry on each candidate's dropout stream
            chosen.dropout_gens[i].set_state(self.dropout_gens[j].get_state())
        return chosen

    def copy_candidate(self, index: int, source: "MLPPopulation", source_index: int) -> None:
        for name, t in self.t.items():
            t[index].copy_(source.t[name][source_index])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: t.clone() for n, t in self.t.items()}


def batch_losses(specs: Sequence[LossSpec], scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Batch-mean loss of every candidate ``[K]`` (candidate k's loss on row k of the scores).
    Candidates are grouped by loss kind, so a population costs one pass per kind, not per candidate."""
    groups: dict[LossKind, list[int]] = {}
    for i, spec in enumerate(specs):
        groups.setdefault(spec.kind, []).append(i)
    parts, order = [], []
    for kind, idx in groups.items():
        if kind == LossKind.PROGRAM:
            clamps = {specs[i].clamp for i in idx}
            if len(clamps) > 1:
                raise ValueError("all programs of a population must use the same clamp mode")
            parts.append(kernels.program_loss([specs[i].program for i in idx], torch.sigmoid(scores[idx]), labels,
                                              clamps.pop()))
        else:
            eps = torch.tensor([specs[i].eps for i in idx], dtype=scores.dtype).unsqueeze(1)
            parts.append(named_loss_torch(kind, scores[idx], labels, eps).mean(1))
        order.extend(idx)
    return torch.cat(parts)[torch.argsort(torch.tensor(order))]
