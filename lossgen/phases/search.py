"""Phase I, the loss search (paper Algorithm 1, batched; DESIGN.md "The three phases").

Each round:
  1. the strategy proposes `per_round` candidates (ask);
  2. duplicates are recognised by a model-independent fingerprint (d f / d y_hat on a fixed probe
     grid) remembered for the whole run; a duplicate reuses the reward of the earlier candidate;
  3. the proxy test (`lossgen.phases.proxy`): zero gradient (default negative reward) or a
     gradient duplicate of a candidate already scored on the same recommender state;
  4. the survivors train one epoch each, side by side as a population, from copies of the
     current recommender (`lossgen.phases.evaluator`); reward = change of the validation metric
     (AUC, or -RMSE);
  5. reward filtering: a copy is accepted when reward >= -eta, and the recommender moves on with
     the best accepted copy (without filtering: with a uniformly drawn evaluated copy, as the
     unfiltered sequential algorithm keeps every update);
  6. every candidate and its outcome are recorded in the run store, in one commit per round,
     together with a checkpoint of the recommender, the strategy and every RNG; the strategy is
     told all rewards.

The `lossgen` preset (docs/pipeline.md) changes four steps: a candidate that uses an epsilon op
becomes one variant per epsilon of `eps_grid`, and its reward is its best variant's; with `strict`,
variants that would fail the strict Phase II are rejected before training (told a reward graded by
how close they came); with `reward == "reference"` every variant trains from the fixed initial
recommender over the same batch order each round, so rewards are comparable across the run, the
recommender never moves and there is no reward filtering nor gradient-duplicate test.

Gradient duplicates are only compared within one recommender state (the gradients of earlier
states are not comparable, and re-evaluating every scored candidate each round would grow with
the run); the fingerprint is what remembers duplicates across the whole run.

A killed run resumes from the last committed round and follows the same trajectory: the batch
order, the strategy and the duplicate memory are all restored from the store.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import torch

from lossgen.data.dataset import Dataset
from lossgen.ir.formula import to_infix
from lossgen.ir.printers import with_epsilon
from lossgen.ir.opset import parse_clamp
from lossgen.ir.programs import Program
from lossgen.models import MFPopulation, MLPPopulation, create_population
from lossgen.phases.distributed import RayEvaluator
from lossgen.phases.evaluator import Evaluator
from lossgen.phases.executor import ExecutorSettings
from lossgen.phases.check import STRICT_MAX_GRADIENT, check_candidates
from lossgen.phases.proxy import GradientMemory, probe_fingerprints, proxy_gradients
from lossgen.phases.settings import CheckSettings, SearchConfig, SearchLimits
from lossgen.runs import CandidateRecord, CandidateState, RunStore
from lossgen.search import SearchStrategy, create
from lossgen.training.losses import from_program

_PROXY_BATCH_SEED_OFFSET = 7919  # B is drawn from its own stream, independent of batch orders


def stop_reason(store: RunStore, limits: SearchLimits) -> str | None:
    """The limit a stored run has already reached (None: resuming it would search more), read from
    its last checkpoint without rebuilding the search."""
    checkpoint = store.load_checkpoint()
    if checkpoint is None:
        return None
    s = checkpoint.state
    return limits.reached(s["totals"], s["elapsed"], checkpoint.round + 1, s["stale"])


@dataclass
class RoundReport:
    """What a round did (also the `info` stored with it)."""

    round: int
    sampled: int
    evaluated: int
    zero_gradient: int
    duplicates: int
    accepted: int
    best_reward: float | None
    moved_to: str | None
    validation: float
    train_metric: float
    metric: str
    elapsed: float
    totals: dict
    best_so_far: float | None
    best_id: str | None


@dataclass
class SearchResult:
    rounds: int
    totals: dict
    elapsed: float
    stopped: str
    best_id: str | None
    best_reward: float | None


class LossSearch:
    """One Phase I run over a run store. `run(limits)` continues it until a limit is reached."""

    def __init__(self, dataset: Dataset, store: RunStore, config: SearchConfig, strategy: SearchStrategy | None = None,
                 executor: ExecutorSettings | None = None):
        """`strategy`: an already built strategy to use instead of `create(config.strategy, ...)`
        (its state is still checkpointed and restored). `executor`: with `ray`, each round's
        population is split across Ray actors (lossgen.phases.distributed; Ray must be connected,
        see `ray_session`); the trajectory is the same. Not part of the run's identity."""
        config.check()
        self._given_strategy = strategy
        self.dataset, self.store, self.config = dataset, store, config.resolved(dataset)
        if executor is not None and executor.is_ray:
            self.evaluator = RayEvaluator(dataset, self.config.task, self.config.train, executor)
        else:
            self.evaluator = Evaluator(dataset, self.config.task, self.config.train)
        self.metric = self.evaluator.metric
        train = dataset.train
        gen = torch.Generator().manual_seed(self.config.seed + _PROXY_BATCH_SEED_OFFSET)
        pick = torch.randperm(len(train), generator=gen)[: self.config.proxy_batch]
        self.proxy_users, self.proxy_items = train.users[pick], train.items[pick]
        self.proxy_labels = train.labels[pick]
        self.clamp = parse_clamp(self.config.clamp)
        self.check = CheckSettings(strict=True)  # the strict Phase II's pass mark and pairs, for `strict`
        self._unbooked = 0.0
        self._restore()

    def close(self) -> None:
        """Release the evaluator's workers (Ray actors); the store stays open (its owner closes it)."""
        close = getattr(self.evaluator, "close", None)
        if close is not None:
            close()

    # ------------------------------------------------------------------ state

    def _new_model(self, seeds: Sequence[int]):
        return create_population(self.config.model, self.dataset.n_users, self.dataset.n_items, seeds, self.config.dim)

    def _restore(self) -> None:
        cfg, store = self.config, self.store
        checkpoint = store.load_checkpoint()
        self._model_changed = True  # the first commit of a session saves the recommender once
        self.strategy = self._given_strategy or create(cfg.strategy, dict(cfg.strategy_config), seed=cfg.seed)
        self.order_gen = torch.Generator().manual_seed(cfg.seed)
        if checkpoint is None:
            self.model = self._new_model([cfg.seed])
            self.round = 0
            self.totals = {"sampled": 0, "evaluated": 0, "zero_gradient": 0, "duplicates": 0, "accepted": 0}
            if cfg.strict:
                self.totals["rejected"] = 0
            self.elapsed = 0.0
            self.utility = float(self._utility(self.model, self.dataset.validation)[0])
            self.train_metric = self._reported(float(self._utility(self.model, self.dataset.train)[0]))
            self.best_utility, self.stale = self.utility, 0
            self.best_so_far, self.best_id = None, None
            store.set_meta("initial", {"validation": self._reported(self.utility), "train_metric": self.train_metric})
        else:
            s = checkpoint.state
            if cfg.model == "mf":
                self.model = MFPopulation.from_state_dict(s["model"])
            else:
                self.model = MLPPopulation.from_state_dict(s["model"], [cfg.seed])
            self.strategy.load_state_dict(s["strategy"])
            self.order_gen.set_state(s["order_gen"])
            self.round = checkpoint.round + 1
            for key in ("totals", "elapsed", "utility", "train_metric", "best_utility", "stale", "best_so_far", "best_id"):
                setattr(self, key, s[key])
        self._rebuild_memory()

    def _state(self) -> dict[str, Any]:
        """Everything but the recommender, which is saved apart and only when it changed."""
        state = {"strategy": self.strategy.state_dict(),
                 "order_gen": self.order_gen.get_state(), "totals": dict(self.totals), "elapsed": self.elapsed,
                 "utility": self.utility, "train_metric": self.train_metric, "best_utility": self.best_utility,
                 "stale": self.stale, "best_so_far": self.best_so_far, "best_id": self.best_id}
        if self.config.eps_grid and self._gradient_duplicates:
            # the gradient memory of this state, by variant (records keep only each candidate's best)
            state["memory"] = {"keys": list(self.memory.ids), "h": self.memory.h.clone(),
                               "reward_of": dict(self.reward_of)}
        return state

    def _rebuild_memory(self) -> None:
        """The run-wide fingerprint memory and the gradient memory of the current recommender
        state, from the store (so a resumed run remembers exactly what the original did)."""
        self.seen: dict[str, tuple[str, float]] = {}  # fingerprint -> (candidate id, reward)
        self.eps_of: dict[str, float] = {}  # candidate id -> the epsilon it was trained with
        # only the rows each memory needs: decoding every row of a long run costs seconds
        for record in self.store.originals():
            if record.fingerprint not in self.seen:
                self.seen[record.fingerprint] = (record.id, record.reward)
                if record.eps is not None:
                    self.eps_of[record.id] = record.eps
        self._start_state()
        if not self._gradient_duplicates:
            return
        checkpoint = self.store.load_checkpoint()
        saved = checkpoint.state.get("memory") if checkpoint is not None else None
        if saved is not None:
            for cid, h in zip(saved["keys"], saved["h"]):
                self.memory.add(h, cid)
            self.reward_of = dict(saved["reward_of"])
            return
        moved = [r.round for r in self.store.rounds() if r.moved_to]
        since = moved[-1] if moved else -1
        recent = self.store.passed_since(since)
        if recent:
            g = self._proxy_g([Program(r.program) for r in recent])
            for record, h in zip(recent, self.memory.coords(g)):
                self.memory.add(h, record.id)
        self.reward_of = {r.id: r.reward for r in recent}

    def _start_state(self) -> None:
        """A new recommender state: fresh proxy predictions, Gram matrix and gradient memory."""
        y_hat, gram = self.model.proxy_gram(self.proxy_users, self.proxy_items)
        self.proxy_y_hat, self.memory = y_hat, GradientMemory(gram)
        self.reward_of: dict[str, float] = {}

    def _utility(self, model, split) -> torch.Tensor:
        return self.evaluator.utility(model, split)

    def _reported(self, utility: float) -> float:
        return self.evaluator.reported(utility)

    def _proxy_g(self, programs: list[Program], eps=None) -> torch.Tensor:
        return proxy_gradients(programs, self.proxy_y_hat, self.proxy_labels, self.clamp, eps)

    @property
    def _gradient_duplicates(self) -> bool:
        """Whether the proxy test looks for gradient duplicates: only on a moving recommender (the
        paper's). With the fixed reference state the run-wide fingerprint memory already knows
        every function scored on that state, exactly; distances on |B| = 5 points would merge
        different losses."""
        return self.config.proxy and self.config.reward == "moving"

    # ------------------------------------------------------------------ the loop

    def run(self, limits: SearchLimits, progress: Callable[[RoundReport], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> SearchResult:
        limits.check()
        while True:
            reason = limits.reached(self.totals, self.elapsed, self.round, self.stale)
            if reason is None and should_stop is not None and should_stop():
                reason = "interrupted"
            if reason is not None:
                return SearchResult(self.round, dict(self.totals), self.elapsed, reason, self.best_id, self.best_so_far)
            report = self.step()
            if progress is not None:
                progress(report)

    def step(self) -> RoundReport:
        """One round, committed to the store before it returns."""
        cfg, start = self.config, time.perf_counter() - self._unbooked
        self._unbooked = 0.0
        candidates = self.strategy.ask(cfg.per_round)
        programs = [c.program for c in candidates]
        rows = [{"id": c.id, "program": [list(s) for s in c.program.steps], "formula": to_infix(c.program),
                 "strategy": c.strategy, "reward": None, "accepted": False} for c in candidates]
        for row, fp in zip(rows, probe_fingerprints(programs, self.clamp, cfg.eps_grid)):
            row["fingerprint"] = fp

        # Run-wide duplicates first: they cost nothing more.
        rows_by_id = {row["id"]: row for row in rows}
        fresh: list[int] = []
        round_seen: dict[str, str] = {}  # fingerprint -> id, for this round's not-yet-scored ones
        for k, row in enumerate(rows):
            fp = row["fingerprint"]
            if cfg.dedupe and (fp in self.seen or fp in round_seen):
                row["state"] = CandidateState.DUPLICATE
                if fp in self.seen:  # an earlier round's: its reward is known
                    row["duplicate_of"], row["reward"] = self.seen[fp]
                    row["eps"] = self.eps_of.get(row["duplicate_of"])
                else:
                    row["duplicate_of"] = round_seen[fp]
                continue
            round_seen[fp] = row["id"]
            fresh.append(k)

        variants = self._screen(rows, programs, fresh)
        for row in rows:  # a fingerprint duplicate of this round's gradient duplicate: of its original
            original = rows_by_id.get(row.get("duplicate_of")) if row["state"] == CandidateState.DUPLICATE else None
            if original is not None and original["state"] == CandidateState.DUPLICATE:
                row["duplicate_of"], row["reward"] = original["duplicate_of"], original["reward"]
        moved_to = self._evaluate(rows, variants, programs)

        # Rewards of the duplicates, now that every original has one.
        by_id = {row["id"]: row for row in rows}
        for row in rows:
            if row["state"] == CandidateState.DUPLICATE:
                if row["reward"] is None:
                    original = by_id.get(row["duplicate_of"])
                    row["reward"] = original["reward"] if original else self.reward_of.get(row["duplicate_of"])
                    row.setdefault("eps", original.get("eps") if original else None)
            elif cfg.dedupe and row["fingerprint"] not in self.seen:
                self.seen[row["fingerprint"]] = (row["id"], row["reward"])
                if row.get("eps") is not None:
                    self.eps_of[row["id"]] = row["eps"]

        for row in rows:  # the formula of the function that was scored: with its epsilon
            if row.get("eps") is not None:
                row["formula"] = with_epsilon(row["formula"], row["eps"])
        self.strategy.tell(candidates, [row["reward"] for row in rows])
        trained = {v.row for v in variants if v.trained}
        counts = {"sampled": len(rows), "evaluated": len(trained),
                  "zero_gradient": sum(r["state"] == CandidateState.ZERO_GRADIENT for r in rows),
                  "duplicates": sum(r["state"] == CandidateState.DUPLICATE for r in rows),
                  "accepted": sum(r["accepted"] for r in rows)}
        rejected = sum(r["state"] == CandidateState.REJECTED for r in rows)
        for key, n in counts.items():
            self.totals[key] += n
        if cfg.strict:
            self.totals["rejected"] = self.totals.get("rejected", 0) + rejected
        evaluated = [rows[k] for k in sorted(trained)]
        best_round = max((r["reward"] for r in evaluated), default=None)
        improved = False
        for r in evaluated:
            if self.best_so_far is None or r["reward"] > self.best_so_far:
                self.best_so_far, self.best_id, improved = r["reward"], r["id"], True
        if cfg.reward == "reference":  # the recommender never moves: patience counts rounds without a better loss
            self.stale = 0 if improved else self.stale + 1
        elif self.utility > self.best_utility:
            self.best_utility, self.stale = self.utility, 0
        else:
            self.stale += 1
        self.elapsed += time.perf_counter() - start
        report = RoundReport(self.round, **counts, best_reward=best_round,
                             moved_to=moved_to, validation=self._reported(self.utility), train_metric=self.train_metric,
                             metric=self.metric.name, elapsed=self.elapsed, totals=dict(self.totals),
                             best_so_far=self.best_so_far, best_id=self.best_id)
        info = asdict(report)
        del info["round"]
        committing = time.perf_counter()
        model = self.model.state_dict() if self._model_changed else None
        records = [CandidateRecord(round=self.round, **row) for row in rows]
        self.store.commit_round(self.round, records, info, self._state(), time.time(), model)
        self._model_changed = False
        self._unbooked = time.perf_counter() - committing  # booked to the next round's time
        self.round += 1
        return report

    def _variant_eps(self, program: Program) -> list[float | None]:
        """The smoothing epsilons Phase I tries for a program: the grid when one of its ops uses
        an epsilon, else none (None: the paper's smoothing, which such a program does not use)."""
        grid = self.config.eps_grid
        return list(grid) if grid and program.uses_epsilon else [None]

    def _kernel_eps(self, values: list[float | None]):
        """Epsilons as the kernels take them: None without a grid; else a [K] tensor, the value of a
        program that uses none being irrelevant (its ops ignore epsilon)."""
        if not self.config.eps_grid:
            return None
        fill = self.config.eps_grid[0]
        return torch.tensor([fill if e is None else e for e in values], dtype=torch.float32)

    def _screen(self, rows: list[dict], programs: list[Program], fresh: list[int]) -> list["_Variant"]:
        """The strict check, the proxy test and the gradient memory, per (candidate, epsilon):
        sets the state of every fresh candidate and returns its variants (those to train have
        `trained` set)."""
        cfg = self.config
        variants = [_Variant(k, e) for k in fresh for e in self._variant_eps(programs[k])]
        if not variants:
            return []
        progs = [programs[v.row] for v in variants]
        if cfg.strict:
            check = check_candidates(progs, [v.eps for v in variants], self.clamp, self.check.threshold,
                                     self.check.pairs, strict=True)
            for v, ok, rates, largest in zip(variants, check.passed, check.strict_rates, check.max_gradients):
                v.rejected = not ok
                v.closeness = 0.5 * (rates[0] + rates[1]) if largest <= STRICT_MAX_GRADIENT else 0.0
        kept = [v for v in variants if not v.rejected]
        if cfg.proxy and kept:
            g = self._proxy_g([programs[v.row] for v in kept], self._kernel_eps([v.eps for v in kept]))
            coords = self.memory.coords(g)
            norms = torch.linalg.vector_norm(coords, dim=1)
            for j, v in enumerate(kept):
                if float(norms[j]) < cfg.delta:
                    v.zero = True
                elif self._gradient_duplicates:
                    near, dist = self.memory.nearest(coords[j])
                    if dist < cfg.delta:
                        v.duplicate_of = near
                    else:
                        self.memory.add(coords[j], v.key(rows))
        for v in kept:
            v.trained = not v.zero and v.duplicate_of is None
        for k in fresh:
            mine = [v for v in variants if v.row == k]
            row = rows[k]
            if any(v.trained for v in mine):
                row["state"] = CandidateState.PASSED if cfg.proxy else CandidateState.OFF
            elif any(v.duplicate_of is not None for v in mine):
                near = next(v.duplicate_of for v in mine if v.duplicate_of is not None)
                row["state"], row["duplicate_of"] = CandidateState.DUPLICATE, near.split("@")[0]
                row["reward"] = self.reward_of.get(near)  # None: scored this round, set after training
                row["eps"] = _variant_eps_of(near)
            elif any(v.zero for v in mine):
                row["state"], row["reward"] = CandidateState.ZERO_GRADIENT, cfg.zero_reward
            else:  # graded by how close it came to pushing both labels the right way
                closeness = max(v.closeness for v in mine)
                row["state"], row["reward"] = CandidateState.REJECTED, cfg.zero_reward * (1.0 - closeness)
        return variants

    def _evaluate(self, rows: list[dict], variants: list["_Variant"], programs: list[Program]) -> str | None:
        """Train the variants to train, one epoch each from copies of the recommender (with
        `reward == "reference"`: of the fixed reference state, over the same batch order every
        round), set the candidates' rewards (the best of their variants) and, with the `moving`
        reward, apply reward filtering and move the recommender; returns the id it moved to."""
        cfg = self.config
        todo = [v for v in variants if v.trained]
        if not todo:
            return None
        specs = [from_program(programs[v.row], self.clamp, name=v.key(rows), eps=v.eps) for v in todo]
        # the reference state is the recommender itself, which then never moves
        order = torch.Generator().manual_seed(cfg.seed) if cfg.reward == "reference" else self.order_gen
        scored = self.evaluator.evaluate(self.model, specs, order)
        population, utility, losses = scored.population, scored.utilities, scored.train_losses
        base = self.utility
        for j, v in enumerate(todo):
            u, loss = float(utility[j]), float(losses[j])
            v.slot, v.loss = j, (loss if math.isfinite(loss) else None)
            if math.isfinite(u):
                v.validation, v.reward = self._reported(u), u - base
            else:
                v.reward, v.diverged = cfg.zero_reward, True
        first = self.totals["evaluated"]
        best_slot: dict[int, int] = {}  # row -> slot of its best variant
        count = 0
        for k in sorted({v.row for v in todo}):
            mine = [v for v in todo if v.row == k]
            best = max(mine, key=lambda v: (not v.diverged, v.reward))  # ties: the first (larger) epsilon
            row = rows[k]
            count += 1
            row["evaluation"] = first + count
            row["train_loss"], row["reward"], row["eps"] = best.loss, best.reward, best.eps
            if best.diverged:
                row["note"] = "diverged"
            else:
                row["validation"] = best.validation
            for v in mine:
                self.reward_of[v.key(rows)] = v.reward
            # a diverged copy is never accepted, whatever eta; unfiltered, every other copy is
            row["accepted"] = (cfg.reward == "moving" and row.get("note") is None
                               and (row["reward"] >= -cfg.eta or not cfg.filtering))
            best_slot[k] = best.slot
        accepted = [k for k in best_slot if rows[k]["accepted"]]
        if not accepted:
            return None
        if cfg.filtering:
            chosen = max(accepted, key=lambda k: (rows[k]["reward"], -best_slot[k]))
        else:
            chosen = accepted[int(torch.randint(len(accepted), (1,), generator=self.order_gen))]
        self.model = population.select([best_slot[chosen]])
        self._model_changed = True
        self.utility = float(utility[best_slot[chosen]])
        self.train_metric = self._reported(float(self._utility(self.model, self.dataset.train)[0]))
        self._start_state()
        return rows[chosen]["id"]


@dataclass
class _Variant:
    """One (candidate, epsilon) of a round: how the screening judged it and what training gave."""

    row: int
    eps: float | None
    rejected: bool = False  # fails the strict check
    closeness: float = 0.0  # mean share of pairs pushed the right way (0 with an exploding gradient)
    zero: bool = False  # zero proxy gradient
    duplicate_of: str | None = None  # gradient duplicate of this variant key
    trained: bool = False
    slot: int = -1
    reward: float | None = None
    validation: float | None = None
    loss: float | None = None
    diverged: bool = False

    def key(self, rows: list[dict]) -> str:
        """The variant's name in the gradient memory and the population: the candidate's id,
        with `@eps` when it carries one."""
        cid = rows[self.row]["id"]
        return cid if self.eps is None else f"{cid}@{self.eps:g}"


def _variant_eps_of(key: str) -> float | None:
    return float(key.split("@", 1)[1]) if "@" in key else None
