import pytest
import torch

from lossgen.ir.formula import parse
from lossgen.phases.check import positive_rates, synthesized_pairs, validation_check


def test_pairs_are_fixed_and_balanced():
    y_hat, y = synthesized_pairs()
    assert y_hat.shape == (2000,) and 0 <= float(y_hat.min()) and float(y_hat.max()) <= 1
    assert int(y.sum()) == 1000
    assert torch.equal(synthesized_pairs()[0], y_hat)


def test_sensible_and_inverted_losses():
    # symmetric clamp so that (y_hat - y)^2 is really MSE
    good = [parse("(y_hat - y)^2"), parse("max((y_hat + 1) * (1 / (y + 1)), (y + 1) * (1 / (y_hat + 1)))")]
    bad = [parse("-(y_hat - y)^2"), parse("y * y_hat")]  # wrong sign everywhere / half the time
    result = validation_check(good + bad, clamp="symmetric")
    assert result.passed == [True, True, False, False]
    assert result.rates[0] == pytest.approx(1.0)
    assert result.rates[2] <= 0.01


def test_rate_counts_right_signs_exactly():
    # d/dy_hat of y_hat * y is y: 0 for y = 0 (counts as right, >= 0) and 1 for y = 1 (wrong)
    rates = positive_rates([parse("y_hat * y")], clamp="symmetric")
    assert float(rates[0]) == pytest.approx(0.5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="threshold must be in"):
        validation_check([parse("y_hat * y")], threshold=1.5)
    with pytest.raises(ValueError, match="at least 2 pairs"):
        synthesized_pairs(1)


def test_check_cli():
    from typer.testing import CliRunner

    from lossgen.cli import app

    ok = CliRunner().invoke(app, ["check", "--loss", "(y_hat - y)^2", "--clamp", "symmetric"])
    assert ok.exit_code == 0 and "pass" in ok.output
    bad = CliRunner().invoke(app, ["check", "--loss", "-(y_hat - y)^2", "--clamp", "symmetric"])
    assert bad.exit_code == 1 and "fail" in bad.output
    err = CliRunner().invoke(app, ["check", "--loss", "y_hat +"])
    assert err.exit_code == 2 and "unexpected end" in err.output
