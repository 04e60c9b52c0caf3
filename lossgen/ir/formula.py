"""The parser from infix loss formulas back to the IR (printers: `lossgen.ir.printers`).

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

from lossgen.ir.expr import Expr
from lossgen.ir.opset import Op
from lossgen.ir.printers import FUNCTION_NAMES, latex_with_epsilon, to_infix, to_latex, with_epsilon
from lossgen.ir.programs import Program, lower

__all__ = ["parse", "parse_expr", "parse_loss", "to_infix", "to_latex", "with_epsilon", "latex_with_epsilon",
           "FormulaError"]

_FUNCTIONS = {name: op for op, name in FUNCTION_NAMES.items()}

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


# Bounds on what a formula may hold, so that every printer, lowering and kernel stays well inside
# Python's recursion limit (the recursive-descent parser and the tree walks recurse once per level).
MAX_DEPTH = 64  # nesting: parentheses, function calls and unary minus
MAX_OPS = 256  # op nodes of the tree (a program's steps are at most this many)


def _quoted(text: str, limit: int = 60) -> str:
    """The formula as error messages show it: repr, cut in the middle when long."""
    return repr(text) if len(text) <= limit else repr(text[: limit // 2] + " ... " + text[-limit // 2:])


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.ops = 0

    def error(self, message: str) -> FormulaError:
        pos = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        return FormulaError(f"{message} at position {pos} in {_quoted(self.text)}")

    def node(self, op: Op, *children: Expr) -> Expr:
        self.ops += 1
        if self.ops > MAX_OPS:
            raise self.error(f"formula has more than {MAX_OPS} operations")
        return Expr.apply(op, *children)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"formula is nested more than {MAX_DEPTH} levels deep")

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
            e = self.node(Op.ADD, e, right if sym == "+" else self.node(Op.NEG, right))
        return e

    def product(self) -> Expr:
        e = self.unary()
        while self.peek() in ("*", "/"):
            sym = self.take()
            right = self.unary()
            if sym == "*":
                e = self.node(Op.MUL, e, right)
            elif e == Expr.terminal(2):  # literal 1 / x
                e = self.node(Op.RECIPROCAL, right)
            else:
                e = self.node(Op.MUL, e, self.node(Op.RECIPROCAL, right))
        return e

    def unary(self) -> Expr:
        if self.peek() == "-":
            self.take()
            self.enter()
            e = self.node(Op.NEG, self.unary())
            self.depth -= 1
            return e
        return self.power()

    def power(self) -> Expr:
        e = self.atom()
        while self.peek() in ("^", "**"):
            self.take()
            if self.peek() != "2":
                raise self.error("only the exponent 2 (Square) is supported")
            self.take()
            e = self.node(Op.SQUARE, e)
        return e

    def atom(self) -> Expr:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected end of formula")
        kind = self.tokens[self.i][0]
        if tok == "(":
            self.take()
            self.enter()
            e = self.sum()
            self.take(")")
            self.depth -= 1
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
            self.enter()
            args = [self.sum()]
            while self.peek() == ",":
                self.take()
                args.append(self.sum())
            self.take(")")
            self.depth -= 1
            if len(args) != op.arity:
                raise self.error(f"{name} takes {op.arity} argument(s), got {len(args)}")
            return self.node(op, *args)
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
        raise FormulaError(f"{err} in {_quoted(text)}") from None
    if max_steps is not None and len(program) > max_steps:
        raise FormulaError(f"{_quoted(text)} needs {len(program)} steps, more than max_steps={max_steps}")
    return program


_EPSILON_SUFFIX = re.compile(r"^(?P<formula>.*?)\s+with\s+e\s*=\s*(?P<eps>\S+)\s*$", re.S)


def parse_loss(text: str, max_steps: int | None = None) -> tuple[Program, float | None]:
    """A formula with an optional smoothing epsilon suffix (``... with e = 0.01``): the program and
    e (None without the suffix: the paper's xi). e must be a finite number > 0."""
    match = _EPSILON_SUFFIX.match(text)
    if match is None:
        return parse(text, max_steps), None
    try:
        eps = float(match.group("eps"))
    except ValueError:
        raise FormulaError(f"cannot read the smoothing epsilon {match.group('eps')!r} in {_quoted(text)}") from None
    if not (eps > 0 and eps < float("inf")):
        raise FormulaError(f"the smoothing epsilon must be a finite number > 0, got {match.group('eps')} in {_quoted(text)}")
    return parse(match.group("formula"), max_steps), eps
