import pytest
from hypothesis import given, settings

from lossgen.ir.formula import FormulaError, parse, parse_expr, to_infix, to_latex
from lossgen.ir.opset import Op
from lossgen.ir.expr import Y, Y_HAT, Expr
from strategies import programs


@settings(max_examples=400, deadline=None)
@given(programs(max_steps=9))
def test_infix_round_trip_is_exact(p):
    text = to_infix(p)
    back = parse(text)
    assert back == p.canonical()
    assert to_infix(back) == text
    assert parse_expr(text) == p.to_expr()


@pytest.mark.parametrize(
    "text",
    [
        "max(y_hat, y) * (1 / (y_hat + 1))",
        "(y_hat - y)^2",
        "-y_hat^2",
        "(-y_hat)^2",
        "-(-y)",
        "y_hat - (y + 1)",
        "1 / y_hat * y",
        "y * (1 / -y_hat)",
        "y_hat + y + 1",
        "y_hat + (y + 1)",
        "sigmoid(tanh(relu(abs(sqrt(exp(identity(y_hat)))))))",
        "log(min(y_hat, y))",
    ],
)
def test_canonical_strings_print_back_unchanged(text):
    assert to_infix(parse(text)) == text


def test_sugar_normalises():
    assert to_infix(parse("y_hat / y")) == "y_hat * (1 / y)"
    assert to_infix(parse("y_hat + -y")) == "y_hat - y"
    assert to_infix(parse("  MAX(y_hat,y)**2 ")) == "max(y_hat, y)^2"


def test_structure():
    e = parse_expr("max(y_hat, y) * (1 / (y_hat + 1))")
    assert e.op == Op.MUL
    assert e.children[0] == Expr.apply(Op.MAX, Y_HAT, Y)
    assert e.children[1].op == Op.RECIPROCAL


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty loss formula"),
        ("y_hat +", "unexpected end"),
        ("y_hat ^ 3", "only the exponent 2"),
        ("2 * y", "constant 2 is not a terminal"),
        ("foo(y)", "unknown name 'foo'"),
        ("max(y)", "max takes 2 argument"),
        ("(y_hat", "expected '\\)'"),
        ("y_hat $ y", "unexpected character '\\$'"),
        ("y + y", "equal operands"),
    ],
)
def test_parse_errors_name_the_problem(text, message):
    with pytest.raises(FormulaError, match=message):
        parse(text)


def test_max_steps():
    with pytest.raises(FormulaError, match="more than max_steps=2"):
        parse("(y_hat - y)^2", max_steps=2)


def test_latex():
    assert to_latex(parse("max(y_hat, y) * (1 / (y_hat + 1))")) == (
        r"\max\left(\hat{y}, y\right) \cdot \frac{1}{\hat{y} + 1}")
    assert to_latex(parse("(y_hat - y)^2")) == r"\left(\hat{y} - y\right)^{2}"
