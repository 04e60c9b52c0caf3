"""`lossgen compare` from the command line: a small end-to-end run, the recorded command, and
one-line errors for bad input (nothing written)."""

import json

from cli_helpers import assert_user_error, invoke, private_cache  # noqa: F401  (autouse fixture)
from lossgen.cli.compare import COMPARE_DEFAULTS, command_line

DATA = "synthetic:users=120,items=150,seed=3"
SMALL = ("--strategies", "random,rl", "--seeds", "2", "--budget", "8", "--dataset", DATA, "--max-epochs", "2",
         "--phase3-seeds", "1", "--top", "1", "--baselines", "BCE")


def test_compare_runs_end_to_end_and_resumes(tmp_path):
    result = invoke("compare", *SMALL, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    assert "report:" in result.output and "random" in result.output
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "lossgen compare --strategies random,rl --seeds 2 --budget 8 --dataset" in md and "--top 1" in md
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["plan"]["strategies"] == ["random", "rl"] and saved["plan"]["seeds"] == [0, 1]
    again = invoke("compare", *SMALL, "--out", tmp_path / "cmp")
    assert again.exit_code == 0, again.output
    assert "Phase III: epoch" not in again.output


def test_the_recorded_command_leaves_defaults_out():
    s = {**COMPARE_DEFAULTS, "out": "o", "proxy": False, "eta": 0.01}
    line = command_line(s)
    assert line.startswith("lossgen compare --strategies rl,evolution,random --seeds 3 --budget 300 --dataset synthetic "
                           "--model mf --out o")
    assert "--no-proxy" in line and "--eta 0.01" in line and "--out o" in line
    assert "--lr" not in line and "--jobs" not in line


def test_out_is_required(tmp_path):
    assert_user_error(invoke("compare", *SMALL), "--out is required")


def test_bad_values_are_one_line_errors(tmp_path):
    out = tmp_path / "cmp"
    assert_user_error(invoke("compare", *SMALL, "--out", out, "--strategies", "rl,annealing"), "annealing")
    assert_user_error(invoke("compare", *SMALL, "--out", out, "--strategies", "rl,rl"), "listed twice")
    assert_user_error(invoke("compare", *SMALL, "--out", out, "--seeds", "0"), "seeds")
    assert_user_error(invoke("compare", *SMALL, "--out", out, "--budget", "0"), "budget")
    assert_user_error(invoke("compare", *SMALL, "--out", out, "--jobs", "0"), "--jobs")
    assert_user_error(invoke("compare", *SMALL, "--out", out, "--eta", "-1"), "eta")
    assert_user_error(invoke("compare", *SMALL, "--out", out, "--dataset", "no-such-data"), "no-such-data")
    assert not out.exists()


def test_a_file_as_out_and_a_foreign_directory_are_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    assert_user_error(invoke("compare", *SMALL, "--out", tmp_path / "file"), "is a file")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("x")
    assert_user_error(invoke("compare", *SMALL, "--out", tmp_path / "mine"), "not a lossgen comparison directory")


def test_config_file_values_and_unknown_keys(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("strategies = 'rl'\nbudgte = 3\n")
    assert_user_error(invoke("compare", "--config", bad, "--out", tmp_path / "o"), "budgte")
    typed = tmp_path / "typed.toml"
    typed.write_text("seeds = 'three'\n")
    assert_user_error(invoke("compare", "--config", typed, "--out", tmp_path / "o"), "seeds")


def test_help_shows_the_defaults_written_in_option_texts():
    # "[default: x]" inside help strings must print as text, not vanish as rich markup
    result = invoke("compare", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())  # help wraps lines at the terminal width
    assert "[default: rl,evolution,random]" in text and "[default: 300]" in text
    assert "[default: rl]" in " ".join(invoke("search", "--help").output.split())
