"""The strategy interface shared by every search strategy (DESIGN.md, "Search strategies").

A strategy proposes `Candidate` programs with `ask` and learns from rewards with `tell`; it never
trains or evaluates anything, so the shared pipeline scores every strategy the same way.

Candidate ids are ``"<strategy>-<counter>-<key>"``: the counter is part of the strategy's state,
so a strategy restored from `state_dict` hands out the very ids the original would have, and
the key (a hash of the canonical program) makes equal losses recognisable at a glance.
Candidates built with `Candidate.seed` (known losses told without being asked) get
``"seed-<key>"``.

Novelty (``StrategyConfig.novelty``, off by default): a strategy remembers the key of every
program it has proposed or been told (`ProposalMemory`, part of its state) and avoids proposing a
known one again, each strategy in its own way and within a bounded effort, after which it accepts
a known program rather than propose fewer. With the option off nothing is remembered and the
proposals are exactly those of a strategy without it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

from lossgen.ir.opset import N_INPUT_SLOTS, Op, resolve_op_set
from lossgen.ir.programs import DEFAULT_MAX_STEPS, Program

# With novelty on: how many more tries evolution makes for a known offspring (new offspring, then
# mutations of the last one) and random search makes for a known program (redraws) before it
# settles for something known.
NOVELTY_ATTEMPTS = 20


def program_key(program: Program, canonical: bool = False) -> str:
    """12 hex digits identifying a program's canonical form (stable across processes);
    `canonical=True` promises `program` is canonical already and skips re-lowering it."""
    steps = program.steps if canonical else program.canonical().steps
    text = ";".join(f"{op},{a},{b}" for op, a, b in steps)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


class Dag:
    """Hash-consed loss DAG on integer node ids: equal ids <=> equal subtrees. Ids 0..2 are the
    inputs y_hat, y, 1. `program` emits the canonical program of a node exactly as
    `lossgen.ir.programs.lower` does for the equivalent `Expr` tree (left-first post-order, each node
    computed once and reused, except that a binary op whose operands would be the same slot gets
    a fresh copy of its right operand, its children still shared), without building or hashing
    trees: strategies canonicalise every candidate they propose, so this is their hot path.
    Tests check equality with `Program.canonical` and `lower`."""

    def __init__(self):
        self.ops: list[int] = [-1] * N_INPUT_SLOTS
        self.children: list[tuple[int, ...]] = [()] * N_INPUT_SLOTS
        self._interned: dict[tuple[int, ...], int] = {}

    def node(self, op: int, kids: tuple[int, ...]) -> int:
        key = (op,) + kids
        found = self._interned.get(key)
        if found is None:
            found = self._interned[key] = len(self.ops)
            self.ops.append(op)
            self.children.append(kids)
        return found

    def program(self, root: int) -> Program:
        if root < N_INPUT_SLOTS:  # a bare input is not a program: Identity makes it one
            root = self.node(int(Op.IDENTITY), (root,))
        ops, children = self.ops, self.children
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
                    raise ValueError(f"{Op(ops[node]).pretty} of an input with itself has equal operands")
            out.append((ops[node], kids[0], kids[1] if len(kids) == 2 else 0))
            slot_of.setdefault(node, N_INPUT_SLOTS + len(out) - 1)
            return N_INPUT_SLOTS + len(out) - 1

        emit(root)
        return Program(out)


def canonical_from_steps(steps) -> Program:
    """`Program(steps).canonical()` for steps a strategy drew valid by construction (not
    re-validated; `Program` validates what comes out)."""
    dag = Dag()
    node_of = list(range(N_INPUT_SLOTS))  # slot -> node id
    for op, a, b in steps:
        node_of.append(dag.node(op, (node_of[a], node_of[b]) if op <= Op.MIN else (node_of[a],)))
    return dag.program(node_of[-1])


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
    """Settings every strategy shares: the step budget, the operator set (Table 2 default) and
    whether to avoid proposing known programs (`novelty`, module docstring)."""

    max_steps: int = DEFAULT_MAX_STEPS
    op_set: str | tuple = "paper"
    # Avoid proposing programs already proposed or told (module docstring). Keyword-only, so the
    # strategies' own fields keep their positions.
    novelty: bool = field(default=False, kw_only=True)

    def ops(self) -> tuple[Op, ...]:
        return resolve_op_set(self.op_set)

    def check(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}")
        if not isinstance(self.novelty, bool):
            raise ValueError(f"novelty must be a bool (True or False), got {self.novelty!r}")
        self.ops()


class ProposalMemory:
    """The canonical program keys (`program_key`) a strategy has proposed or been told, for the
    `novelty` option. A key is 12 hex digits, i.e. 48 bits: the memory holds them as a set of
    ints for lookups and an insertion-ordered log of their 6-byte encodings, so that `state` is
    one copy of the log (base64 text, 8 characters per key: fine for torch.save and JSON alike;
    100k keys are 800 kB) and a restored memory equals the original, order included."""

    __slots__ = ("_known", "_log")

    def __init__(self, state: str = ""):
        self._known: set[int] = set()
        self._log = bytearray()
        if state:
            self.load(state)

    def __len__(self) -> int:
        return len(self._known)

    def __contains__(self, key: str) -> bool:
        return int(key, 16) in self._known

    def add(self, key: str) -> bool:
        """Remember `key`; True when it was new."""
        value = int(key, 16)
        if value in self._known:
            return False
        self._known.add(value)
        self._log += value.to_bytes(6, "big")
        return True

    def state(self) -> str:
        return base64.b64encode(self._log).decode("ascii")

    def load(self, state: str) -> None:
        raw = base64.b64decode(state, validate=True)
        if len(raw) % 6:
            raise ValueError(f"a novelty memory state holds 6 bytes per key, got {len(raw)} bytes")
        self._log = bytearray(raw)
        self._known = {int.from_bytes(raw[i:i + 6], "big") for i in range(0, len(raw), 6)}


def new_memory(config: StrategyConfig) -> ProposalMemory | None:
    """The strategy's novelty memory: None when the option is off."""
    return ProposalMemory() if config.novelty else None


def remember_told(memory: ProposalMemory | None, candidates: Sequence[Candidate], own: str) -> None:
    """Add told candidates to the memory (asked or not); the strategy named `own` emits
    canonical programs, so only the others' are canonicalised."""
    if memory is not None:
        for cand in candidates:
            memory.add(program_key(cand.program, canonical=cand.strategy == own))


def memory_state(memory: ProposalMemory | None, state: dict) -> dict:
    """`state` with the memory's entry (unchanged when novelty is off)."""
    if memory is not None:
        state["novelty_keys"] = memory.state()
    return state


def load_memory(memory: ProposalMemory | None, state: dict) -> ProposalMemory | None:
    """The memory restored from a strategy state (empty if the state has none)."""
    return None if memory is None else ProposalMemory(state.get("novelty_keys", ""))


def check_tell_args(candidates: Sequence[Candidate], rewards: Sequence[float]) -> list[float]:
    if len(candidates) != len(rewards):
        raise ValueError(f"tell got {len(candidates)} candidates but {len(rewards)} rewards")
    values = [float(r) for r in rewards]
    for cand, r in zip(candidates, values):
        if r != r:
            raise ValueError(f"reward of candidate {cand.id} is NaN")
    return values


def check_program_fits(program: Program, ops: Sequence[Op], max_steps: int) -> None:
    """A told program must be expressible by the strategy: known ops, within the step budget.
    (A `Program` is validated when it is built and immutable, so its steps are not re-checked.)"""
    if len(program) > max_steps:
        raise ValueError(f"program {program} has {len(program)} steps, more than max_steps={max_steps}")
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
