"""The loss IR (DESIGN.md "The loss program"): op set and clamp modes, trees, straight-line
programs, printers and the formula parser. The lowest layer: imports nothing else of lossgen."""

from lossgen.ir.expr import ONE, Y, Y_HAT, Expr
from lossgen.ir.formula import FormulaError, parse, parse_expr, parse_loss
from lossgen.ir.opset import Clamp, Op, parse_clamp
from lossgen.ir.printers import latex_with_epsilon, to_infix, to_latex, with_epsilon
from lossgen.ir.programs import DEFAULT_MAX_STEPS, Program, batch, lower, unbatch

__all__ = ["Expr", "Y_HAT", "Y", "ONE", "Program", "batch", "unbatch", "lower", "DEFAULT_MAX_STEPS", "parse",
           "parse_expr", "parse_loss", "with_epsilon", "latex_with_epsilon", "FormulaError", "to_infix", "to_latex", "Op", "Clamp", "parse_clamp"]
