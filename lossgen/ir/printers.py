r"""Infix strings and LaTeX of loss trees and programs (the grammar is in `lossgen.ir.formula`).

`to_infix` prints the fewest parentheses that parse back to the same tree, so
``parse(to_infix(p)) == p.canonical()`` and ``to_infix(parse(s)) == s`` for a canonical ``s``.

A loss that carries a smoothing epsilon e (DESIGN.md: Log, Reciprocal and Sqrt use e in place of
xi, with sign(0) = +1) is written with a suffix: ``max(y_hat * (1 / y), y * (1 / y_hat)) with e =
0.01`` (`with_epsilon`; `lossgen.ir.formula.parse_loss` reads it back), and in LaTeX with
``\quad (\epsilon = 0.01)``: the function reported is the function trained.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from lossgen.ir.expr import Expr
from lossgen.ir.opset import INPUT_NAMES, Op

if TYPE_CHECKING:  # annotations only: programs imports this module
    from lossgen.ir.programs import Program

# Precedence levels used by the printer (higher binds tighter).
_SUM, _PRODUCT, _UNARY, _POWER, _ATOM = 1, 2, 3, 4, 5

FUNCTION_NAMES = {
    Op.MAX: "max", Op.MIN: "min", Op.IDENTITY: "identity", Op.LOG: "log", Op.SIGMOID: "sigmoid",
    Op.TANH: "tanh", Op.RELU: "relu", Op.ABS: "abs", Op.SQRT: "sqrt", Op.EXP: "exp",
}


def _as_expr(program_or_expr) -> Expr:
    """A Program's tree (duck-typed: the printers sit below `programs`, which uses them for str())."""
    return program_or_expr if isinstance(program_or_expr, Expr) else program_or_expr.to_expr()


# ----------------------------------------------------------------------------- infix printing


def to_infix(program_or_expr: "Program | Expr") -> str:
    text, _ = _infix(_as_expr(program_or_expr))
    return text


def _wrap(part: tuple[str, int], need: int) -> str:
    text, level = part
    return text if level >= need else f"({text})"


def _infix(e: Expr) -> tuple[str, int]:
    if e.is_terminal:
        return INPUT_NAMES[e.slot], _ATOM
    op, kids = e.op, e.children
    if op in FUNCTION_NAMES:
        args = ", ".join(_infix(k)[0] for k in kids)
        return f"{FUNCTION_NAMES[op]}({args})", _ATOM
    if op == Op.ADD:
        left = _wrap(_infix(kids[0]), _SUM)
        right = kids[1]
        if right.op == Op.NEG:  # a + Neg(c) prints as a - c
            return f"{left} - {_wrap(_infix(right.children[0]), _PRODUCT)}", _SUM
        return f"{left} + {_wrap(_infix(right), _PRODUCT)}", _SUM
    if op == Op.MUL:
        return f"{_wrap(_infix(kids[0]), _PRODUCT)} * {_wrap(_infix(kids[1]), _UNARY)}", _PRODUCT
    if op == Op.RECIPROCAL:
        return f"1 / {_wrap(_infix(kids[0]), _UNARY)}", _PRODUCT
    if op == Op.NEG:
        inner = _infix(kids[0])
        # "--x" would read as a typo; a nested negation keeps its parentheses.
        need = _ATOM if kids[0].op == Op.NEG else _UNARY
        return f"-{_wrap(inner, need)}", _UNARY
    if op == Op.SQUARE:
        return f"{_wrap(_infix(kids[0]), _ATOM)}^2", _POWER
    raise AssertionError(f"no infix form for {op!r}")


# ----------------------------------------------------------------------------- LaTeX


_LATEX_TERMINALS = (r"\hat{y}", "y", "1")
_LATEX_FUNCTIONS = {
    Op.MAX: r"\max", Op.MIN: r"\min", Op.IDENTITY: r"\operatorname{id}", Op.LOG: r"\log",
    Op.SIGMOID: r"\sigma", Op.TANH: r"\tanh", Op.RELU: r"\operatorname{ReLU}",
}


def to_latex(program_or_expr: "Program | Expr") -> str:
    """LaTeX of the loss, with the same grouping as the infix form."""
    text, _ = _latex(_as_expr(program_or_expr))
    return text


def _lwrap(part: tuple[str, int], need: int) -> str:
    text, level = part
    return text if level >= need else rf"\left({text}\right)"


def _latex(e: Expr) -> tuple[str, int]:
    if e.is_terminal:
        return _LATEX_TERMINALS[e.slot], _ATOM
    op, kids = e.op, e.children
    if op in _LATEX_FUNCTIONS:
        args = ", ".join(_latex(k)[0] for k in kids)
        return rf"{_LATEX_FUNCTIONS[op]}\left({args}\right)", _ATOM
    if op == Op.ABS:
        return rf"\left|{_latex(kids[0])[0]}\right|", _ATOM
    if op == Op.SQRT:
        return rf"\sqrt{{{_latex(kids[0])[0]}}}", _ATOM
    if op == Op.EXP:
        return rf"e^{{{_latex(kids[0])[0]}}}", _POWER
    if op == Op.RECIPROCAL:
        return rf"\frac{{1}}{{{_latex(kids[0])[0]}}}", _ATOM
    if op == Op.ADD:
        left = _lwrap(_latex(kids[0]), _SUM)
        right = kids[1]
        if right.op == Op.NEG:
            return f"{left} - {_lwrap(_latex(right.children[0]), _PRODUCT)}", _SUM
        return f"{left} + {_lwrap(_latex(right), _PRODUCT)}", _SUM
    if op == Op.MUL:
        return rf"{_lwrap(_latex(kids[0]), _PRODUCT)} \cdot {_lwrap(_latex(kids[1]), _UNARY)}", _PRODUCT
    if op == Op.NEG:
        need = _ATOM if kids[0].op == Op.NEG else _UNARY
        return f"-{_lwrap(_latex(kids[0]), need)}", _UNARY
    if op == Op.SQUARE:
        return f"{_lwrap(_latex(kids[0]), _ATOM)}^{{2}}", _POWER
    raise AssertionError(f"no LaTeX form for {op!r}")


def epsilon_text(eps: float) -> str:
    """e as formulas print it: the shortest decimal that reads back to the same float32."""
    target = struct.unpack("f", struct.pack("f", float(eps)))[0]
    for digits in range(1, 10):
        text = f"{eps:.{digits}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == target:
            return text
    return repr(float(eps))


def with_epsilon(text: str, eps: float | None) -> str:
    """A formula with its smoothing epsilon (unchanged when `eps` is None: the paper's xi)."""
    return text if eps is None else f"{text} with e = {epsilon_text(eps)}"


def latex_with_epsilon(latex: str, eps: float | None) -> str:
    return latex if eps is None else rf"{latex} \quad (\epsilon = {epsilon_text(eps)})"
