"""Every command block of the README runs as written, so the README cannot rot.

The README's commands are read from its fenced blocks (```bash and ```python), not copied here:
- `lossgen ...` lines run through the CLI in a scratch directory, in order (the MovieLens flow
  builds on its own earlier commands). Long ones run as quick variants: the same command and
  options with smaller numbers (`QUICK`), and Phase III capped at a few epochs. MovieLens lines
  need LOSSGEN_DATA_DIR (skipped without it), as the rest of the ML-100K tests.
- the ```python block runs as written.
- `python bench/...` lines: the script must exist and its argument parser must accept the
  README's options (run with `--help` appended to catch import errors; the benches themselves are
  long and run by hand, or with `-m slow`).
- set-up lines (`make`, `pip`, `python -m venv`, `cmake`, `. .venv/...`, `lint-imports && pytest`)
  are what CI itself runs (`.ci/run` calls `make test`); they are listed, not run here.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli_helpers import private_cache  # noqa: F401  (autouse fixture: private cache, cwd in tmp_path)
from lossgen.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
QUICK = {"--budget": "40", "--seeds": "1", "--programs": "200", "--time-limit": "2m", "--jobs": "1",
         "--max-epochs": "2", "--points": "2000"}
PHASE3 = {"run", "evaluate", "compare"}  # commands that train to convergence: capped at QUICK epochs
SETUP = ("make ", "pip ", "python -m venv", "cmake ", ". .venv", "lint-imports", "FORCE_CUDA", "FORCE_ONLY_CPU",
         "LOSSGEN_PORTABLE", "LOSSGEN_NO_LIBMVEC", "python3 -m venv")


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def commands() -> list[str]:
    """Every command line of the bash blocks, continuations joined, comments dropped."""
    out = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
            if line:
                out.append(" ".join(line.split()))
    return out


def quick(argv: list[str]) -> list[str]:
    argv = list(argv)
    for i, arg in enumerate(argv[:-1]):
        if arg in QUICK:
            argv[i + 1] = QUICK[arg]
    if argv and argv[0] in PHASE3 and "--max-epochs" not in argv:
        argv += ["--max-epochs", QUICK["--max-epochs"]]
    if argv[:1] == ["run"] and "--budget" not in argv:
        argv += ["--budget", QUICK["--budget"]]
    if argv[:1] == ["run"] and "--seeds" not in argv:
        argv += ["--seeds", QUICK["--seeds"]]
    return argv


def test_the_readme_has_the_commands_this_test_runs():
    lines = commands()
    assert any(c.startswith("lossgen run") for c in lines) and any(c == "make run" for c in lines)
    assert any(c == "make test" for c in lines) and blocks("python")
    unknown = [c for c in lines if not (c.startswith(("lossgen ", "python bench/")) or c == "lossgen"
                                        or c.startswith(SETUP))]
    assert not unknown, f"README commands this test does not know how to run: {unknown}"


def test_the_python_block_runs_as_written():
    for block in blocks("python"):
        exec(compile(block, "README.md", "exec"), {})


@pytest.mark.parametrize("line", [c for c in commands() if c.startswith("python bench/")])
def test_bench_commands_start(line):
    argv = shlex.split(line)[1:]
    script = ROOT / argv[0]
    assert script.is_file(), f"{line}: no such script"
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for option in (a.split("=")[0] for a in argv[1:] if a.startswith("--")):
        assert option in result.stdout, f"{line}: the script does not take {option}"


def test_lossgen_commands_run_as_written(tmp_path):
    data_dir = os.environ.get("LOSSGEN_DATA_DIR")
    runner = CliRunner()
    ran = skipped = 0
    for line in (c for c in commands() if c.startswith("lossgen")):
        argv = shlex.split(line)[1:]
        if "ml-100k" in line or "--data-dir" in argv:  # MovieLens data, or a run made on it
            if not data_dir or not (Path(data_dir) / "ml-100k" / "u.data").is_file():
                skipped += 1
                continue
            argv = [data_dir if a == "../shared/data" else a for a in argv]
        if argv[:1] == ["export"] and len(argv) >= 3:  # the README's id is an example: use the run's best
            argv[2] = _best_id(tmp_path / argv[1])
        result = runner.invoke(app, quick(argv))
        assert result.exit_code == 0, f"`{line}` exited {result.exit_code}:\n{result.output}"
        ran += 1
    assert ran >= 8 or (skipped and ran >= 5), (ran, skipped)


def _best_id(run: Path) -> str:
    from lossgen.runs import RunStore

    store = RunStore.open_readonly(run)
    try:
        return max(store.evaluated(), key=lambda r: r.reward).id
    finally:
        store.close()
