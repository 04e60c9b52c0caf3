"""A loss as a tree (`Expr`): what the infix and LaTeX printers show and what genetic programming
manipulates. `lossgen.ir.programs` lowers trees to the straight-line IR and back."""

from __future__ import annotations

from dataclasses import dataclass

from lossgen.ir.opset import N_INPUT_SLOTS, Op


@dataclass(frozen=True)
class Expr:
    """A loss as a tree: a terminal (``op is None``, ``slot`` in 0..2) or an op over children."""

    op: Op | None
    children: tuple["Expr", ...] = ()
    slot: int = -1

    @staticmethod
    def terminal(slot: int) -> "Expr":
        if slot not in range(N_INPUT_SLOTS):
            raise ValueError(f"terminal slot must be 0 (y_hat), 1 (y) or 2 (1), got {slot}")
        return Expr(None, (), slot)

    @staticmethod
    def apply(op: Op | int, *children: "Expr") -> "Expr":
        op = Op(op)
        if len(children) != op.arity:
            raise ValueError(f"{op.pretty} takes {op.arity} operand(s), got {len(children)}")
        return Expr(op, tuple(children))

    @property
    def is_terminal(self) -> bool:
        return self.op is None

    def size(self) -> int:
        """Number of op nodes (terminals excluded)."""
        if self.is_terminal:
            return 0
        return 1 + sum(c.size() for c in self.children)


Y_HAT = Expr.terminal(0)
Y = Expr.terminal(1)
ONE = Expr.terminal(2)
