import pytest
import torch

from lossgen.ir.formula import parse
from lossgen.ir.opset import Op
from lossgen.ir.expr import ONE, Y, Y_HAT, Expr
from lossgen.ir.programs import Program, batch, lower, unbatch


def test_validation_names_the_problem():
    with pytest.raises(ValueError, match="at least one step"):
        Program([])
    with pytest.raises(ValueError, match="op code 15 out of range"):
        Program([(15, 0, 1)])
    with pytest.raises(ValueError, match="operand a=3 is not yet written"):
        Program([(Op.LOG, 3, 0)])
    with pytest.raises(ValueError, match="operand b=4 is not yet written"):
        Program([(Op.LOG, 0, 0), (Op.ADD, 3, 4)])
    with pytest.raises(ValueError, match="needs distinct operands"):
        Program([(Op.MAX, 1, 1)])
    with pytest.raises(ValueError, match="more than max_steps=1"):
        Program([(Op.LOG, 0, 0), (Op.NEG, 3, 0)]).validate(max_steps=1)


def test_unary_ops_ignore_b():
    assert Program([(Op.NEG, 0, 2)]).steps == ((int(Op.NEG), 0, 0),)


def test_padding_is_identity_of_previous_slot_and_round_trips():
    p = parse("(y_hat - y)^2")
    padded = p.padded(7)
    assert len(padded) == 7
    assert padded.steps[3:] == ((5, 5, 0), (5, 6, 0), (5, 7, 0), (5, 8, 0))
    assert padded.unpadded() == p
    with pytest.raises(ValueError, match="cannot pad"):
        padded.padded(3)


def test_batch_and_unbatch():
    ps = [parse("max(y_hat, y)"), parse("(y_hat - y)^2")]
    t = batch(ps)
    assert t.dtype == torch.int32 and t.shape == (2, 3, 3)
    assert unbatch(t) == ps
    assert batch(ps, length=7).shape == (2, 7, 3)
    with pytest.raises(ValueError, match="shorter than the longest"):
        batch(ps, length=2)
    assert Program.from_tensor(ps[1].to_tensor()) == ps[1]


def test_lowering_shares_identical_subtrees():
    m = Expr.apply(Op.MIN, Y_HAT, Y)
    tree = Expr.apply(Op.MUL, Expr.apply(Op.LOG, m), Expr.apply(Op.ADD, Y_HAT, m))
    p = lower(tree)
    assert len(p) == 4  # min computed once
    assert p.to_expr() == tree


def test_lowering_unshares_when_operands_would_be_equal():
    log_y = Expr.apply(Op.LOG, Y)
    p = lower(Expr.apply(Op.MUL, log_y, log_y))
    assert len(p) == 3 and p.steps[-1][1] != p.steps[-1][2]
    with pytest.raises(ValueError, match="equal operands"):
        lower(Expr.apply(Op.ADD, ONE, ONE))


def test_canonical_drops_dead_steps_and_is_idempotent():
    p = Program([(Op.LOG, 0, 0), (Op.SQUARE, 1, 0), (Op.NEG, 3, 0)])  # Square(y) is dead
    c = p.canonical()
    assert c.steps == ((int(Op.LOG), 0, 0), (int(Op.NEG), 3, 0))
    assert c.canonical() == c


def test_paper_losses_are_programs():
    for text in [
        "(y_hat - y)^2",
        "max((y_hat + 1) * (1 / (y + 1)), (y + 1) * (1 / (y_hat + 1)))",
        "(y_hat + y + 1) * (1 / (y_hat * y + 1))",
        "log((1 + identity(1)) * (1 / (min(y_hat, y) + 1))) * (y_hat + y + min(y_hat, y))",
    ]:
        assert parse(text).validate()
