import pytest

from lossgen import _C
from lossgen.ir.opset import EXTENDED_OPS, PAPER_OPS, Clamp, Op, parse_clamp, resolve_op_set


def test_op_table_matches_the_compiled_extension():
    assert _C.op_names() == [op.pretty for op in Op]
    assert _C.op_arities() == [op.arity for op in Op]


def test_op_sets():
    assert [op.pretty for op in PAPER_OPS] == [
        "Add", "Mul", "Max", "Min", "Neg", "Identity", "Log", "Square", "Reciprocal"]
    assert len(EXTENDED_OPS) == 15
    assert resolve_op_set("paper") == PAPER_OPS
    assert resolve_op_set("add, log,Sqrt") == (Op.ADD, Op.LOG, Op.SQRT)
    with pytest.raises(ValueError, match="unknown op 'pow'"):
        resolve_op_set("add,pow")


def test_clamp_names():
    assert parse_clamp("Official") == Clamp.OFFICIAL
    with pytest.raises(ValueError, match="unknown clamp mode 'tight'"):
        parse_clamp("tight")
