"""The strategy interface shared by every search strategy (DESIGN.md, "Search strategies").

A strategy proposes `Candidate` programs with `ask` and learns from rewards with `tell`; it never
trains or evaluates anything, so the shared pipeline scores every strategy the same way.

Candidate ids are ``"<strategy>-<counter>-<key>"``: the counter is part of the strategy's state,
so a strategy restored from `state_dict` hands out the very ids the original would have, and
the key (a hash of the canonical program) makes equal losses recognisable at a glance.
Candidates built with `Candidate.seed` (known losses told without being asked) get
``"seed-<key>"``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

from lossgen.opset import N_INPUT_SLOTS, Op, resolve_op_set
from lossgen.programs import DEFAULT_MAX_STEPS, Expr, Program, lower

_OPS = tuple(Op)
_TERMINALS = tuple(Expr.terminal(s) for s in range(N_INPUT_SLOTS))


def program_key(program: Program, canonical: bool = False) -> str:
    """12 hex digits identifying a program's canonical form (stable across processes);
    `canonical=True` promises `program` is canonical already and skips re-lowering it."""
    steps = program.steps if canonical else program.canonical().steps
    text = ";".join(f"{op},{a},{b}" for op, a, b in steps)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def canonical_from_steps(steps) -> Program:
    """`Program(steps).canonical()` for steps a strategy drew valid by construction, without
    validating the raw steps first (sampling is hot; `lower` validates what it emits)."""
    nodes = list(_TERMINALS)
    for op, a, b in steps:
        op = _OPS[op]
        nodes.append(Expr(op, (nodes[a], nodes[b]) if op <= Op.MIN else (nodes[a],)))
    return lower(nodes[-1])


@dataclass(frozen=True)
class Candidate:
    """One proposed loss: the program, a stable id, who proposed it and how (metadata)."""

    program: Program
    id: str
    strategy: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        return program_key(self.program)

    @staticmethod
    def seed(program: Program, **metadata: Any) -> "Candidate":
        """A candidate no strategy asked for (e.g. MSE or BCE's nearest program), for `tell`."""
        return Candidate(program, f"seed-{program_key(program)}", "seed", dict(metadata))


@runtime_checkable
class SearchStrategy(Protocol):
    name: str

    def ask(self, n: int) -> list[Candidate]: ...

    def tell(self, candidates: Sequence[Candidate], rewards: Sequence[float]) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class StrategyConfig:
    """Settings every strategy shares: the step budget and the operator set (Table 2 default)."""

    max_steps: int = DEFAULT_MAX_STEPS
    op_set: str | tuple = "paper"

    def ops(self) -> tuple[Op, ...]:
        return resolve_op_set(self.op_set)

    def check(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}")
        self.ops()


def check_tell_args(candidates: Sequence[Candidate], rewards: Sequence[float]) -> list[float]:
    if len(candidates) != len(rewards):
        raise ValueError(f"tell got {len(candidates)} candidates but {len(rewards)} rewards")
    values = [float(r) for r in rewards]
    for cand, r in zip(candidates, values):
        if r != r:
            raise ValueError(f"reward of candidate {cand.id} is NaN")
    return values


def check_program_fits(program: Program, ops: Sequence[Op], max_steps: int) -> None:
    """A told program must be expressible by the strategy: known ops, within the step budget."""
    program.validate(max_steps)
    foreign = program.ops() - set(ops)
    if foreign:
        names = ", ".join(sorted(op.pretty for op in foreign))
        raise ValueError(f"program {program} uses ops outside the strategy's op set: {names}")


def check_n(n: int) -> int:
    if int(n) != n or n < 0:
        raise ValueError(f"ask needs a non-negative integer n, got {n!r}")
    return int(n)


def check_strategy_state(state: dict, name: str) -> None:
    if state.get("strategy") != name:
        raise ValueError(f"state is for strategy {state.get('strategy')!r}, not {name!r}")


def python_rng_state(value):
    """A `random.Random` state that went through JSON comes back as nested lists; setstate
    needs the tuples back."""
    if isinstance(value, list):
        return tuple(python_rng_state(v) for v in value)
    return value
