"""The pipeline from the command line: `lossgen search | check | evaluate | report | export | run`
on the synthetic dataset, resuming through the CLI, time limits and one-line user errors."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys

import pytest
import torch

from cli_helpers import assert_user_error, invoke, private_cache, runner  # noqa: F401  (autouse fixture)
from lossgen import kernels
from lossgen.cli import app
from lossgen.ir.formula import to_latex
from lossgen.ir.programs import Program
from lossgen.runs import RunStore

PHASE3 = ["--seeds", "1", "--max-epochs", "15"]


def ok(*args):
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def candidates(run_dir):
    store = RunStore.open_existing(run_dir)
    try:
        return store.candidates(), store.rounds()
    finally:
        store.close()


def import_file(path):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("strategy", ["rl", "evolution", "random"])
def test_search_check_evaluate_report_export(tmp_path, strategy):
    run = tmp_path / f"run-{strategy}"
    result = ok("search", "--preset", "paper", "--strategy", strategy, "--budget", 30, "--run-dir", run)
    assert "budget of 30 evaluations reached" in flat(result.output)
    assert (run / "config.json").is_file() and (run / "run.db").is_file()
    assert any((run / "checkpoints").glob("round-*.pt"))
    assert json.loads((run / "config.json").read_text())["strategy"] == strategy

    result = ok("check", run)
    assert "Phase II:" in result.output
    rows, _ = candidates(run)
    assert rows and all(r.phase2_rate is not None and 0.0 <= r.phase2_rate <= 1.0 for r in rows)

    result = ok("evaluate", run, "--top", 2, *PHASE3, "--losses", "BCE,MSE")
    assert "BCE" in result.output and "MSE" in result.output
    for ext in ("md", "csv", "json"):
        assert (run / "phase3" / f"effectiveness.{ext}").is_file()
    rows, _ = candidates(run)
    evaluated = [r for r in rows if r.phase3 is not None]
    assert 1 <= len(evaluated) <= 2
    for r in evaluated:
        assert r.phase3["candidate"] == r.id and r.phase3["formula"] == r.formula
        assert r.state in ("passed", "off") and r.evaluated and r.phase2_rate >= 0.9

    ok("report", run)
    assert (run / "report" / "report.md").is_file()
    for name in ("metrics", "sampled", "positive_rates", "rewards"):
        assert (run / "report" / f"{name}.png").stat().st_size > 0

    chosen = evaluated[0]
    result = ok("export", run, chosen.id)
    assert chosen.formula in flat(result.output)
    (py_file,) = (run / "export").glob("*.py")
    (tex_file,) = (run / "export").glob("*.tex")
    program = Program(chosen.program)
    assert to_latex(program) in tex_file.read_text()

    module = import_file(py_file)
    sys.modules.pop(f"exported_{py_file.stem}", None)
    gen = torch.Generator().manual_seed(1)
    y_hat = torch.rand(2000, generator=gen) * 0.98 + 0.01
    y = (torch.rand(2000, generator=gen) < 0.5).float()
    want_values, want_grads = kernels.evaluate(program, y_hat, y, json.loads((run / "config.json").read_text())["clamp"])
    x = y_hat.clone().requires_grad_(True)
    values = module.DiscoveredLoss(reduction="none")(x, y)
    (grads,) = torch.autograd.grad(values.sum(), x)
    torch.testing.assert_close(values.detach(), want_values[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads, want_grads[0], rtol=1e-5, atol=1e-6)


def test_run_does_all_three_phases(tmp_path):
    """The default (`lossgen`) preset end to end: the race picks the survivor and its epsilon, and
    the export is the function Phase III trained."""
    run = tmp_path / "all"
    result = ok("run", "--strategy", "evolution", "--max-rounds", 40, "--survivors", 1, "--rungs", "2,4", *PHASE3,
                "--baselines", "BCE,MSE", "--run-dir", run)
    out = flat(result.output)
    rows, _ = candidates(run)
    (best,) = [r for r in rows if r.phase3 is not None]
    assert best.phase3["formula"] in out
    config = json.loads((run / "config.json").read_text())
    assert (config["preset"], config["clamp"], config["strict"], config["reward"]) == ("lossgen", "symmetric", True,
                                                                                       "reference")
    eps = best.phase3["eps"]
    assert (eps is not None) == Program(best.program).uses_epsilon
    ok("export", run, best.id)
    (py_file,) = (run / "export").glob("*.py")
    module = import_file(py_file)
    sys.modules.pop(f"exported_{py_file.stem}", None)
    y_hat = torch.linspace(0.01, 0.99, 50).repeat(2)
    y = torch.cat([torch.zeros(50), torch.ones(50)])
    want, _ = kernels.evaluate(Program(best.program), y_hat, y, "symmetric", eps)
    torch.testing.assert_close(module.DiscoveredLoss(reduction="none")(y_hat, y), want[0], rtol=1e-5, atol=1e-6)
    assert "Phase II:" in out and "Phase III" in out and "BCE" in out and "MSE" in out
    assert f"report: {run / 'report'}" in out
    assert (run / "report" / "report.md").is_file()
    assert (run / "phase3" / "effectiveness.json").is_file()


# ----------------------------------------------------------------------------- resuming


def test_resume_through_the_cli_equals_one_uninterrupted_search(tmp_path):
    resumed, single = tmp_path / "resumed", tmp_path / "single"
    first = ok("search", "--max-rounds", 3, "--run-dir", resumed)
    assert "resuming" not in flat(first.output)
    second = ok("search", "--max-rounds", 6, "--run-dir", resumed)
    assert "resuming after round 2" in flat(second.output)
    assert "6 rounds done" in flat(second.output)
    ok("search", "--max-rounds", 6, "--run-dir", single)

    rows_a, rounds_a = candidates(resumed)
    rows_b, rounds_b = candidates(single)
    assert [r.round for r in rounds_a] == list(range(6))
    key = ("id", "formula", "reward", "state", "accepted", "evaluation")
    assert [tuple(getattr(r, k) for k in key) for r in rows_a] == [tuple(getattr(r, k) for k in key) for r in rows_b]

    # A finished run extended again with the same limit does nothing new.
    ok("search", "--max-rounds", 6, "--run-dir", resumed)
    assert len(candidates(resumed)[1]) == 6


@pytest.mark.parametrize("change, key", [(["--eta", "0.01"], "eta"), (["--strategy", "random"], "strategy"),
                                         (["--per-round", "5"], "per_round")])
def test_resume_with_a_different_config_is_refused(tmp_path, change, key):
    run = tmp_path / "run"
    ok("search", "--max-rounds", 2, "--run-dir", run)
    before = (run / "config.json").read_text()
    line = assert_user_error(invoke("search", "--max-rounds", 4, "--run-dir", run, *change), key)
    assert "different config" in line
    assert (run / "config.json").read_text() == before
    assert len(candidates(run)[1]) == 2


def test_time_limit_stops_the_search(tmp_path):
    run = tmp_path / "run"
    result = ok("search", "--time-limit", "1s", "--run-dir", run)
    assert "search stopped: time limit of 1 s reached" in flat(result.output)
    rounds = candidates(run)[1]
    assert len(rounds) >= 1
    assert rounds[-1].elapsed >= 1.0


# ----------------------------------------------------------------------------- user errors


@pytest.mark.parametrize("args, fragments", [
    (["search", "--strategy", "foo"], ["unknown strategy 'foo'"]),
    (["run", "--strategy", "foo"], ["unknown strategy 'foo'"]),
    (["search", "--model", "foo"], ["unknown model 'foo'"]),
    (["search", "--time-limit", "abc"], ["time limit 'abc'"]),
    (["search", "--dataset", "no-such-ratings.csv"], ["no-such-ratings.csv"]),
    (["search", "--device", "cuda"], ["--device 'cuda'"]),
    (["search", "--budget", "0"], ["budget must be positive"]),
    (["check"], ["give a run directory or at least one --loss formula"]),
])
def test_user_errors(tmp_path, args, fragments):
    assert_user_error(invoke(*args, *(["--run-dir", tmp_path / "run"] if args[0] != "check" else [])), *fragments)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", [["check"], ["evaluate"], ["report"], ["export", "{run}", "rl-0"]])
def test_missing_run_directory(tmp_path, command):
    missing = tmp_path / "missing"
    args = [missing if a == "{run}" else a for a in command]
    if len(args) == 1:
        args.append(missing)
    assert_user_error(invoke(*args), str(missing))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A two-round search with no Phase II yet (tests copy it before changing it)."""
    root = tmp_path_factory.mktemp("small")
    result = runner.invoke(app, ["search", "--max-rounds", "2", "--run-dir", str(root / "run")],
                           env={"LOSSGEN_CACHE_DIR": str(root / "cache")})
    assert result.exit_code == 0, result.output
    return root / "run"


@pytest.mark.parametrize("command", [["check"], ["evaluate"], ["report"], ["export", "{run}", "rl-0"],
                                     ["search", "--max-rounds", "1", "--run-dir"]])
def test_corrupted_run_directory(tmp_path, small_run, command):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    (run / "config.json").write_text("{not json")
    args = [run if a == "{run}" else a for a in command]
    if "{run}" not in command:
        args.append(run)
    assert_user_error(invoke(*args), "corrupted run directory", str(run))


def test_evaluate_before_check(tmp_path, small_run):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    assert_user_error(invoke("evaluate", run, *PHASE3), "no Phase II results", "lossgen check")
    assert not (run / "phase3").exists()


def test_export_unknown_candidate(small_run):
    assert_user_error(invoke("export", small_run, "nobody"), "no candidate with id 'nobody'")
    assert_user_error(invoke("export", small_run, "rl-"), "ambiguous")


def test_evaluate_a_formula_grids_its_epsilon(tmp_path):
    """A formula with an epsilon op trains once per epsilon of the grid; the table names the one
    validation chose. With --clamp paper and no epsilon written: the paper's smoothing, one run."""
    out = tmp_path / "res"
    ok("evaluate", "--loss", "max(y_hat * (1 / y), y * (1 / y_hat))", "--losses", "BCE", "--seeds", 1,
       "--max-epochs", 2, "--out", out)
    saved = json.loads((out / "effectiveness.json").read_text())
    (found,) = [r for r in saved["losses"] if r["name"] != "BCE"]
    assert saved["runs"] == 7 + 1 and found["eps"] in (1.0, 0.1, 0.01, 1e-3, 1e-4, 1e-5, 1e-6)
    ok("evaluate", "--loss", "max(y_hat * (1 / y), y * (1 / y_hat))", "--losses", "BCE", "--clamp", "paper",
       "--seeds", 1, "--max-epochs", 2, "--out", out)
    assert json.loads((out / "effectiveness.json").read_text())["runs"] == 2
