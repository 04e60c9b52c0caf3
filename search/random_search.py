"""Random search: the floor every strategy must beat.

A program is drawn decision by decision, each uniformly: a length in 1..max_steps, then per step
an op from the op set, an operand among the slots already written and, for a binary op, a second
operand distinct from the first. The candidate carries the canonical form (dead steps dropped,
identical subtrees shared), like every strategy's output. `tell` learns nothing; seeded
candidates are only checked (and, with `novelty` on, remembered).

With `novelty` on, a drawn program whose canonical key is known (proposed before, earlier in the
same batch, or told) is redrawn, up to `NOVELTY_ATTEMPTS` times; the last draw is kept even if
known. ``metadata["novelty_attempts"]`` counts the redraws, ``metadata["novel"]`` says whether
the proposal was new.

(The module is not called ``random`` so that it never shadows the standard library module.)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from lossgen.ir.opset import N_INPUT_SLOTS
from lossgen.search.base import (
    NOVELTY_ATTEMPTS,
    Candidate,
    StrategyConfig,
    canonical_from_steps,
    check_n,
    check_program_fits,
    check_tell_args,
    check_strategy_state,
    load_memory,
    memory_state,
    new_memory,
    program_key,
    python_rng_state,
    remember_told,
)


@dataclass
class RandomConfig(StrategyConfig):
    """Only the shared settings: max_steps (7), op_set ("paper") and novelty (off)."""


def sample_steps(rng: random.Random, ops, n_steps: int) -> list[tuple[int, int, int]]:
    """One uniformly drawn straight-line program of exactly `n_steps` steps."""
    steps = []
    for t in range(n_steps):
        op = ops[rng.randrange(len(ops))]
        written = N_INPUT_SLOTS + t
        a = rng.randrange(written)
        b = 0
        if op.arity == 2:
            b = rng.randrange(written - 1)
            b += b >= a  # uniform over the written slots other than a
        steps.append((int(op), a, b))
    return steps


class RandomSearch:
    name = "random"

    def __init__(self, config: RandomConfig | None = None, seed: int = 0):
        self.config = config or RandomConfig()
        self.config.check()
        self._ops = self.config.ops()
        self._rng = random.Random(seed)
        self._counter = 0
        self._memory = new_memory(self.config)

    def _draw(self):
        length = self._rng.randint(1, self.config.max_steps)
        program = canonical_from_steps(sample_steps(self._rng, self._ops, length))
        return program, program_key(program, canonical=True), length

    def ask(self, n: int) -> list[Candidate]:
        out = []
        memory = self._memory
        for _ in range(check_n(n)):
            program, key, length = self._draw()
            metadata = {"sampled_steps": length}
            if memory is not None:
                attempts = 0
                while key in memory and attempts < NOVELTY_ATTEMPTS:
                    program, key, length = self._draw()
                    attempts += 1
                metadata = {"sampled_steps": length, "novelty_attempts": attempts, "novel": memory.add(key)}
            out.append(Candidate(program, f"random-{self._counter:07d}-{key}", self.name, metadata))
            self._counter += 1
        return out

    def tell(self, candidates: Sequence[Candidate], rewards: Sequence[float]) -> None:
        check_tell_args(candidates, rewards)
        for cand in candidates:
            check_program_fits(cand.program.canonical(), self._ops, self.config.max_steps)
        remember_told(self._memory, candidates, self.name)

    def state_dict(self) -> dict:
        return memory_state(self._memory, {"strategy": self.name, "rng": self._rng.getstate(), "counter": self._counter})

    def load_state_dict(self, state: dict) -> None:
        check_strategy_state(state, self.name)
        self._rng.setstate(python_rng_state(state["rng"]))
        self._counter = int(state["counter"])
        self._memory = load_memory(self._memory, state)
