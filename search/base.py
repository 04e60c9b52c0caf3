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
from lossgen.programs import DEFAULT_MAX_STEPS, Program



def program_key(program: Program, canonical: bool = False) -> str:
    """12 hex digits identifying a program's canonical form (stable across processes);
    `canonical=True` promises `program` is canonical already and skips re-lowering it."""
    steps = program.steps if canonical else program.canonical().steps
    text = ";".join(f"{op},{a},{b}" for op, a, b in steps)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def canonical_from_steps(steps) -> Program:
    """`Program(steps).canonical()` for steps a strategy drew valid by construction, computed on
    integer node ids instead of `Expr` trees (sampling is hot: this is about 3x faster).

    Each slot gets a hash-consed node id: equal ids <=> equal subtrees. Emission then follows
    `lossgen.programs.lower` exactly: left-first post-order, a node computed once and reused,
    except that a binary op whose operands would be the same slot gets a fresh copy of its
    right operand (its children still shared). A test checks equality with `canonical()`."""
    node_of: list[int] = [0, 1, 2]  # slot -> node id; ids 0..2 are the inputs themselves
    children: list[tuple] = [(), (), ()]
    ops: list[int] = [-1, -1, -1]
    interned: dict[tuple, int] = {}
    for op, a, b in steps:
        kids = (node_of[a], node_of[b]) if op <= Op.MIN else (node_of[a],)
        key = (op,) + kids
        node = interned.get(key)
        if node is None:
            node = interned[key] = len(ops)
            ops.append(op)
            children.append(kids)
        node_of.append(node)

    out: list[tuple[int, int, int]] = []
    slot_of: dict[int, int] = {}

    def emit(node: int, share: bool = True) -> int:
        if node < N_INPUT_SLOTS:
            return node
        if share and node in slot_of:
            return slot_of[node]
        kids = [emit(k) for k in children[node]]
        if len(kids) == 2 and kids[0] == kids[1]:
            kids[1] = emit(children[node][1], share=False)
            if kids[0] == kids[1]:
                raise ValueError("a binary op over one input twice has equal operands")
        out.append((ops[node], kids[0], kids[1] if len(kids) == 2 else 0))
        slot_of.setdefault(node, N_INPUT_SLOTS + len(out) - 1)
        return N_INPUT_SLOTS + len(out) - 1

    emit(node_of[-1])
    return Program(out)


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
