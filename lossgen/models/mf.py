"""Biased matrix factorisation (DESIGN.md "Paper defaults"): score = <p_u, q_i> + b_u + b_i + g,
prediction sigmoid(score). A population holds K independent models in ``[K, ...]`` tensors and
trains them side by side with the fused C++ epoch (torch.ops.lossgen.mf_sgd_epoch), each with its
own loss, on the same mini-batches.

Stored values are the true parameters divided by a per-candidate scale, so PyTorch-style dense
weight decay (every parameter shrinks by (1 - lr * l2) each step) costs O(1) per step: only the
scale changes, and only the rows a batch touches are written. `true_parameters()` undoes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

import lossgen.kernels  # noqa: F401  (loads the compiled ops)
from lossgen.losses import LossSpec
from lossgen.programs import batch as batch_programs

INIT_STD = 0.01


@dataclass
class LossTable:
    """The per-candidate losses in the tensor form the fused step takes."""

    programs: torch.Tensor  # int32 [K, L, 3]
    kinds: torch.Tensor  # int32 [K]
    eps: torch.Tensor  # float32 [K]
    clamp: int

    @staticmethod
    def build(specs: Sequence[LossSpec]) -> "LossTable":
        clamps = {int(s.clamp) for s in specs if s.kind == 0}
        if len(clamps) > 1:
            raise ValueError("all programs of a population must use the same clamp mode")
        return LossTable(
            programs=batch_programs([s.program for s in specs]),
            kinds=torch.tensor([int(s.kind) for s in specs], dtype=torch.int32),
            eps=torch.tensor([s.eps for s in specs], dtype=torch.float32),
            clamp=clamps.pop() if clamps else 0,
        )


class MFPopulation:
    def __init__(self, user_emb, item_emb, user_bias, item_bias, global_bias, scale):
        self.user_emb, self.item_emb = user_emb, item_emb
        self.user_bias, self.item_bias = user_bias, item_bias
        self.global_bias, self.scale = global_bias, scale

    @staticmethod
    def init(num_users: int, num_items: int, seeds: Sequence[int], dim: int = 64) -> "MFPopulation":
        """One model per seed; candidate k is initialised exactly as a single model with seeds[k]."""
        users, items, k = [], [], len(seeds)
        for seed in seeds:
            gen = torch.Generator().manual_seed(int(seed))
            users.append(torch.randn(num_users, dim, generator=gen) * INIT_STD)
            items.append(torch.randn(num_items, dim, generator=gen) * INIT_STD)
        return MFPopulation(torch.stack(users), torch.stack(items), torch.zeros(k, num_users),
                            torch.zeros(k, num_items), torch.zeros(k), torch.ones(k, dtype=torch.float64))

    @property
    def size(self) -> int:
        return self.user_emb.shape[0]

    def _tensors(self):
        return (self.user_emb, self.item_emb, self.user_bias, self.item_bias, self.global_bias, self.scale)

    def sgd(self, losses: LossTable, users, items, labels, batch_size: int, lr: float, l2: float) -> torch.Tensor:
        """SGD over the examples in the given order, in consecutive mini-batches of `batch_size`
        (one step if there are no more than that); returns each candidate's mean loss (float64
        [K]). Candidates run in parallel, each through all its steps with its tables in cache."""
        return torch.ops.lossgen.mf_sgd_epoch(*self._tensors(), losses.programs, losses.kinds, losses.eps,
                                              users, items, labels, batch_size, lr, l2, losses.clamp)

    def scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores ``[K, N]``."""
        return torch.ops.lossgen.mf_predict(*self._tensors(), users, items)

    def predict(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.scores(users, items))

    def select(self, index: Sequence[int]) -> "MFPopulation":
        """A new population of the chosen candidates (copies; repeats allowed)."""
        idx = torch.as_tensor(list(index), dtype=torch.long)
        return MFPopulation(*(t.index_select(0, idx).contiguous() for t in self._tensors()))

    def copy_candidate(self, index: int, source: "MFPopulation", source_index: int) -> None:
        """Overwrite candidate `index` with candidate `source_index` of `source`."""
        for dst, src in zip(self._tensors(), source._tensors()):
            dst[index].copy_(src[source_index])

    def true_parameters(self) -> dict[str, torch.Tensor]:
        s = self.scale.to(torch.float32)
        return {
            "user_emb": self.user_emb * s[:, None, None], "item_emb": self.item_emb * s[:, None, None],
            "user_bias": self.user_bias * s[:, None], "item_bias": self.item_bias * s[:, None],
            "global_bias": self.global_bias * s,
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        names = ("user_emb", "item_emb", "user_bias", "item_bias", "global_bias", "scale")
        return {n: t.clone() for n, t in zip(names, self._tensors())}

    @staticmethod
    def from_state_dict(state: dict[str, torch.Tensor]) -> "MFPopulation":
        return MFPopulation(*(state[n].clone() for n in
                              ("user_emb", "item_emb", "user_bias", "item_bias", "global_bias", "scale")))
