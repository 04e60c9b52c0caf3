"""`rl`: the paper's LSTM controller trained with REINFORCE (AutoLossGen §3.3, §5.1.4).

The controller writes a program step by step, ENAS style. Step t makes three decisions, each
from the LSTM's output at its own position of one long sequence:

    op_t  ~ softmax(1.5 tanh(W h))                      over the configured op set
    a_t   ~ attention over the slots written so far     (slots 0..2+t)
    b_t   ~ the same attention with a_t masked out      (binary ops only: distinct operands)

The attention keys are learned vectors for the inputs y_hat, y, 1 and, for slot 3+t, the LSTM
state that has just read all of step t's decisions; a score is v . tanh(K key + Q h), clipped
like the op logits. The LSTM input after a decision is that decision's embedding (op embedding or
slot embedding; a learned "no operand" vector after a unary op). Inputs depend only on the
decisions, never on earlier outputs, so the log-probability of a known program is one
teacher-forced `nn.LSTM` call over the whole sequence; sampling runs the same weights position
by position (`torch.lstm_cell`), batched over the n programs of `ask(n)`, with Gumbel-max draws
(the noise for all decisions drawn at once). Small batches run on one intra-op thread
(`RLConfig.threads`): the tensors are tiny, and on a shared CPU multi-threaded small ops slow
down about 30x; batches of 128 or more use every core (`RLConfig.large_batch_threads`).
A `tell` of exactly the last `ask`'s candidates reuses the sampler's action tensor.

Program length: the controller always makes `max_steps` steps (the paper's variable set of
3 + 7 slots) and the candidate is the canonical program of the last slot: steps the last slot
does not read are dropped and identical subtrees shared, so emitted programs have 1..max_steps
steps without a separate stop decision. The raw decisions travel in ``metadata["decisions"]``
and REINFORCE uses them, because they are what was sampled.

Learning: `tell` buffers (decisions, reward) pairs; once at least `batch_size` (10) rewards are
buffered it makes one update over all of them, so the paper's loop (ask 10, tell 10) updates
once per round on 10 rewards and a bigger round is one update on a bigger batch:

    loss = -mean((r - baseline) log p) - entropy_weight mean(entropy) + l2 |theta|^2   (Adam)

The baseline is a moving average of the batch-mean reward (decay 0.99), initialised with the
first batch's mean so the first advantages are centred.

Novelty (`novelty` on): `ask(n)` samples more programs than asked, in batches of max(2n, 32)
that double each time, at most `NOVELTY_DRAWS` * n draws in all (on the threads an `ask(n)`
without novelty would use), and returns the first n whose canonical program is new (neither
proposed nor told before, nor drawn earlier in the same ask); if fewer than n are new within
those draws, the rest is filled with drawn known programs, those not already among the returned
ones first (``metadata["novel"]`` tells which). Each returned candidate carries its own decisions
and their log-probability under the controller, and REINFORCE credits exactly the returned
candidates' trajectories (what is told); draws that are not returned are never scored and leave
no trace but the generator's state.
The estimate is biased: the returned candidates are drawn without replacement, i.e. from the
controller's distribution conditioned on novelty (p restricted to unseen programs and
renormalised), while the update weighs them with the score of the unconditioned policy, as if
they came from p itself. A program stops being credited once proposed however likely the policy
makes it (its probability is no longer reinforced or penalised directly), and the baseline
averages the rewards of new programs only. The controller is still pushed toward the regions
that yield rewarded new programs, which is what a search that never re-scores a loss can use;
with the option off the estimator is the paper's unbiased one.

Un-asked candidates (seeded known losses): `tell` credits the trajectory that yields exactly the
candidate's canonical program, dead filler steps first (the canonical form drops them), then
the program's steps, and the policy gradient moves the controller toward (or away from) it like
any sample. Its ops must be in the op set and its canonical form within max_steps, else `tell`
raises ValueError.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from lossgen.ir.opset import N_INPUT_SLOTS, N_OPS, Op
from lossgen.search.base import (
    Candidate,
    StrategyConfig,
    canonical_from_steps,
    check_n,
    check_program_fits,
    check_strategy_state,
    check_tell_args,
    load_memory,
    memory_state,
    new_memory,
    program_key,
    remember_told,
)

# With novelty on, `ask(n)` draws at most NOVELTY_DRAWS * n programs before it fills the rest
# with known ones (module docstring).
NOVELTY_DRAWS = 32

@contextlib.contextmanager
def _intra_op_threads(count: int):
    """Run a block on `count` intra-op threads and restore the caller's setting afterwards."""
    threads = torch.get_num_threads()
    if count <= 0 or count == threads:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# Batch from which `log_prob` runs nn.LSTM on ATen's native CPU kernels rather than oneDNN's.
# Teacher forcing 21 steps of 32 hidden units (forward + backward, one thread): oneDNN costs
# ~0.1 ms per sequence, native ~5 ms fixed (one autograd node per step) plus ~0.065 ms per
# sequence; they cross near 128 (n = 256: 21 vs 26 ms).
NATIVE_RNN_MIN_BATCH = 128


@contextlib.contextmanager
def _native_rnn(active: bool):
    """Within the block, nn.LSTM uses ATen's native kernels instead of oneDNN's (if `active`)."""
    enabled = torch._C._get_mkldnn_enabled()
    if not active or not enabled:
        yield
        return
    torch._C._set_mkldnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(enabled)


_MASKED = -1e9  # finite, so that p log p of a masked choice is exactly 0 (not NaN)


@dataclass
class RLConfig(StrategyConfig):
    """The paper's controller settings (§5.1.4); `l2` is the controller's weight decay."""

    hidden: int = 32
    layers: int = 2
    init_range: float = 0.1
    logit_clip: float = 1.5
    lr: float = 1e-3
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.99
    batch_size: int = 10
    l2: float = 1e-4
    # Intra-op threads for ask and tell (0: leave torch's setting alone). The controller's tensors
    # are tiny (batch x 32): extra threads only add synchronisation, and when the CPU is shared
    # they make sampling and updates ~30x slower (workers spin-wait for descheduled peers).
    threads: int = 1
    # Batches of at least `large_batch` programs use `large_batch_threads` instead (0: torch's
    # setting, i.e. every core): at n = 256 two threads are ~15% faster on an idle 2-core machine.
    # Set it to 1 when other processes share the CPU.
    large_batch: int = 128
    large_batch_threads: int = 0

    def check(self) -> None:
        super().check()
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1), got {self.baseline_decay}")


class Controller(nn.Module):
    """The LSTM policy over programs; `log_prob` (teacher forcing) and `sample` share weights."""

    def __init__(self, n_actions: int, max_steps: int, hidden: int, layers: int, init_range: float,
                 logit_clip: float):
        super().__init__()
        self.max_steps = max_steps
        self.logit_clip = logit_clip
        self.start = nn.Parameter(torch.empty(hidden))
        self.no_operand = nn.Parameter(torch.empty(hidden))
        self.op_embed = nn.Embedding(n_actions, hidden)
        self.slot_embed = nn.Embedding(N_INPUT_SLOTS + max_steps, hidden)
        self.input_keys = nn.Parameter(torch.empty(N_INPUT_SLOTS, hidden))
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers)
        self.op_head = nn.Linear(hidden, n_actions)
        self.w_key = nn.Linear(hidden, hidden, bias=False)
        self.w_query = nn.Linear(hidden, hidden, bias=False)
        self.v = nn.Linear(hidden, 1, bias=False)
        for p in self.parameters():
            nn.init.uniform_(p, -init_range, init_range)  # RLController re-draws from its generator

    def _clip(self, logits: torch.Tensor) -> torch.Tensor:
        return self.logit_clip * torch.tanh(logits)

    def _keys(self, anchors: torch.Tensor) -> torch.Tensor:
        """Attention keys of anchors [..., H], pre-doubled for `_attend`."""
        return 2 * self.w_key(anchors)

    def _attend(self, keys: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """keys [B, S, H] (from `_keys`), query [..., B, H] -> clipped scores [..., B, S].

        The score v . tanh(K key + Q h) is computed as 2 v . sigmoid(2 (K key + Q h)) - sum(v)
        (tanh x = 2 sigmoid(2x) - 1): the [..., B, S, H] activation is the biggest elementwise
        op of both sampling and teacher forcing, and on CPU tanh costs ~3x a sigmoid. The
        doublings fall on the small key and query tensors."""
        q = 2 * self.w_query(query).unsqueeze(-2)
        v = self.v.weight.squeeze(0)
        return self._clip(2 * (torch.sigmoid(keys + q) @ v) - v.sum())

    def log_prob(self, actions: torch.Tensor, binary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing. actions long [B, L, 3] (op action index, a, b), binary bool [B, L]
        -> (log-probability [B], entropy [B]) of the whole decision sequence."""
        bsz, steps, _ = actions.shape
        op, a, b = actions.unbind(-1)
        after_b = torch.where(binary.unsqueeze(-1), self.slot_embed(b), self.no_operand)
        x = torch.stack([self.op_embed(op), self.slot_embed(a), after_b], dim=1)  # [B, L, 3, H]
        x = torch.cat([self.start.expand(bsz, 1, -1), x.reshape(bsz, 3 * steps, -1)[:, :-1]], dim=1)
        with _native_rnn(bsz >= NATIVE_RNN_MIN_BATCH):
            out, _ = self.lstm(x.transpose(0, 1))  # [3L, B, H]
        h_op, h_a, h_b = out[0::3], out[1::3], out[2::3]  # [L, B, H] each

        op_logits = self._clip(self.op_head(h_op)).log_softmax(-1)  # [L, B, A]
        anchors = torch.cat([self.input_keys.expand(bsz, -1, -1), h_op[1:].transpose(0, 1)], dim=1)
        keys = self._keys(anchors)  # [B, S, H], S = 3 + L - 1
        n_slots = keys.shape[1]
        t = torch.arange(steps).unsqueeze(1)
        j = torch.arange(n_slots).unsqueeze(0)
        unwritten = (j >= N_INPUT_SLOTS + t).unsqueeze(1)  # [L, 1, S]
        a_logits = self._attend(keys, h_a).masked_fill(unwritten, _MASKED).log_softmax(-1)  # [L, B, S]
        taken = j.unsqueeze(0) == a.t().unsqueeze(-1)  # [L, B, S]
        b_logits = self._attend(keys, h_b).masked_fill(unwritten | taken, _MASKED).log_softmax(-1)

        def pick(logp, idx):
            return logp.gather(-1, idx.t().unsqueeze(-1)).squeeze(-1)  # [L, B]

        def entropy(logp):
            return -(logp.exp() * logp).sum(-1)

        mask = binary.t().to(op_logits.dtype)
        lp = pick(op_logits, op) + pick(a_logits, a) + mask * pick(b_logits, b)
        ent = entropy(op_logits) + entropy(a_logits) + mask * entropy(b_logits)
        return lp.sum(0), ent.sum(0)

    @torch.no_grad()
    def sample(self, n: int, binary_actions: torch.Tensor, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """n programs at once -> (actions long [n, L, 3], log-probability [n])."""
        steps = self.max_steps
        actions = torch.zeros(n, steps, 3, dtype=torch.long)
        logp = torch.zeros(n)
        x = self.start.expand(n, -1)
        keys = self._keys(self.input_keys).expand(n, -1, -1)
        # Gumbel-max sampling with the noise of all 3 * steps decisions drawn up front (one RNG
        # call instead of one multinomial per decision). u = 0 gives -inf noise: never picked.
        width = max(self.op_head.out_features, N_INPUT_SLOTS + steps - 1)
        u = torch.rand(steps, 3, n, width, generator=generator)
        noise = -(-u.log()).log()

        lstm = self.lstm
        weights = [tuple(getattr(lstm, f"{kind}_l{k}") for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                   for k in range(lstm.num_layers)]
        state = [(x.new_zeros(n, lstm.hidden_size), x.new_zeros(n, lstm.hidden_size)) for _ in weights]

        def run(inp):
            # One position of self.lstm, layer by layer with the fused cell (same weights and
            # equations as nn.LSTM, without its per-call sequence overhead).
            for k, w in enumerate(weights):
                state[k] = torch.lstm_cell(inp, state[k], *w)
                inp = state[k][0]
            return inp

        def draw(logits, noise):
            logp = logits.log_softmax(-1)
            idx = (logp + noise[:, :logp.shape[1]]).argmax(-1, keepdim=True)
            return idx.squeeze(1), logp.gather(1, idx).squeeze(1)

        for t in range(steps):
            h = run(x)
            if t > 0:
                keys = torch.cat([keys, self._keys(h).unsqueeze(1)], dim=1)
            op, lp_op = draw(self._clip(self.op_head(h)), noise[t, 0])
            is_binary = binary_actions[op]
            h = run(self.op_embed(op))
            a, lp_a = draw(self._attend(keys, h), noise[t, 1])
            h = run(self.slot_embed(a))
            b_logits = self._attend(keys, h).scatter_(1, a.unsqueeze(1), _MASKED)  # b != a
            b, lp_b = draw(b_logits, noise[t, 2])
            b = torch.where(is_binary, b, 0)
            actions[:, t, 0], actions[:, t, 1], actions[:, t, 2] = op, a, b
            logp += lp_op + lp_a + torch.where(is_binary, lp_b, 0.0)
            x = torch.where(is_binary.unsqueeze(1), self.slot_embed(b), self.no_operand)
        return actions, logp


class RLController:
    """The `rl` strategy: `ask` samples from the controller, `tell` runs REINFORCE updates."""

    name = "rl"

    def __init__(self, config: RLConfig | None = None, seed: int = 0):
        self.config = config or RLConfig()
        self.config.check()
        cfg = self.config
        self._ops = cfg.ops()
        self._action_of = torch.full((N_OPS,), -1, dtype=torch.long)
        for i, op in enumerate(self._ops):
            self._action_of[int(op)] = i
        self._op_codes = torch.tensor([int(op) for op in self._ops], dtype=torch.long)
        self._binary = torch.tensor([op.arity == 2 for op in self._ops])
        self._generator = torch.Generator().manual_seed(seed)
        # Module constructors draw from torch's global RNG: fork it so the caller's stream is left
        # untouched; the weights then come from the strategy's own generator.
        with torch.random.fork_rng(devices=[]):
            self.controller = Controller(len(self._ops), cfg.max_steps, cfg.hidden, cfg.layers,
                                         cfg.init_range, cfg.logit_clip)
        with torch.no_grad():
            for p in self.controller.parameters():
                p.uniform_(-cfg.init_range, cfg.init_range, generator=self._generator)
        # Adam's weight_decay adds 2 * l2 * theta to the gradient: the gradient of l2 |theta|^2.
        # fused: one kernel for all parameters instead of a dozen small ops per tensor.
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=cfg.lr, weight_decay=2 * cfg.l2,
                                          fused=True)
        self.baseline: float | None = None
        self.updates = 0
        self._counter = 0
        self._buffer_actions: list[torch.Tensor] = []
        self._buffer_rewards: list[float] = []
        self._last_ask: tuple[list, list, torch.Tensor] = ([], [], torch.empty(0))  # `_asked_actions`
        self._memory = new_memory(cfg)

    # ------------------------------------------------------------------------------ ask

    def ask(self, n: int) -> list[Candidate]:
        n = check_n(n)
        if n == 0:
            return []
        if self._memory is not None:
            return self._ask_novel(n)
        with _intra_op_threads(self._threads_for(n)):
            actions, logp = self.controller.sample(n, self._binary, self._generator)
        raw = torch.stack([self._op_codes[actions[..., 0]], actions[..., 1], actions[..., 2]], -1)
        # Rows flattened to 3 * steps ints: a nested tolist() would allocate one list per step of
        # every program, and the garbage collector's passes over such short-lived containers
        # cost as much as building the candidates.
        out = []
        for flat, lp in zip(raw.view(n, -1).tolist(), logp.tolist()):
            it = iter(flat)
            decisions = tuple(zip(it, it, it))  # ((op, a, b), ...) per step
            program = canonical_from_steps(decisions)
            cid = f"rl-{self._counter:07d}-{program_key(program, canonical=True)}"
            out.append(Candidate(program, cid, self.name, {"decisions": decisions, "log_prob": lp}))
            self._counter += 1
        self._last_ask = (out, [c.metadata["decisions"] for c in out], actions)
        return out

    def _ask_novel(self, n: int) -> list[Candidate]:
        """`ask` with novelty on (module docstring)."""
        memory = self._memory
        limit = NOVELTY_DRAWS * n
        size = max(2 * n, 32)
        drawn = 0
        batches: list[torch.Tensor] = []
        novel: list[tuple] = []  # (index among all draws, decisions, program, key, log-prob)
        known: list[tuple] = []  # the same, for draws whose program was known
        parsed: dict[tuple, tuple] = {}  # flat decisions -> (decisions, program, key), this ask only
        threads = self._threads_for(n)  # by what was asked: extra draws are no reason for more threads
        while len(novel) < n and drawn < limit:
            size = min(size, limit - drawn)
            with _intra_op_threads(threads):
                actions, logp = self.controller.sample(size, self._binary, self._generator)
            batches.append(actions)
            raw = torch.stack([self._op_codes[actions[..., 0]], actions[..., 1], actions[..., 2]], -1)
            for i, (flat, lp) in enumerate(zip(raw.view(size, -1).tolist(), logp.tolist())):
                flat = tuple(flat)
                hit = parsed.get(flat)
                if hit is None:
                    it = iter(flat)
                    decisions = tuple(zip(it, it, it))
                    program = canonical_from_steps(decisions)
                    hit = parsed[flat] = (decisions, program, program_key(program, canonical=True))
                entry = (drawn + i, *hit, lp)
                if memory.add(hit[2]):
                    novel.append(entry)
                    if len(novel) == n:
                        break  # the rest of the batch is never looked at
                else:
                    known.append(entry)
            drawn += size
            size *= 2
        chosen = [(entry, True) for entry in novel]
        if len(chosen) < n:  # fill: known programs not yet returned first, then any, in draw order
            returned = {entry[3] for entry in novel}
            spare = []
            for entry in known:
                if entry[3] in returned:
                    spare.append(entry)
                else:
                    returned.add(entry[3])
                    chosen.append((entry, False))
            chosen += [(entry, False) for entry in spare]
            chosen = chosen[:n]
        out = []
        for (_, decisions, program, key, lp), is_new in chosen:
            cid = f"rl-{self._counter:07d}-{key}"
            out.append(Candidate(program, cid, self.name, {"decisions": decisions, "log_prob": lp, "novel": is_new}))
            self._counter += 1
        rows = torch.tensor([entry[0] for entry, _ in chosen])
        actions = (batches[0] if len(batches) == 1 else torch.cat(batches)).index_select(0, rows)
        self._last_ask = (out, [c.metadata["decisions"] for c in out], actions)
        return out

    # ------------------------------------------------------------------------------ tell

    def _trajectory(self, candidate: Candidate) -> list:
        """Decisions that produce the candidate's canonical program: dead filler steps first
        (the op set's first op over y_hat and y, which the canonical form drops), then the
        program's own steps with their slot operands shifted past the filler."""
        steps = self.config.max_steps
        program = candidate.program.canonical()
        check_program_fits(program, self._ops, steps)
        pad = steps - len(program)
        filler = self._ops[0]
        rows = [[int(filler), 0, 1 if filler.arity == 2 else 0]] * pad

        def shift(slot):
            return slot if slot < N_INPUT_SLOTS else slot + pad

        rows += [[op, shift(a), shift(b) if Op(op).arity == 2 else 0] for op, a, b in program.steps]
        return rows

    def _valid_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """bool [B]: which decision rows (op code, a, b) the controller can have produced."""
        op, a, b = rows.unbind(-1)
        in_range = (op >= 0) & (op < N_OPS)
        action = self._action_of[op.clamp(0, N_OPS - 1)]
        written = N_INPUT_SLOTS + torch.arange(rows.shape[1])
        binary = self._binary[action.clamp(min=0)]
        ok = in_range & (action >= 0) & (a >= 0) & (a < written)
        ok &= ~binary | ((b >= 0) & (b < written) & (b != a))
        return ok.all(-1)

    def _asked_actions(self, candidates: Sequence[Candidate]) -> torch.Tensor | None:
        """The sampler's own action tensor when `candidates` are exactly the last `ask`'s, in
        order and with their decisions untouched (the usual ask-then-tell loop): it equals what
        `actions_for` would rebuild from ``metadata["decisions"]``, without the Python round trip."""
        asked, decisions, actions = self._last_ask
        if not asked or len(candidates) != len(asked):
            return None
        for cand, own, sampled in zip(candidates, asked, decisions):
            if cand.metadata.get("decisions") is not sampled or cand.id != own.id or cand.strategy != self.name:
                return None
        return actions

    def actions_for(self, candidates: Sequence[Candidate]) -> torch.Tensor:
        """long [B, max_steps, 3] of (op action index, a, b) that REINFORCE credits: the sampled
        decisions of this strategy's candidates (``metadata["decisions"]``), else teacher forcing
        of the canonical program (`_trajectory`)."""
        cached = self._asked_actions(candidates)
        if cached is not None:
            return cached
        steps = self.config.max_steps
        rows = []
        own = []
        for cand in candidates:
            decisions = cand.metadata.get("decisions")
            usable = cand.strategy == self.name and decisions is not None and len(decisions) == steps
            own.append(usable)
            rows.append([list(step) for step in decisions] if usable else self._trajectory(cand))
        rows_t = torch.tensor(rows, dtype=torch.long).reshape(len(candidates), steps, 3)
        bad = (~self._valid_rows(rows_t)).nonzero().flatten().tolist()
        for i in bad:
            if not own[i]:
                raise AssertionError(f"trajectory of {candidates[i].id} failed validation")
            rows_t[i] = torch.tensor(self._trajectory(candidates[i]), dtype=torch.long)
        action = self._action_of[rows_t[..., 0]]
        b = torch.where(self._binary[action], rows_t[..., 2], 0)
        return torch.stack([action, rows_t[..., 1], b], -1)

    def tell(self, candidates: Sequence[Candidate], rewards: Sequence[float]) -> None:
        rewards = check_tell_args(candidates, rewards)
        if not candidates:
            return
        self._buffer_actions.append(self.actions_for(candidates))  # checks un-asked candidates
        remember_told(self._memory, candidates, self.name)
        self._buffer_rewards.extend(rewards)
        if len(self._buffer_rewards) >= self.config.batch_size:
            with _intra_op_threads(self._threads_for(len(self._buffer_rewards))):
                self._update(torch.cat(self._buffer_actions), torch.tensor(self._buffer_rewards))
                self._buffer_actions, self._buffer_rewards = [], []

    def _threads_for(self, batch: int) -> int:
        return self.config.large_batch_threads if batch >= self.config.large_batch else self.config.threads

    def _update(self, actions: torch.Tensor, rewards: torch.Tensor) -> None:
        cfg = self.config
        mean_reward = float(rewards.mean())
        if self.baseline is None:
            self.baseline = mean_reward
        binary = self._binary[actions[..., 0]]
        logp, entropy = self.controller.log_prob(actions, binary)
        advantage = rewards - self.baseline
        loss = -(advantage * logp).mean() - cfg.entropy_weight * entropy.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.baseline = cfg.baseline_decay * self.baseline + (1 - cfg.baseline_decay) * mean_reward
        self.updates += 1

    # ------------------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        return memory_state(self._memory, {
            "strategy": self.name,
            "controller": {k: v.clone() for k, v in self.controller.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "generator": self._generator.get_state(),
            "baseline": self.baseline,
            "updates": self.updates,
            "counter": self._counter,
            "buffer_actions": [a.clone() for a in self._buffer_actions],
            "buffer_rewards": list(self._buffer_rewards),
        })

    def load_state_dict(self, state: dict) -> None:
        check_strategy_state(state, self.name)
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._generator.set_state(state["generator"])
        self.baseline = state["baseline"]
        self.updates = int(state["updates"])
        self._counter = int(state["counter"])
        self._buffer_actions = [torch.as_tensor(a, dtype=torch.long) for a in state["buffer_actions"]]
        self._buffer_rewards = [float(r) for r in state["buffer_rewards"]]
        self._last_ask = ([], [], torch.empty(0))
        self._memory = load_memory(self._memory, state)
