from typer.testing import CliRunner

from lossgen.cli import app

runner = CliRunner()


def test_demo_prints_the_paper_losses():
    result = runner.invoke(app, ["demo", "--points", "5000"])
    assert result.exit_code == 0, result.output
    for name in ("MSE", "MaxR", "SumR", "LogMin", "compiled-cpu", "node-evaluations/s"):
        assert name in result.output


def test_formula_shows_canonical_form_latex_and_steps():
    result = runner.invoke(app, ["formula", "y_hat / y"])
    assert result.exit_code == 0
    assert "canonical: y_hat * (1 / y)" in result.output
    assert r"\hat{y} \cdot \frac{1}{y}" in result.output
    assert "s4 = Mul(s0, s3)" in result.output


def test_user_errors_are_one_line_and_exit_2():
    for args, message in [
        (["formula", "y_hat +"], "unexpected end of formula"),
        (["demo", "--clamp", "loose"], "unknown clamp mode"),
        (["demo", "--device", "tpu"], "unknown device"),
        (["kernels", "verify", "--programs", "0"], "--programs must be at least 1"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_kernels_verify_passes():
    result = runner.invoke(app, ["kernels", "verify", "--programs", "300", "--points", "300"])
    assert result.exit_code == 0, result.output
    assert "mismatches" in result.output
