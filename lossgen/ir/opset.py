"""Operator codes, arities and clamp modes of the loss IR (DESIGN.md, "The loss program").

The codes are fixed: they are what the compiled kernels switch on, so this table and
``csrc/op_math.h`` must agree (a test checks the names and arities against the extension).
"""

from __future__ import annotations

import enum

XI = 1e-6
"""Smoothing constant of Log, Reciprocal and Sqrt, and the paper's lower clamp bound."""

EXP_INPUT_MAX = 80.0
"""Exp reads min(x, 80): exp(80) is finite in float32 and already far beyond every clamp bound,
so the result and its derivative never become inf (an inf times a zero gradient would be NaN)."""

N_INPUT_SLOTS = 3
"""Slots 0, 1, 2 hold y_hat, y and the constant 1."""

INPUT_NAMES = ("y_hat", "y", "1")


class Op(enum.IntEnum):
    ADD = 0
    MUL = 1
    MAX = 2
    MIN = 3
    NEG = 4
    IDENTITY = 5
    LOG = 6
    SQUARE = 7
    RECIPROCAL = 8
    SIGMOID = 9
    TANH = 10
    RELU = 11
    ABS = 12
    SQRT = 13
    EXP = 14

    @property
    def arity(self) -> int:
        return 2 if self <= Op.MIN else 1

    @property
    def pretty(self) -> str:
        """The op's name as the paper and DESIGN.md write it (Add, Reciprocal, ReLU, ...)."""
        return _PRETTY[self]


_PRETTY = {
    Op.ADD: "Add", Op.MUL: "Mul", Op.MAX: "Max", Op.MIN: "Min", Op.NEG: "Neg",
    Op.IDENTITY: "Identity", Op.LOG: "Log", Op.SQUARE: "Square", Op.RECIPROCAL: "Reciprocal",
    Op.SIGMOID: "Sigmoid", Op.TANH: "Tanh", Op.RELU: "ReLU", Op.ABS: "Abs", Op.SQRT: "Sqrt",
    Op.EXP: "Exp",
}

N_OPS = len(Op)

PAPER_OPS: tuple[Op, ...] = tuple(Op(c) for c in range(9))
"""Table 2 of the paper: the default operator set of every strategy."""

EXTENDED_OPS: tuple[Op, ...] = tuple(Op)
"""Table 2 plus Sigmoid, Tanh, ReLU, Abs, Sqrt and Exp."""

OP_SETS = {"paper": PAPER_OPS, "extended": EXTENDED_OPS}


def resolve_op_set(name_or_ops) -> tuple[Op, ...]:
    """`"paper"`, `"extended"`, or an iterable of op names/codes -> a tuple of Op."""
    if isinstance(name_or_ops, str):
        if name_or_ops in OP_SETS:
            return OP_SETS[name_or_ops]
        name_or_ops = [s.strip() for s in name_or_ops.split(",") if s.strip()]
    ops = []
    for item in name_or_ops:
        ops.append(parse_op(item))
    if not ops:
        raise ValueError("op set is empty")
    return tuple(dict.fromkeys(ops))


def parse_op(item) -> Op:
    if isinstance(item, Op):
        return item
    if isinstance(item, int):
        if not 0 <= item < N_OPS:
            raise ValueError(f"op code {item} out of range 0..{N_OPS - 1}")
        return Op(item)
    key = str(item).strip().lower()
    for op in Op:
        if key in (op.name.lower(), op.pretty.lower()):
            return op
    raise ValueError(f"unknown op {item!r}; known: {', '.join(o.pretty for o in Op)}")


class Clamp(enum.IntEnum):
    """How every op result is clamped; the integer is what the kernels receive."""

    PAPER = 0  # [xi, 1/xi], Table 2 of the paper
    OFFICIAL = 1  # [1e-5, 1e5], the authors' released code
    SYMMETRIC = 2  # [-1/xi, 1/xi]: sign kept, magnitude at most 1/xi


CLAMP_BOUNDS = {
    Clamp.PAPER: (XI, 1.0 / XI),
    Clamp.OFFICIAL: (1e-5, 1e5),
    Clamp.SYMMETRIC: (-1.0 / XI, 1.0 / XI),
}


def parse_clamp(clamp) -> Clamp:
    if isinstance(clamp, Clamp):
        return clamp
    if isinstance(clamp, str):
        try:
            return Clamp[clamp.strip().upper()]
        except KeyError:
            pass
    raise ValueError(f"unknown clamp mode {clamp!r}; choose paper, official or symmetric")
