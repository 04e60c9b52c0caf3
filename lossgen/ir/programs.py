"""The loss IR: straight-line programs over the variable set S (DESIGN.md, "The loss program").

A `Program` is a tuple of steps ``(op, a, b)``; step t writes slot ``3 + t``. Slots 0, 1, 2 are
y_hat, y and 1. The loss is the last slot written. Unary ops ignore ``b`` (stored as 0).

An `Expr` is the same loss as a tree (what the infix string shows and what genetic programming
manipulates). `Program.to_expr` and `lower` convert between them. Lowering shares identical
subtrees (so common trees fit the step budget) except where sharing would give a binary op two
equal operands, which the IR forbids; the result is the *canonical* program of the tree, and
``lower(p.to_expr()) == p.canonical()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

from lossgen.ir.expr import Expr
from lossgen.ir.opset import N_INPUT_SLOTS, N_OPS, Op
from lossgen.ir.printers import to_infix

DEFAULT_MAX_STEPS = 7
EPSILON_OPS = frozenset({Op.LOG, Op.RECIPROCAL, Op.SQRT})  # the ops that use a candidate's epsilon
_ARITY = tuple(op.arity for op in Op)  # by code: avoids an enum lookup per step on hot paths


@dataclass(frozen=True)
class Program:
    """A straight-line loss program; immutable and hashable."""

    steps: tuple[tuple[int, int, int], ...]

    def __init__(self, steps: Iterable[Sequence[int]]):
        normalized = []
        for row in steps:
            if len(row) != 3:
                raise ValueError(f"a step is (op, a, b), got {tuple(row)!r}")
            op, a, b = int(row[0]), int(row[1]), int(row[2])
            if 0 <= op < N_OPS and _ARITY[op] == 1:
                b = 0
            normalized.append((op, a, b))
        object.__setattr__(self, "steps", tuple(normalized))
        self.validate()

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def output_slot(self) -> int:
        return N_INPUT_SLOTS + len(self.steps) - 1

    def validate(self, max_steps: int | None = None) -> "Program":
        """Raise ValueError naming the first problem; return self when valid."""
        if not self.steps:
            raise ValueError("a program needs at least one step")
        if max_steps is not None and len(self.steps) > max_steps:
            raise ValueError(f"program has {len(self.steps)} steps, more than max_steps={max_steps}")
        for t, (op, a, b) in enumerate(self.steps):
            check_step(t, op, a, b)
        return self

    def ops(self) -> set[Op]:
        return {Op(op) for op, _, _ in self.steps}

    @property
    def uses_epsilon(self) -> bool:
        """Whether a step that reaches the output is Log, Reciprocal or Sqrt: the ops whose
        smoothing epsilon changes the loss (DESIGN.md "Loss IR")."""
        return bool(self.canonical().ops() & EPSILON_OPS)

    def to_expr(self) -> Expr:
        """The tree that computes the output slot (steps that do not reach it are dropped)."""
        nodes: list[Expr] = [Expr.terminal(s) for s in range(N_INPUT_SLOTS)]
        for op, a, b in self.steps:
            op = Op(op)
            kids = (nodes[a],) if op.arity == 1 else (nodes[a], nodes[b])
            nodes.append(Expr(op, kids))
        return nodes[-1]

    def canonical(self) -> "Program":
        """Dead steps removed, identical subtrees shared, steps in left-first post-order."""
        return lower(self.to_expr())

    def padded(self, length: int) -> "Program":
        """Pad to `length` steps with Identity(previous slot), which leaves the loss unchanged:
        the previous slot is an op result, already clamped, and clamping is idempotent."""
        if length < len(self.steps):
            raise ValueError(f"cannot pad a {len(self.steps)}-step program to {length} steps")
        steps = list(self.steps)
        while len(steps) < length:
            steps.append((int(Op.IDENTITY), N_INPUT_SLOTS + len(steps) - 1, 0))
        return Program(steps)

    def unpadded(self) -> "Program":
        """Drop trailing Identity(previous slot) steps (the padding `padded` adds)."""
        steps = list(self.steps)
        while len(steps) > 1:
            op, a, _ = steps[-1]
            if op != Op.IDENTITY or a != N_INPUT_SLOTS + len(steps) - 2:
                break
            steps.pop()
        return Program(steps)

    def to_tensor(self, length: int | None = None) -> torch.Tensor:
        """int32 ``[L, 3]``, padded to `length` steps when given."""
        prog = self if length is None else self.padded(length)
        return torch.tensor(prog.steps, dtype=torch.int32).reshape(len(prog.steps), 3)

    @staticmethod
    def from_tensor(rows: torch.Tensor) -> "Program":
        """From an int ``[L, 3]`` tensor (padding kept; see `unpadded`)."""
        if rows.dim() != 2 or rows.shape[1] != 3:
            raise ValueError(f"a program tensor has shape [L, 3], got {list(rows.shape)}")
        return Program(rows.tolist())

    def __str__(self) -> str:
        return to_infix(self)


def check_step(t: int, op: int, a: int, b: int) -> None:
    """Validate step t of a program (the same rules the compiled kernels enforce)."""
    if not 0 <= op < N_OPS:
        raise ValueError(f"step {t}: op code {op} out of range 0..{N_OPS - 1}")
    written = N_INPUT_SLOTS + t
    if not 0 <= a < written:
        raise ValueError(f"step {t}: operand a={a} is not yet written (slots 0..{written - 1})")
    if _ARITY[op] == 2:
        if not 0 <= b < written:
            raise ValueError(f"step {t}: operand b={b} is not yet written (slots 0..{written - 1})")
        if a == b:
            raise ValueError(f"step {t}: binary op {Op(op).pretty} needs distinct operands, got a = b = {a}")


def lower(expr: Expr) -> Program:
    """Compile a tree to its canonical program (see the module docstring)."""
    if expr.is_terminal:
        # A bare input is not a program; Identity makes it one (and clamps it, as every op does).
        expr = Expr(Op.IDENTITY, (expr,))
    steps: list[tuple[int, int, int]] = []
    memo: dict[Expr, int] = {}

    def emit(node: Expr, share: bool = True) -> int:
        if node.is_terminal:
            return node.slot
        if share and node in memo:
            return memo[node]
        kids = [emit(c) for c in node.children]
        if len(kids) == 2 and kids[0] == kids[1]:
            # Equal operands are not allowed: give the right operand its own copy.
            kids[1] = emit(node.children[1], share=False)
            if kids[0] == kids[1]:  # both are the same terminal: no copy can separate them
                raise ValueError(f"{node.op.pretty} of an input with itself has equal operands")
        steps.append((int(node.op), kids[0], kids[1] if len(kids) == 2 else 0))
        slot = N_INPUT_SLOTS + len(steps) - 1
        memo.setdefault(node, slot)
        return slot

    emit(expr)
    return Program(steps)


def batch(programs: Sequence[Program], length: int | None = None) -> torch.Tensor:
    """Stack programs into int32 ``[K, L, 3]``, padding each to the longest (or `length`)."""
    if not programs:
        raise ValueError("cannot batch an empty list of programs")
    longest = max(len(p) for p in programs)
    length = longest if length is None else length
    if length < longest:
        raise ValueError(f"length {length} is shorter than the longest program ({longest} steps)")
    rows = [p.padded(length).steps for p in programs]
    return torch.tensor(rows, dtype=torch.int32).reshape(len(programs), length, 3)


def unbatch(programs: torch.Tensor) -> list[Program]:
    """Inverse of `batch` (padding removed)."""
    if programs.dim() != 3 or programs.shape[2] != 3:
        raise ValueError(f"programs tensor has shape [K, L, 3], got {list(programs.shape)}")
    return [Program(rows).unpadded() for rows in programs.tolist()]
