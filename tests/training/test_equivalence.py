import pytest

from lossgen.ir.formula import parse
from lossgen.training.equivalence import (CLOSE, NamedMatch, match_named, named_label, named_probe_gradient,
                                          program_probe_gradient)


@pytest.mark.parametrize("formula, eps, name, scale", [
    ("(y_hat - y)^2", None, "MSE", 1.0),
    ("(y - y_hat) * (y - y_hat) + y", None, "MSE", 1.0),  # a constant in y changes no gradient
    ("(y_hat - y)^2 + (y_hat - y)^2", None, "MSE", 2.0),  # twice MSE: the same direction, twice the step
    ("-(y * log(y_hat) + (1 - y) * log(1 - y_hat))", None, "BCE", 1.0),
    # MaxR's program form (1 / y is 1 / (y + e)) has exactly SumR's derivative on 0/1 labels: at
    # y = 1 it is -1 / (y_hat + e)^2, named MaxR's is (1 + e) times that, and at y = 0 all are 1 / e
    ("max(y_hat * (1 / y), y * (1 / y_hat))", 1e-3, "SumR", 1.0),
    ("(y_hat + y) * (1 / (y_hat * y))", 1e-4, "SumR", 1.0),
])
def test_a_program_is_found_equal_or_proportional_to_its_named_loss(formula, eps, name, scale):
    match = match_named(parse(formula), "symmetric", eps)
    assert match is not None and match.name == name
    assert match.scale == pytest.approx(scale, rel=1e-3)
    assert match.equal == (scale == 1.0)
    assert match.proportional and match.residual < 1e-3
    assert match.label() == (f"= {name}" if scale == 1.0 else f"= {scale:.3g} x {name}")


def test_a_looser_tolerance_finds_close_forms():
    # MaxR's program form at e = 0.1: the named gradient within a factor 1 + e at y = 1
    maxr = parse("max(y_hat * (1 / y), y * (1 / y_hat))")
    assert match_named(maxr, "symmetric", 0.1, names=["MaxR"]) is None
    close = match_named(maxr, "symmetric", 0.1, names=["MaxR"], rtol=CLOSE)
    assert close.name == "MaxR" and not close.proportional and close.residual < CLOSE
    assert close.label().startswith("≈ ")


@pytest.mark.parametrize("formula, eps", [
    ("-(y_hat - y)^2", None),  # the opposite direction is not a positive multiple
    ("(y_hat - y)^2 * (y_hat - y)^2", None),
    ("max(y, y_hat) + y + max(y, y_hat) + (max(y, y_hat) - y_hat)", None),
    ("-(y * log(y_hat) + (1 - y) * log(1 - y_hat))", 0.1),  # BCE smoothed with e = 0.1 is another function
    ("y - y", None),  # no gradient at all
])
def test_other_functions_match_no_named_loss(formula, eps):
    assert match_named(parse(formula), "symmetric", eps) is None


def test_probe_gradients_of_named_and_program_forms_agree_pointwise():
    g = program_probe_gradient(parse("(y_hat - y)^2"), "symmetric")
    h = named_probe_gradient("MSE")
    assert g.shape == h.shape == (66,)
    assert (g - h).abs().max() < 1e-5
    assert NamedMatch("MSE", 1.0004).equal and not NamedMatch("MSE", 1.01).equal
    assert not NamedMatch("MSE", 1.0, residual=0.01).equal


def test_named_label_is_what_reports_print():
    assert named_label(parse("(y - y_hat)^2 + y"), "symmetric") == "= MSE"
    assert named_label(parse("max(y_hat * (1 / y), y * (1 / y_hat))"), "symmetric", 0.1) == "= SumR"
    assert named_label(parse("(y_hat - y)^2 * (y_hat - y)^2"), "symmetric") is None
