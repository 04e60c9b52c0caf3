"""The paper's MLP recommender as a population of K independent models (DESIGN.md "Paper
defaults"): concat(user 64, item 64) -> 128x64 -> 64x16 -> 16x1, each hidden layer followed by
batch norm, ReLU and dropout 0.2; prediction sigmoid(score).

All K models live in ``[K, ...]`` tensors; each candidate has its own loss, its own dropout stream
and its own batch-norm statistics, so candidate k of a population computes exactly what a single
model with seed k computes (the tests check it).

Two implementations of the training step, which the tests hold to each other:
- the fused C++ epoch (``torch.ops.lossgen.mlp_train_epoch``, csrc/core/mlp_step.cpp; SGD, the
  default): like the MF population's, each candidate runs its whole sequence of steps (forward,
  loss derivative from the program kernels or the named losses, backward, update) on one thread
  with its tables and weights in that core's caches, and candidates run in parallel. Evaluation
  scores come from ``torch.ops.lossgen.mlp_predict``.
- the PyTorch step (``fused=False``, and Adam): forward, backward and update written out by hand
  over all K candidates at once with batched products, no autograd, the loss gradient from
  ``losses_and_grads``. Tests replay it with autograd and torch.optim on one candidate.

Optimisers: SGD with PyTorch's weight_decay semantics (the small dense layers decay directly;
the embedding tables are stored divided by a per-candidate scale, as in the MF population, so
their decay is O(1) per step and only the rows a batch touches are written), or Adam (dense
layers as torch.optim.Adam with coupled L2; embeddings lazily, as torch.optim.SparseAdam).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from lossgen.training.losses import LossSpec, loss_plan, losses_and_grads
from lossgen.models.jacobian import prediction_gram
from lossgen.models.mf import INIT_STD, LossTable

HIDDEN = (64, 16)
DROPOUT = 0.2
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
DENSE = ("w1", "b1", "g1", "beta1", "w2", "b2", "g2", "beta2", "w3", "b3")
STATS = ("rm1", "rv1", "rm2", "rv2")
TABLES = ("user_emb", "item_emb")
# The fused step's batches go through the program kernels' CPU blocks (cpu::kBlock points).
FUSED_MAX_BATCH = 256
# rng_key: the candidate's dropout key (from its seed); steps: its training steps so far.
STATE = TABLES + ("scale",) + DENSE + ("rm1", "rv1", "rm2", "rv2", "rng_key", "steps")
# Adam state, created on the first Adam step: a step count and both moments of every parameter.
ADAM_STATE = ("adam_t",) + tuple(f"{m}_{n}" for m in ("m", "v") for n in TABLES + DENSE)

_KEEP_SCALE = 1.0 / (1.0 - DROPOUT)  # 1.25, exactly

# --- dropout stream: splitmix64 over a per-candidate counter --------------------------------
# Candidate k's draw j at its step t is fmix64(key_k + (t * 2^32 + j) * GOLDEN); each 64-bit
# value gives two 23-bit uniforms. The stream depends only on the candidate's key and step
# count, so it is vectorised over K and a population still equals K separate runs.
_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX = ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB), (31, None))
_MANTISSAS = 0x007FFFFF007FFFFF  # the low 23 bits of each 32-bit half ...
_ONES = 0x3F8000003F800000  # ... as float32 in [1, 2)
# Keep a unit when its 23-bit draw m >= ceil(0.2 * 2^23): P(drop) = 0.20000005.
_DROP_BELOW = math.ceil(DROPOUT * 2**23)
_KEEP_OFFSET = torch.tensor(-(2**23 + _DROP_BELOW - 1), dtype=torch.float32)


def _signed(x: int) -> int:
    x &= _M64
    return x - (1 << 64) if x >> 63 else x


def _fmix64(x: int) -> int:
    for shift, mul in _MIX:
        x ^= x >> shift
        if mul is not None:
            x = (x * mul) & _M64
    return x


def _rng_key(seed: int) -> int:
    return _signed(_fmix64((int(seed) * _GOLDEN + 0x5EED) & _M64))


def _row_major(table: torch.Tensor) -> torch.Tensor:
    """``table`` [K, n, d] with its memory laid out as [n, K, d]."""
    rows = table.transpose(0, 1)
    return table if rows.is_contiguous() else rows.contiguous().transpose(0, 1)


def _out_major(w: torch.Tensor) -> torch.Tensor:
    """``w`` [K, in, out] with its memory laid out as [K, out, in]."""
    wt = w.transpose(1, 2)
    return w if wt.is_contiguous() else wt.contiguous().transpose(1, 2)


def _eval_scores(t: dict[str, torch.Tensor], user_rows: torch.Tensor, item_rows: torch.Tensor) -> torch.Tensor:
    """Evaluation-mode scores ``[K, N]`` from gathered true embedding rows ``[K, N, d]`` and the
    dense layers and running statistics in `t`."""
    h = torch.cat([user_rows, item_rows], dim=-1)
    for layer in (1, 2):
        h = torch.baddbmm(t[f"b{layer}"].unsqueeze(1), h, t[f"w{layer}"])
        h = (h - t[f"rm{layer}"].unsqueeze(1)) / torch.sqrt(t[f"rv{layer}"].unsqueeze(1) + BN_EPS)
        h = torch.relu(h * t[f"g{layer}"].unsqueeze(1) + t[f"beta{layer}"].unsqueeze(1))
    return torch.baddbmm(t["b3"].unsqueeze(1), h, t["w3"]).squeeze(-1)


def _linear_init(gen: torch.Generator, fan_in: int, fan_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.Linear's default init (uniform in +-1/sqrt(fan_in)), stored as [in, out] for bmm."""
    bound = 1.0 / math.sqrt(fan_in)
    w = (torch.rand(fan_in, fan_out, generator=gen) * 2 - 1) * bound
    b = (torch.rand(fan_out, generator=gen) * 2 - 1) * bound
    return w, b


class MLPPopulation:
    def __init__(self, tensors: dict[str, torch.Tensor], seeds: Sequence[int], dim: int, fused: bool = True):
        # Embedding tables (and their Adam moments) are contiguous [K, n, d] for the fused step:
        # one candidate's tables stay in one core's cache. For the PyTorch step alone (fused off)
        # they are [K, n, d] views of [n, K, d] memory: a row of every candidate is one contiguous
        # block, so its gathers and scatters over all K stream. W1 is a [K, 2d, 64] view of
        # [K, 64, 2d] memory: its gradient comes out of the products in that layout (in the
        # PyTorch step the SGD update is then one fused baddbmm_, decay included).
        table_layout = (lambda t: t.contiguous()) if fused else _row_major
        self.t = {n: table_layout(t) if n.endswith(TABLES) else _out_major(t) if n == "w1" else t
                  for n, t in tensors.items()}
        self.seeds = list(seeds)
        self.dim = dim
        self._fused = fused
        self._ws: dict[tuple, torch.Tensor] = {}  # reused step buffers, by (name, shape)
        self._plan_key: tuple | None = None
        self._table_key: tuple | None = None

    @staticmethod
    def init(num_users: int, num_items: int, seeds: Sequence[int], dim: int = 64,
             fused: bool = True, init_std: float = INIT_STD) -> "MLPPopulation":
        """One model per seed: embeddings N(0, init_std^2), linear layers nn.Linear's init, batch
        norm at identity; candidate k is initialised exactly as a single model with seeds[k]."""
        parts: dict[str, list[torch.Tensor]] = {name: [] for name in STATE}
        for seed in seeds:
            gen = torch.Generator().manual_seed(int(seed))
            parts["user_emb"].append(torch.randn(num_users, dim, generator=gen) * init_std)
            parts["item_emb"].append(torch.randn(num_items, dim, generator=gen) * init_std)
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
            parts["rng_key"].append(torch.tensor(_rng_key(seed), dtype=torch.int64))
            parts["steps"].append(torch.zeros((), dtype=torch.int64))
        return MLPPopulation({n: torch.stack(v).contiguous() for n, v in parts.items()}, seeds, dim, fused)

    @property
    def size(self) -> int:
        return self.t["w1"].shape[0]

    @property
    def fused(self) -> bool:
        """Whether SGD steps and evaluation scores run in the compiled ops (else in the PyTorch
        step); fixed for the population's life, since it sets the tables' layout."""
        return self._fused

    def _plan(self, specs: Sequence[LossSpec]) -> list[tuple]:
        key = tuple(map(id, specs))
        if self._plan_key != key:  # the specs list is kept, so its ids stay theirs
            self._plan_specs, self._plan_key, self._plan_value = list(specs), key, loss_plan(specs)
        return self._plan_value

    def _table(self, specs: Sequence[LossSpec]) -> LossTable:
        key = tuple(map(id, specs))
        if self._table_key != key:
            self._table_specs, self._table_key, self._table_value = list(specs), key, LossTable.build(specs)
        return self._table_value

    def _fused_args(self) -> tuple:
        t = self.t
        return (t["user_emb"], t["item_emb"], t["scale"], [t[n] for n in DENSE], [t[n] for n in STATS])

    def _buf(self, name: str, shape: tuple, dtype=torch.float32) -> torch.Tensor:
        key = (name, tuple(shape), dtype)
        buf = self._ws.get(key)
        if buf is None:
            buf = self._ws[key] = torch.empty(shape, dtype=dtype)
        return buf

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores ``[K, N]`` in evaluation mode (running batch-norm statistics)."""
        if self.fused:
            return torch.ops.lossgen.mlp_predict(*self._fused_args(), users.contiguous(), items.contiguous())
        s = self.t["scale"].to(torch.float32)[:, None, None]
        return _eval_scores(self.t, s * self.t["user_emb"][:, users], s * self.t["item_emb"][:, items])

    def predict(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.scores(users, items))

    def proxy_gram(self, users: torch.Tensor, items: torch.Tensor, index: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidate `index`'s predictions on a small batch (evaluation mode: no dropout, running
        batch-norm statistics, so the proxy test is deterministic) and the Gram matrix of their
        Jacobian with respect to its parameters (touched embedding rows and the dense layers)."""
        uniq_u, at_u = torch.unique(users, return_inverse=True)
        uniq_i, at_i = torch.unique(items, return_inverse=True)
        s = float(self.t["scale"][index])
        params = {"user_emb": self.t["user_emb"][index, uniq_u] * s, "item_emb": self.t["item_emb"][index, uniq_i] * s}
        params.update({n: self.t[n][index] for n in DENSE})
        fixed = {n: self.t[n][index : index + 1] for n in ("rm1", "rv1", "rm2", "rv2")}

        def forward(p):
            t = {**fixed, **{n: p[n].unsqueeze(0) for n in DENSE}}
            return torch.sigmoid(_eval_scores(t, p["user_emb"][at_u].unsqueeze(0), p["item_emb"][at_i].unsqueeze(0))[0])

        return prediction_gram(forward, params)

    # ------------------------------------------------------------------ training

    @torch.inference_mode()
    def dropout_keep(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The 0/1 keep masks ``[K, batch, 64]`` and ``[K, batch, 16]`` of every candidate's next
        step (views of a reused inference-mode buffer: the next call overwrites it; clone them)."""
        k, n = self.size, batch * sum(HIDDEN) // 2
        z = self._buf("rng", (k, n), torch.int64)
        tmp = self._buf("rng_tmp", (k, n), torch.int64)
        ctr = self._ws.get(("rng_ctr", n))
        if ctr is None:
            ctr = self._ws[("rng_ctr", n)] = torch.arange(n, dtype=torch.int64).mul_(_signed(_GOLDEN))
        base = self.t["rng_key"] + (self.t["steps"] << 32) * _signed(_GOLDEN)  # wraps mod 2^64
        torch.add(base.unsqueeze(1), ctr, out=z)
        for shift, mul in _MIX:  # fmix64 in place; int64 >> is arithmetic, so mask the shift
            torch.bitwise_right_shift(z, shift, out=tmp).bitwise_and_((1 << (64 - shift)) - 1)
            z.bitwise_xor_(tmp)
            if mul is not None:
                z.mul_(_signed(mul))
        u = z.bitwise_and_(_MANTISSAS).bitwise_or_(_ONES).view(torch.float32)  # 1 + m / 2^23
        # 2^23 * u - (2^23 + T - 1) = m - T + 1 is exact in float32: clamped, it is m >= T.
        keep = torch.add(_KEEP_OFFSET, u, alpha=2**23, out=u).clamp_(0, 1)
        split = batch * HIDDEN[0]
        return keep[:, :split].view(k, batch, HIDDEN[0]), keep[:, split:].view(k, batch, HIDDEN[1])

    def _bn_forward(self, h: torch.Tensor, layer: int, s: torch.Tensor | None, keep: torch.Tensor):
        """Batch norm (batch statistics) -> ReLU -> dropout on the pre-activation ``h`` (its bias
        left out, since batch norm removes it) of an input held divided by ``s``. Overwrites ``h``
        with the normalised activations, which backward needs with ``r`` and the output."""
        t, n = self.t, h.shape[1]
        mean = h.mean(1)
        h.sub_(mean.unsqueeze(1))
        var = torch.mul(h, h, out=self._buf(f"sq{layer}", h.shape)).mean(1)
        if s is not None:  # the true pre-activation is s * h + b
            mean, var = mean.mul_(s), var.mul_(s * s)
        r = torch.rsqrt(var + BN_EPS)
        if s is not None:
            r.mul_(s)  # normalises the stored-scale h
        h.mul_(r.unsqueeze(1))
        # running statistics, as nn.BatchNorm1d keeps them
        t[f"rm{layer}"].mul_(1 - BN_MOMENTUM).add_(mean.add_(t[f"b{layer}"]), alpha=BN_MOMENTUM)
        t[f"rv{layer}"].mul_(1 - BN_MOMENTUM).add_(var, alpha=BN_MOMENTUM * n / max(n - 1, 1))
        # relu(y) * keep / (1 - p) == relu(y / (1 - p)) * keep: the dropout scale goes into the affine.
        gain = (_KEEP_SCALE * t[f"g{layer}"]).unsqueeze(1)
        shift = (_KEEP_SCALE * t[f"beta{layer}"]).unsqueeze(1)
        out = torch.addcmul(shift, h, gain, out=self._buf(f"out{layer}", h.shape)).relu_().mul_(keep)
        return out, r.unsqueeze(1), gain

    def _bn_backward(self, grad_out: torch.Tensor, out: torch.Tensor, xhat: torch.Tensor, r: torch.Tensor,
                     gain: torch.Tensor, layer: int):
        """Gradients of BN -> ReLU -> dropout: (d pre-activation, d gamma, d beta). Overwrites grad_out."""
        n = out.shape[1]
        # out > 0 exactly where the unit was kept and active: there d out / d y' = 1.
        gy = torch.ops.aten.threshold_backward.grad_input(grad_out, out, 0.0, grad_input=grad_out)
        gsum = gy.sum(1, keepdim=True)
        gxsum = torch.mul(gy, xhat, out=self._buf(f"sq{layer}", gy.shape)).sum(1, keepdim=True)
        a = r * gain
        # d h = r * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) with dxhat = gain * gy
        gh = torch.addcmul(gsum * (a / -n), gy, a, out=gy).addcmul_(xhat, gxsum * (a / -n))
        return gh, gxsum.squeeze(1).mul_(_KEEP_SCALE), gsum.squeeze(1).mul_(_KEEP_SCALE)

    def fit_epoch(self, specs: Sequence[LossSpec], users, items, labels, config,
                  order_row: torch.Tensor | None = None) -> torch.Tensor:
        """One epoch over the examples in the given order, in mini-batches of
        `config.batch_size`; returns each candidate's mean loss (float64 [K]). users, items and
        labels are [N] (one order for all), or [S, N] with `order_row` [K] naming each
        candidate's order. SGD runs in the fused op (unless ``fused`` is off), Adam in PyTorch."""
        if len(specs) != self.size:
            raise ValueError(f"{len(specs)} losses for a population of {self.size}")
        if self.fused and config.optimizer == "sgd":
            return self._fused_steps(specs, users, items, labels, config.batch_size, config.lr, config.l2, order_row)
        if order_row is not None:  # each candidate its own batches: [K, N]
            users, items, labels = (t.index_select(0, order_row) for t in (users, items, labels))
        total = torch.zeros(self.size, dtype=torch.float64)
        n = users.shape[-1]  # [N]: one order for all; [K, N]: each candidate its own
        for start in range(0, n, config.batch_size):
            sl = (..., slice(start, start + config.batch_size))
            losses_k = self.step(specs, users[sl], items[sl], labels[sl], config.lr, config.l2,
                                 optimizer=config.optimizer, betas=config.betas, eps=config.adam_eps)
            total += losses_k.double() * labels[sl].shape[-1]
        return total / n

    def step(self, specs: Sequence[LossSpec], users, items, labels, lr: float, l2: float, *,
             optimizer: str = "sgd", betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> torch.Tensor:
        """One optimiser step on a mini-batch for every candidate; returns the batch losses ``[K]``.

        optimizer "sgd": w <- (1 - lr * l2) w - lr * grad (PyTorch weight_decay), lazily exact on
        the embeddings. "adam": torch.optim.Adam(betas, eps, weight_decay=l2) on the dense layers;
        on the embeddings lazy Adam as torch.optim.SparseAdam (only rows in the batch move, their
        gradient summed over duplicates, L2 added on those rows), bias-corrected with the
        candidate's own Adam step count. SGD on up to 256 examples runs in the fused op (unless
        ``fused`` is off)."""
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {optimizer!r}; choose sgd or adam")
        adam = optimizer == "adam"
        if self.fused and not adam and 1 <= users.shape[-1] <= FUSED_MAX_BATCH:
            if len(specs) != self.size:
                raise ValueError(f"{len(specs)} losses for a population of {self.size}")
            return self._fused_steps(specs, users, items, labels, users.shape[-1], lr, l2).float()
        with torch.no_grad():
            if adam:  # state tensors are made outside inference mode, so callers may write them
                self._ensure_adam()
                if bool((self.t["scale"] != 1).any()):  # Adam keeps the tables unscaled
                    self._renormalize()
        # inference mode: no autograd bookkeeping on ~250 ops a step (about 2.5% at K = 64);
        # the step's buffers never leave it, and the losses are cloned out of it
        with torch.inference_mode():
            losses = self._step(specs, users, items, labels, lr, l2, adam, betas, eps)
        return losses.clone()

    def _fused_steps(self, specs, users, items, labels, batch_size: int, lr: float, l2: float,
                     order_row: torch.Tensor | None = None) -> torch.Tensor:
        """SGD steps in the fused op (csrc/core/mlp_step.cpp) over the examples in the given order;
        each candidate's mean loss (float64 [K]). A program whose predictions become NaN or inf
        raises ValueError (as the program kernels do in the PyTorch step); named losses let NaN
        flow on."""
        table = self._table(specs)
        with torch.no_grad():
            return torch.ops.lossgen.mlp_train_epoch(
                *self._fused_args(), self.t["rng_key"], self.t["steps"], table.programs, table.kinds, table.eps,
                users.contiguous(), items.contiguous(), labels.contiguous(), batch_size, lr, l2, table.clamp,
                order_row)

    def _rows(self, table: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A [K, n, d] table as a 2-D view of its rows, and where the per-candidate ids [K, B]
        are in it: row (k, id) is at k * n + id when the table is stored [K, n, d] (a fused
        population's layout), or at id * K + k when stored [n, K, d] (fused off)."""
        k, n, d = table.shape
        candidates = torch.arange(k).unsqueeze(1)
        if table.transpose(0, 1).is_contiguous():
            return table.transpose(0, 1).view(-1, d), (ids * k + candidates).reshape(-1)
        if not table.is_contiguous():  # a copy would take the updates: never silently
            raise RuntimeError("an embedding table must be stored [n, K, d] or [K, n, d]")
        return table.view(-1, d), (candidates * n + ids).reshape(-1)

    def _step(self, specs, users, items, labels, lr, l2, adam, betas, eps) -> torch.Tensor:
        t, k, b, d = self.t, self.size, users.shape[-1], self.dim
        if users.dim() == 1 and not t["user_emb"].transpose(0, 1).is_contiguous():
            users, items = users.expand(k, b), items.expand(k, b)  # tables stored [K, n, d]: by rows
        own = users.dim() == 2  # each candidate its own batch (its own data order)
        buf = self._buf
        s = t["scale"].to(torch.float32).unsqueeze(1)
        keep1, keep2 = self.dropout_keep(b)
        t["steps"].add_(1)

        # forward; the embedding rows are used as stored (divided by s), s goes into batch norm
        rows, x = buf("rows", (b, k, d)), buf("x", (k, b, 2 * d))
        if own:
            for name, ids, part in (("user_emb", users, slice(None, d)), ("item_emb", items, slice(d, None))):
                table, at = self._rows(t[name], ids)
                x[:, :, part].copy_(table.index_select(0, at).view(k, b, d))
        else:
            x[:, :, :d].copy_(torch.index_select(t["user_emb"].transpose(0, 1), 0, users, out=rows).transpose(0, 1))
            x[:, :, d:].copy_(torch.index_select(t["item_emb"].transpose(0, 1), 0, items, out=rows).transpose(0, 1))
        h1 = torch.bmm(x, t["w1"], out=buf("h1", (k, b, HIDDEN[0])))
        o1, r1, gain1 = self._bn_forward(h1, 1, s, keep1)
        h2 = torch.bmm(o1, t["w2"], out=buf("h2", (k, b, HIDDEN[1])))
        o2, r2, gain2 = self._bn_forward(h2, 2, None, keep2)
        scores = torch.baddbmm(t["b3"].unsqueeze(1), o2, t["w3"]).squeeze(-1)

        losses, gs = losses_and_grads(self._plan(specs), scores, labels)

        # backward, all from the parameters before the step
        grads: dict[str, torch.Tensor] = {}
        grads["w3"] = torch.bmm(o2.transpose(1, 2), gs.unsqueeze(2))
        grads["b3"] = gs.sum(1, keepdim=True)
        go2 = torch.mul(gs.unsqueeze(2), t["w3"].transpose(1, 2), out=buf("go2", (k, b, HIDDEN[1])))
        gh2, grads["g2"], grads["beta2"] = self._bn_backward(go2, o2, h2, r2, gain2, 2)
        go1 = torch.bmm(gh2, t["w2"].transpose(1, 2), out=buf("go1", (k, b, HIDDEN[0])))
        grads["w2"] = torch.bmm(o1.transpose(1, 2), gh2, out=buf("gw2", t["w2"].shape))
        gh1, grads["g1"], grads["beta1"] = self._bn_backward(go1, o1, h1, r1, gain1, 1)
        # batch norm removes the bias of a hidden layer: its gradient is exactly zero
        grads["b1"] = grads["b2"] = None
        # gh1 is the gradient of the stored-scale pre-activation, so W1's gradient is x^T gh1
        # and the stored rows' is gh1 W1^T
        w1t = t["w1"].transpose(1, 2)  # contiguous [K, 64, 2d]

        if adam:
            grads["w1"] = torch.bmm(gh1.transpose(1, 2), x, out=buf("gw1t", w1t.shape)).transpose(1, 2)
            gx = torch.bmm(gh1, w1t, out=buf("gx", x.shape))
            self._adam(grads, {"user_emb": (users, gx[:, :, :d]), "item_emb": (items, gx[:, :, d:])},
                       lr, l2, betas, eps)
        else:
            # stored rows move by -lr / (s * s_next) times the stored-scale gradient (see the
            # docs); folding that factor into a copy of W1 saves a pass over the [K, B, 2d] grads
            s_next = t["scale"] * (1 - lr * l2)
            factor = (-lr / (t["scale"] * s_next)).to(torch.float32)[:, None, None]
            gx = torch.bmm(gh1, torch.mul(w1t, factor, out=buf("w1s", w1t.shape)), out=buf("gx", x.shape))
            decay = 1 - lr * l2
            w1t.baddbmm_(gh1.transpose(1, 2), x, beta=decay, alpha=-lr)
            stepped = [n for n in DENSE if grads.get(n) is not None]
            torch._foreach_mul_([t[n] for n in DENSE if n != "w1"], decay)
            torch._foreach_add_([t[n] for n in stepped], [grads[n] for n in stepped], alpha=-lr)
            for name, ids, g in (("user_emb", users, gx[:, :, :d]), ("item_emb", items, gx[:, :, d:])):
                if own:
                    table, at = self._rows(t[name], ids)
                    table.index_add_(0, at, g.reshape(-1, d))
                    continue
                table = t[name].transpose(0, 1)  # [n, K, d], contiguous
                table.view(table.shape[0], -1).index_add_(0, ids, rows.copy_(g.transpose(0, 1)).view(b, -1))
            t["scale"].copy_(s_next)
            if float(t["scale"].min()) < 1e-3:
                self._renormalize()
        return losses

    # ------------------------------------------------------------------ Adam

    def _ensure_adam(self) -> None:
        if "adam_t" in self.t:
            return
        self.t["adam_t"] = torch.zeros(self.size, dtype=torch.int64)
        for m in ("m", "v"):
            for name in TABLES + DENSE:
                self.t[f"{m}_{name}"] = torch.zeros_like(self.t[name])

    def _adam(self, grads, rows, lr, l2, betas, eps) -> None:
        t, (b1, b2) = self.t, betas
        t["adam_t"].add_(1)
        steps = t["adam_t"].to(torch.float64)
        bc1, bc2 = 1 - b1**steps, 1 - b2**steps  # per candidate: its own step count
        for name in DENSE:  # torch.optim.Adam (single-tensor form), coupled L2
            p, m, v = t[name], t[f"m_{name}"], t[f"v_{name}"]
            view = (-1,) + (1,) * (p.dim() - 1)
            g = grads[name]
            g = torch.zeros_like(p) if g is None else g
            if l2:
                g = g.add(p, alpha=l2)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / bc2.sqrt().to(p.dtype).view(view)).add_(eps)
            p.sub_(m / denom * (lr / bc1).to(p.dtype).view(view))
        step_size = (lr * bc2.sqrt() / bc1).to(torch.float32)[:, None, None]
        for name, (ids, g) in rows.items():  # torch.optim.SparseAdam on the rows of the batch
            if ids.dim() == 2:  # each candidate its own rows
                self._adam_own_rows(name, ids, g, l2, b1, b2, eps, step_size)
                continue
            table, m, v = t[name], t[f"m_{name}"], t[f"v_{name}"]
            uniq, inv = torch.unique(ids, return_inverse=True)
            grad = torch.zeros(self.size, uniq.shape[0], self.dim).index_add_(1, inv, g)  # duplicates summed
            w = table.index_select(1, uniq)
            if l2:
                grad.add_(w, alpha=l2)
            m_new, v_new = _adam_moments(m, v, 1, uniq, grad, b1, b2)
            table.index_copy_(1, uniq, w - step_size * (m_new / v_new.sqrt().add_(eps)))

    def _adam_own_rows(self, name, ids, g, l2, b1, b2, eps, step_size) -> None:
        """Lazy Adam on each candidate's own batch rows: the same update as the shared-batch path,
        on the rows of the tables (`_rows`; the moments are stored like their table)."""
        t, d, k = self.t, self.dim, self.size
        table, at = self._rows(t[name], ids)
        m, at_m = self._rows(t[f"m_{name}"], ids)
        v, at_v = self._rows(t[f"v_{name}"], ids)
        if not (torch.equal(at, at_m) and torch.equal(at, at_v)):
            raise RuntimeError(f"the Adam moments of {name} are stored unlike the table")
        uniq, inv = torch.unique(at, return_inverse=True)
        grad = torch.zeros(uniq.shape[0], d).index_add_(0, inv, g.reshape(-1, d))
        w = table.index_select(0, uniq)
        if l2:
            grad.add_(w, alpha=l2)
        m_new, v_new = _adam_moments(m, v, 0, uniq, grad, b1, b2)
        if t[name].transpose(0, 1).is_contiguous():
            candidate = uniq % k
        else:
            candidate = torch.div(uniq, t[name].shape[1], rounding_mode="floor")
        size = step_size.view(-1)[candidate].unsqueeze(1)
        table.index_copy_(0, uniq, w - size * (m_new / v_new.sqrt().add_(eps)))

    # ------------------------------------------------------------------ population

    def _renormalize(self) -> None:
        s = self.t["scale"].to(torch.float32)[:, None, None]
        self.t["user_emb"].mul_(s)
        self.t["item_emb"].mul_(s)
        self.t["scale"].fill_(1.0)

    def select(self, index: Sequence[int]) -> "MLPPopulation":
        """Copies of the given candidates (parameters, statistics, dropout stream, Adam state)."""
        idx = torch.as_tensor(list(index), dtype=torch.long)
        return MLPPopulation({n: t.index_select(0, idx).contiguous() for n, t in self.t.items()},
                             [self.seeds[i] for i in idx.tolist()], self.dim, self.fused)

    def copy_candidate(self, index: int, source: "MLPPopulation", source_index: int) -> None:
        if "adam_t" in source.t:
            self._ensure_adam()
        for name, t in self.t.items():
            if name in source.t:
                t[index].copy_(source.t[name][source_index])
            else:  # source never ran Adam
                t[index].zero_()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: t.clone() for n, t in self.t.items()}

    @staticmethod
    def from_state_dict(state: dict[str, torch.Tensor], seeds: Sequence[int], fused: bool = True) -> "MLPPopulation":
        """The population `state_dict` came from (`seeds` as given to `init`; the dropout streams
        live in the state)."""
        tensors = {n: t.clone() for n, t in state.items()}
        return MLPPopulation(tensors, seeds, tensors["user_emb"].shape[2], fused)


def _adam_moments(m: torch.Tensor, v: torch.Tensor, dim: int, rows: torch.Tensor, grad: torch.Tensor, b1: float,
                  b2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Lazy Adam's moments on `rows` (along `dim`) of m and v: updated in place with `grad` and
    returned, for the shared-batch and the own-rows paths alike."""
    m_old, v_old = m.index_select(dim, rows), v.index_select(dim, rows)
    m_new = (grad - m_old).mul_(1 - b1).add_(m_old)
    v_new = (grad * grad).sub_(v_old).mul_(1 - b2).add_(v_old)
    m.index_copy_(dim, rows, m_new)
    v.index_copy_(dim, rows, v_new)
    return m_new, v_new
