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


def test_strict_check_fails_one_sided_flat_and_exploding_losses():
    from lossgen.phases.check import STRICT_MAX_GRADIENT, validation_check

    programs = [parse(t) for t in ("(y_hat - y)^2", "1 / min(y_hat, y)", "sqrt(-1)",
                                   "max(y_hat * (1 / y), y * (1 / y_hat))")]
    paper = validation_check(programs, "symmetric")
    assert paper.passed == [True, True, True, True]  # the paper's rule counts a zero gradient as right
    strict = validation_check(programs, "symmetric", strict=True)
    assert strict.passed == [True, False, False, False]
    assert strict.strict_rates[0] == (1.0, 1.0) and strict.strict_rates[1] == (0.0, 1.0)
    assert strict.strict_rates[2] == (0.0, 0.0) and strict.zero_shares[2] == 1.0
    # MaxR as a program: with the paper's smoothing its negatives get no gradient; with e = 0.01
    # both labels are pushed and the largest gradient stays below the bound
    smoothed = validation_check(programs[3:], "symmetric", strict=True, eps=0.01)
    assert smoothed.passed == [True] and smoothed.max_gradients[0] <= STRICT_MAX_GRADIENT


def test_strict_check_bounds_the_gradient():
    from lossgen.phases.check import STRICT_MAX_GRADIENT, validation_check

    exploding = parse("(y_hat - y) * (1 / y_hat^2)")  # |grad| ~ 1 / y_hat^3 near 0
    result = validation_check([exploding], "symmetric", strict=True)
    assert result.max_gradients[0] > STRICT_MAX_GRADIENT and result.passed == [False]
    from lossgen.phases.check import strict_pass

    assert strict_pass((1.0, 1.0), 2.0, 0.9) and not strict_pass((1.0, 1.0), 2 * STRICT_MAX_GRADIENT, 0.9)
    assert not strict_pass((0.89, 1.0), 2.0, 0.9) and not strict_pass((1.0, float("inf")), float("inf"), 0.9)


def test_check_cli_strict_and_eps(tmp_path):
    from typer.testing import CliRunner

    from lossgen.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["check", "--strict", "--clamp", "symmetric", "--loss", "1 / min(y_hat, y)"])
    assert result.exit_code == 1 and "pushed y=0" in result.output
    result = runner.invoke(app, ["check", "--strict", "--eps", "0.01", "--clamp", "symmetric",
                                 "--loss", "max(y_hat * (1 / y), y * (1 / y_hat))"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["check", "--eps", "0", "--loss", "y_hat"])
    assert result.exit_code == 2 and result.output.startswith("error:") and "epsilon" in result.output
