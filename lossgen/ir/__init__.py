"""The loss IR (DESIGN.md "The loss program"): op set and clamp modes, trees, straight-line
programs, printers and the formula parser. The lowest layer: imports nothing else of lossgen."""

from lossgen.ir.expr import ONE, Y, Y_HAT, Expr
from lossgen.ir.formula import FormulaError, parse, parse_expr
from lossgen.ir.opset import Clamp, Op, parse_clamp
from lossgen.ir.printers import to_infix, to_latex
from lossgen.ir.programs import DEFAULT_MAX_STEPS, Program, batch, lower, unbatch

__all__ = ["Expr", "Y_HAT", "Y", "ONE", "Program", "batch", "unbatch", "lower", "DEFAULT_MAX_STEPS", "parse",
           "parse_expr", "FormulaError", "to_infix", "to_latex", "Op", "Clamp", "parse_clamp"]
