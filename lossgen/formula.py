"""Infix strings and LaTeX for loss programs, and the parser from infix back to the IR.

Canonical infix grammar (lowest to highest precedence; binary operators are left-associative):

    sum     := product (("+" | "-") product)*      a - b  is  Add(a, Neg(b))
    product := unary (("*" | "/") unary)*          1 / x  is  Reciprocal(x);  a / b  is  a * (1 / b)
    unary   := "-" unary | power                   -x     is  Neg(x)
    power   := atom ("^" "2")*                     x^2    is  Square(x)
    atom    := "y_hat" | "y" | "1" | NAME "(" sum ["," sum] ")" | "(" sum ")"

NAME is one of max, min, identity, log, sigmoid, tanh, relu, abs, sqrt, exp. Every op's value is
the clamped one of DESIGN.md (``1 / x`` means sign(x) / (|x| + xi), ``log`` the signed log).
`to_infix` prints the fewest parentheses that parse back to the same tree, so
``parse(to_infix(p)) == p.canonical()`` and ``to_infix(parse(s)) == s`` for a canonical ``s``.
"""

from __future__ import annotations

import re

from lossgen.opset import INPUT_NAMES, Op
from lossgen.programs import Expr, Program, lower

# Precedence levels used by the printer (higher binds tighter).
_SUM, _PRODUCT, _UNARY, _POWER, _ATOM = 1, 2, 3, 4, 5

_FUNCTION_NAMES = {
    Op.MAX: "max", Op.MIN: "min", Op.IDENTITY: "identity", Op.LOG: "log", Op.SIGMOID: "sigmoid",
    Op.TANH: "tanh", Op.RELU: "relu", Op.ABS: "abs", Op.SQRT: "sqrt", Op.EXP: "exp",
}
_FUNCTIONS = {name: op for op, name in _FUNCTION_NAMES.items()}


def _as_expr(program_or_expr) -> Expr:
    return program_or_expr.to_expr() if isinstance(program_or_expr, Program) else program_or_expr


# ----------------------------------------------------------------------------- infix printing


def to_infix(program_or_expr: Program | Expr) -> str:
    text, _ = _infix(_as_expr(program_or_expr))
    return text


def _wrap(part: tuple[str, int], need: int) -> str:
    text, level = part
    return text if level >= need else f"({text})"


def _infix(e: Expr) -> tuple[str, int]:
    if e.is_terminal:
        return INPUT_NAMES[e.slot], _ATOM
    op, kids = e.op, e.children
    if op in _FUNCTION_NAMES:
        args = ", ".join(_infix(k)[0] for k in kids)
        return f"{_FUNCTION_NAMES[op]}({args})", _ATOM
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


def to_latex(program_or_expr: Program | Expr) -> str:
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


# ----------------------------------------------------------------------------- parsing


_TOKEN = re.compile(r"\s*(?:(y_hat|ŷ|y|[A-Za-z_][A-Za-z_0-9]*)|(\d+(?:\.\d*)?)|(\*\*|[-+*/^(),]))")


class FormulaError(ValueError):
    """An infix loss formula that does not parse; the message names the position."""


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise FormulaError(f"unexpected character {text[pos:].strip()[:1]!r} at position {pos} in {text!r}")
        kind = "name" if m.group(1) else "number" if m.group(2) else "symbol"
        tokens.append((kind, m.group(m.lastindex), m.start(m.lastindex)))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def error(self, message: str) -> FormulaError:
        pos = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        return FormulaError(f"{message} at position {pos} in {self.text!r}")

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise self.error(f"expected {expected!r}" if expected else "unexpected end of formula")
        self.i += 1
        return tok

    def parse(self) -> Expr:
        if not self.tokens:
            raise FormulaError("empty loss formula")
        e = self.sum()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek()!r}")
        return e

    def sum(self) -> Expr:
        e = self.product()
        while self.peek() in ("+", "-"):
            sym = self.take()
            right = self.product()
            e = Expr.apply(Op.ADD, e, right if sym == "+" else Expr.apply(Op.NEG, right))
        return e

    def product(self) -> Expr:
        e = self.unary()
        while self.peek() in ("*", "/"):
            sym = self.take()
            right = self.unary()
            if sym == "*":
                e = Expr.apply(Op.MUL, e, right)
            elif e == Expr.terminal(2):  # literal 1 / x
                e = Expr.apply(Op.RECIPROCAL, right)
            else:
                e = Expr.apply(Op.MUL, e, Expr.apply(Op.RECIPROCAL, right))
        return e

    def unary(self) -> Expr:
        if self.peek() == "-":
            self.take()
            return Expr.apply(Op.NEG, self.unary())
        return self.power()

    def power(self) -> Expr:
        e = self.atom()
        while self.peek() in ("^", "**"):
            self.take()
            if self.peek() != "2":
                raise self.error("only the exponent 2 (Square) is supported")
            self.take()
            e = Expr.apply(Op.SQUARE, e)
        return e

    def atom(self) -> Expr:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected end of formula")
        kind = self.tokens[self.i][0]
        if tok == "(":
            self.take()
            e = self.sum()
            self.take(")")
            return e
        if kind == "number":
            if float(tok) != 1.0:
                raise self.error(f"constant {tok} is not a terminal (only y_hat, y and 1 are)")
            self.take()
            return Expr.terminal(2)
        if kind == "name":
            if tok in ("y_hat", "ŷ"):
                self.take()
                return Expr.terminal(0)
            if tok == "y":
                self.take()
                return Expr.terminal(1)
            name = tok.lower()
            if name not in _FUNCTIONS:
                raise self.error(f"unknown name {tok!r} (functions: {', '.join(sorted(_FUNCTIONS))})")
            op = _FUNCTIONS[name]
            self.take()
            self.take("(")
            args = [self.sum()]
            while self.peek() == ",":
                self.take()
                args.append(self.sum())
            self.take(")")
            if len(args) != op.arity:
                raise self.error(f"{name} takes {op.arity} argument(s), got {len(args)}")
            return Expr.apply(op, *args)
        raise self.error(f"unexpected {tok!r}")


def parse_expr(text: str) -> Expr:
    """Parse an infix formula into a tree (see the module docstring for the grammar)."""
    return _Parser(text).parse()


def parse(text: str, max_steps: int | None = None) -> Program:
    """Parse an infix formula into its canonical program; ValueError names any problem."""
    expr = parse_expr(text)
    try:
        program = lower(expr)
    except ValueError as err:
        raise FormulaError(f"{err} in {text!r}") from None
    if max_steps is not None and len(program) > max_steps:
        raise FormulaError(f"{text!r} needs {len(program)} steps, more than max_steps={max_steps}")
    return program
