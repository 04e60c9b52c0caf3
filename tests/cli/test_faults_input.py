"""Fault injection, bad option values and output for people and pipes: each bad input gives one
line naming the problem and exit 2, and creates nothing (the run-directory and data faults are in
test_faults_runs.py and test_faults_data.py)."""

import subprocess
import sys
import warnings

import pytest

from cli_helpers import assert_user_error, invoke, private_cache  # noqa: F401  (autouse fixture)
from lossgen.cli import common

DATA = "synthetic:users=120,items=150,seed=3"


@pytest.mark.parametrize("text, fragment", [
    ("(" * 200 + "y_hat" + ")" * 200, "nested more than"),
    (" + ".join(["y_hat", "y"] * 500), "more than 256 operations"),
    ("max(" * 150 + "y_hat" + ", y)" * 150, "nested more than"),
])
def test_huge_formulas_are_refused_in_one_line(text, fragment):
    assert_user_error(invoke("formula", text), fragment)
    assert_user_error(invoke("check", "--loss", text), fragment)


@pytest.mark.parametrize("option, value, fragment", [
    ("--zero-reward", "inf", "zero-reward must be a finite number"),
    ("--zero-reward", "nan", "zero-reward must be a finite number"),
    ("--eta", "nan", "eta must be a finite number"),
    ("--delta", "-inf", "delta must be a finite number"),
    ("--lr", "inf", "finite"),
    ("--lr", "nan", "finite"),
])
def test_non_finite_options_are_refused_before_anything_is_written(tmp_path, option, value, fragment):
    run = tmp_path / "run"
    assert_user_error(invoke("search", "--dataset", DATA, "--run-dir", run, "--budget", 5, option, value), fragment)
    assert not run.exists()


def test_a_refused_option_leaves_the_run_resumable_with_its_own_settings(tmp_path):
    run = tmp_path / "run"
    assert invoke("search", "--dataset", DATA, "--run-dir", run, "--budget", 5).exit_code == 0
    assert_user_error(invoke("search", "--dataset", DATA, "--run-dir", run, "--budget", 10, "--zero-reward", "inf"))
    assert invoke("search", "--dataset", DATA, "--run-dir", run, "--budget", 10).exit_code == 0


def test_non_finite_phase_options_are_refused(tmp_path):
    assert_user_error(invoke("check", "--loss", "(y_hat - y)^2", "--threshold", "nan"), "threshold")
    assert_user_error(invoke("run", "--dataset", DATA, "--run-dir", tmp_path / "r", "--threshold", "nan"), "threshold")
    assert not (tmp_path / "r").exists()


def test_check_flags_flat_and_mostly_flat_losses():
    result = invoke("check", "--clamp", "symmetric", "--loss", "sqrt(-1)", "--loss", "(y_hat - y)^2",
                    "--loss", "1 / min(y_hat, y)")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    flat = next(line for line in lines if "sqrt(-1)" in line)
    assert "flat: zero gradient on every pair" in flat and "100.0%" in flat
    mse = next(line for line in lines if "(y_hat - y)^2" in line)
    assert "flat" not in mse and "zero gradient on" not in mse
    assert "zero gradient on most pairs" in next(line for line in lines if "1 / min(y_hat, y)" in line)


def test_a_config_key_that_does_not_apply_is_warned_about(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("budget = 5\ntop = 2\n")
    result = invoke("search", "--dataset", DATA, "--run-dir", tmp_path / "run", "--config", config)
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert "top" in line and "does not apply" in line


def test_python_warnings_print_as_one_warning_line(tmp_path, monkeypatch):
    """A Python warning raised inside a command (e.g. by the data loader) prints as one
    `warning:` line, without file and line number."""
    import importlib

    pipeline = importlib.import_module("lossgen.cli.pipeline")
    original = pipeline.load

    def load_with_a_warning(*args, **kwargs):
        warnings.warn("cannot write the split cache (read-only); keeping the split in memory", stacklevel=2)
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline, "load", load_with_a_warning)
    result = invoke("search", "--dataset", DATA, "--run-dir", tmp_path / "run", "--budget", 3)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "split cache" in line]
    assert lines == ["warning: cannot write the split cache (read-only); keeping the split in memory"]
    assert "UserWarning" not in result.output and ".py:" not in result.output


def test_help_and_version():
    for args in (["-h"], ["--help"], ["search", "-h"], ["data", "-h"], ["kernels", "-h"]):
        result = invoke(*args)
        assert result.exit_code == 0 and "Usage:" in result.output, (args, result.output)
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.startswith("lossgen ")


def test_formula_names_the_input_slots():
    result = invoke("formula", "max(y_hat, y) * (1 / (y_hat + 1))")
    assert "s0 = y_hat, s1 = y, s2 = 1" in result.output


def test_piped_tables_are_neither_cut_nor_wrapped():
    long_formula = "max(y_hat * (1 / (y + 1)), y * (1 / (y_hat + 1))) + " * 3 + "y_hat"
    result = subprocess.run([sys.executable, "-m", "lossgen.cli", "check", "--clamp", "symmetric",
                             "--loss", long_formula], capture_output=True, text=True)
    assert result.returncode in (0, 1), result.stderr  # 1: the loss fails the check; the table is printed
    canonical = next(line for line in result.stdout.splitlines() if "max(" in line)
    assert "…" not in result.stdout
    assert canonical.count("max(") == 3 and len(canonical) > 120  # one row, longer than 80 columns


def test_plain_progress_lines_only_off_a_terminal(monkeypatch):
    printed = []
    monkeypatch.setattr(common.console, "print", lambda text, **_: printed.append(text))
    progress = common.PlainProgress(every=3600)
    progress("round 0")
    progress("round 1")  # within the hour: not printed
    assert len(printed) == (0 if common.console.is_terminal else 1)
    if printed:
        assert printed[0].endswith("round 0")


def test_formulas_with_their_epsilon_on_the_command_line():
    maxr = "max(y_hat * (1 / y), y * (1 / y_hat)) with e = 0.01"
    result = invoke("formula", maxr)
    assert result.exit_code == 0 and "canonical: " + maxr in result.output and r"\epsilon = 0.01" in result.output
    result = invoke("check", "--strict", "--clamp", "symmetric", "--loss", maxr)
    assert result.exit_code == 0 and maxr in result.output, result.output
    assert_user_error(invoke("check", "--loss", maxr, "--loss", "y_hat"), "some formulas carry")
    assert_user_error(invoke("formula", "y_hat with e = -1"), "epsilon")


def test_early_stop_option(tmp_path):
    out = tmp_path / "out"
    result = invoke("evaluate", "--losses", "Hinge", "--seeds", 1, "--max-epochs", 30, "--early-stop", "official",
                    "--out", out)
    assert result.exit_code == 0, result.output
    import json

    (hinge,) = json.loads((out / "effectiveness.json").read_text())["losses"]
    assert hinge["epochs"] == [30]  # official: no early stop before 100 epochs, so the cap ends it
    for args in (["evaluate", "--losses", "BCE"], ["run", "--run-dir", tmp_path / "r"],
                 ["compare", "--out", tmp_path / "c", "--seeds", 1, "--budget", 2]):
        assert_user_error(invoke(*args, "--early-stop", "slow"), "unknown early stop 'slow'")
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()


def test_init_std_and_l2_options(tmp_path):
    import json

    out = {}
    for name, args in (("default", []), ("authors", ["--init-std", 1, "--l2", 3e-4])):
        result = invoke("evaluate", "--dataset", DATA, "--losses", "BCE", "--seeds", 1, "--max-epochs", 3, *args,
                        "--out", tmp_path / name, "--format", "json")
        assert result.exit_code == 0, result.output
        out[name] = json.loads((tmp_path / name / "effectiveness.json").read_text())
    assert (out["default"]["init_std"], out["default"]["l2"]) == (0.01, 1e-4)
    assert (out["authors"]["init_std"], out["authors"]["l2"]) == (1.0, 3e-4)
    assert out["default"]["losses"][0]["validation"] != out["authors"]["losses"][0]["validation"]
    for args, fragment in ((["--init-std", 0], "--init-std must be a number > 0"),
                           (["--init-std", "nan"], "--init-std must be a number > 0"),
                           (["--l2", -1], "l2 >= 0")):
        assert_user_error(invoke("evaluate", "--dataset", DATA, "--losses", "BCE", *args), fragment)
    assert_user_error(invoke("evaluate", tmp_path / "no-run", "--init-std", 1), "apply to losses evaluated on their own")
