"""Biased matrix factorisation (DESIGN.md "Paper defaults"): score = <p_u, q_i> + b_u + b_i + g,
prediction sigmoid(score). A population holds K independent models in ``[K, ...]`` tensors and
trains them side by side with the fused C++ epoch (torch.ops.lossgen.mf_train_epoch), each with its
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
from lossgen.training.losses import LossSpec
from lossgen.models.jacobian import prediction_gram
from lossgen.ir.programs import batch as batch_programs

INIT_STD = 0.01


@dataclass
class LossTable:
    """The per-candidate losses in the tensor form the fused step takes."""

    programs: torch.Tensor  # int32 [K, L, 3]
    kinds: torch.Tensor  # int32 [K]
    eps: torch.Tensor  # float32 [K]; a program without an epsilon (the paper's smoothing) has 0
    clamp: int

    @staticmethod
    def build(specs: Sequence[LossSpec]) -> "LossTable":
        clamps = {int(s.clamp) for s in specs if s.kind == 0}
        if len(clamps) > 1:
            raise ValueError("all programs of a population must use the same clamp mode")
        return LossTable(
            programs=batch_programs([s.program for s in specs]),
            kinds=torch.tensor([int(s.kind) for s in specs], dtype=torch.int32),
            eps=torch.tensor([0.0 if s.eps is None else s.eps for s in specs], dtype=torch.float32),
            clamp=clamps.pop() if clamps else 0,
        )


PARAMS = ("user_emb", "item_emb", "user_bias", "item_bias", "global_bias", "scale")
ADAM_STATE = ("adam_moments", "adam_step")


class MFPopulation:
    def __init__(self, user_emb, item_emb, user_bias, item_bias, global_bias, scale, adam_moments=None,
                 adam_step=None):
        self.user_emb, self.item_emb = user_emb, item_emb
        self.user_bias, self.item_bias = user_bias, item_bias
        self.global_bias, self.scale = global_bias, scale
        # Lazy Adam's moments [K, 2, P] and step counts [K]; empty until Adam is first used.
        self.adam_moments = torch.empty(0) if adam_moments is None else adam_moments
        self.adam_step = torch.empty(0, dtype=torch.long) if adam_step is None else adam_step

    @staticmethod
    def init(num_users: int, num_items: int, seeds: Sequence[int], dim: int = 64,
             init_std: float = INIT_STD) -> "MFPopulation":
        """One model per seed; candidate k is initialised exactly as a single model with seeds[k].
        Embeddings are drawn from N(0, init_std^2); biases start at 0."""
        users, items, k = [], [], len(seeds)
        for seed in seeds:
            gen = torch.Generator().manual_seed(int(seed))
            users.append(torch.randn(num_users, dim, generator=gen) * init_std)
            items.append(torch.randn(num_items, dim, generator=gen) * init_std)
        return MFPopulation(torch.stack(users), torch.stack(items), torch.zeros(k, num_users),
                            torch.zeros(k, num_items), torch.zeros(k), torch.ones(k, dtype=torch.float64))

    @property
    def size(self) -> int:
        return self.user_emb.shape[0]

    def _tensors(self):
        return (self.user_emb, self.item_emb, self.user_bias, self.item_bias, self.global_bias, self.scale)

    def fit_epoch(self, losses: "Sequence[LossSpec] | LossTable", users, items, labels, config,
                  order_row: torch.Tensor | None = None) -> torch.Tensor:
        """One epoch over the examples in the given order (`lossgen.training.trainer.train_epoch`
        shuffles them); `config` is a TrainConfig. users, items and labels are [N] (one order for
        all candidates) or [S, N] with `order_row` [K] naming each candidate's order. Returns each
        candidate's mean loss [K]."""
        table = losses if isinstance(losses, LossTable) else LossTable.build(losses)
        if table.kinds.shape[0] != self.size:
            raise ValueError(f"{table.kinds.shape[0]} losses for a population of {self.size}")
        return self.train_steps(table, users, items, labels, config.batch_size, config.lr, config.l2,
                                config.optimizer, config.betas, config.adam_eps, order_row)

    def train_steps(self, losses: LossTable, users, items, labels, batch_size: int, lr: float, l2: float,
                    optimizer: str = "sgd", betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                    order_row: torch.Tensor | None = None) -> torch.Tensor:
        """Steps over the examples in the given order, in consecutive mini-batches of `batch_size`
        (one step if there are no more than that); returns each candidate's mean loss (float64
        [K]). Candidates run in parallel, each through all its steps with its tables in cache.

        optimizer "sgd": PyTorch's SGD with weight_decay=l2, exact through the lazy scale.
        optimizer "adam": lazy Adam (touched rows only, as torch.optim.SparseAdam) with coupled L2."""
        if optimizer == "adam":
            self._start_adam()
        elif optimizer != "sgd":
            raise ValueError(f"unknown optimizer {optimizer!r}; choose sgd or adam")
        moments = self.adam_moments if optimizer == "adam" else torch.empty(0)
        steps = self.adam_step if optimizer == "adam" else torch.empty(0, dtype=torch.long)
        return torch.ops.lossgen.mf_train_epoch(*self._tensors(), moments, steps, losses.programs, losses.kinds,
                                                losses.eps, users, items, labels, batch_size, lr, l2, betas[0],
                                                betas[1], eps, losses.clamp, order_row)

    def _start_adam(self) -> None:
        if self.adam_moments.numel():
            return
        if not bool((self.scale == 1.0).all()):  # fold SGD's lazy decay into the tables first
            for name, t in self.true_parameters().items():
                getattr(self, name).copy_(t)
            self.scale.fill_(1.0)
        size = (self.user_emb.shape[1] + self.item_emb.shape[1]) * self.user_emb.shape[2] + \
            self.user_emb.shape[1] + self.item_emb.shape[1] + 1
        self.adam_moments = torch.zeros(self.size, 2, size)
        self.adam_step = torch.zeros(self.size, dtype=torch.long)

    def scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores ``[K, N]``."""
        return torch.ops.lossgen.mf_predict(*self._tensors(), users, items)

    def predict(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.scores(users, items))

    def proxy_gram(self, users: torch.Tensor, items: torch.Tensor, index: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidate `index`'s predictions on a small batch and the Gram matrix of their Jacobian
        with respect to its parameters (the rows the batch touches; the rest have zero gradient)."""
        uniq_u, at_u = torch.unique(users, return_inverse=True)
        uniq_i, at_i = torch.unique(items, return_inverse=True)
        s = float(self.scale[index])
        params = {"p": self.user_emb[index, uniq_u] * s, "q": self.item_emb[index, uniq_i] * s,
                  "bu": self.user_bias[index, uniq_u] * s, "bi": self.item_bias[index, uniq_i] * s,
                  "g": self.global_bias[index : index + 1] * s}

        def forward(t):
            score = (t["p"][at_u] * t["q"][at_i]).sum(1) + t["bu"][at_u] + t["bi"][at_i] + t["g"]
            return torch.sigmoid(score)

        return prediction_gram(forward, params)

    def _all(self):
        adam = (self.adam_moments, self.adam_step) if self.adam_moments.numel() else ()
        return self._tensors() + adam

    def select(self, index: Sequence[int]) -> "MFPopulation":
        """A new population of the chosen candidates (copies; repeats allowed)."""
        idx = torch.as_tensor(list(index), dtype=torch.long)
        return MFPopulation(*(t.index_select(0, idx).contiguous() for t in self._all()))

    def copy_candidate(self, index: int, source: "MFPopulation", source_index: int) -> None:
        """Overwrite candidate `index` with candidate `source_index` of `source`."""
        if source.adam_moments.numel():
            self._start_adam()
        for dst, src in zip(self._all(), source._all()):
            dst[index].copy_(src[source_index])

    def true_parameters(self) -> dict[str, torch.Tensor]:
        s = self.scale.to(torch.float32)
        return {
            "user_emb": self.user_emb * s[:, None, None], "item_emb": self.item_emb * s[:, None, None],
            "user_bias": self.user_bias * s[:, None], "item_bias": self.item_bias * s[:, None],
            "global_bias": self.global_bias * s,
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: t.clone() for n, t in zip(PARAMS + ADAM_STATE, self._all())}

    @staticmethod
    def from_state_dict(state: dict[str, torch.Tensor]) -> "MFPopulation":
        return MFPopulation(*(state[n].clone() for n in PARAMS + ADAM_STATE if n in state))
