"""The layers of the package (docs/architecture.md) hold: `lint-imports` (import-linter, with the
contracts in pyproject.toml's [tool.importlinter]) passes on the repository, and fails, naming
the contract, on a copy of it with an import that breaks one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = [c["name"] for c in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]]
LAYERS, ONLY_CLI, STRATEGIES = CONTRACTS


def lint_imports_command() -> str | None:
    beside = Path(sys.executable).parent / "lint-imports"  # the test environment's own, first
    return str(beside) if beside.is_file() else shutil.which("lint-imports")


LINT_IMPORTS = lint_imports_command()
pytestmark = pytest.mark.skipif(LINT_IMPORTS is None, reason="lint-imports (import-linter) is not installed")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the pyproject.toml in `cwd`, reading the packages found there (no cache
    written into the tree)."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([LINT_IMPORTS, "--no-cache", "--no-logo"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_repository_keeps_every_contract():
    assert len(CONTRACTS) == 3
    result = lint_imports(ROOT)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    for name in CONTRACTS:
        assert f"{name} KEPT" in out, out
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in out, out


def copy_of_the_repository(tmp_path: Path) -> Path:
    """The package sources (lossgen/ and search/, .py files only) and pyproject.toml."""
    copy = tmp_path / "repo"
    for package in ("lossgen", "search"):
        for source in (ROOT / package).rglob("*.py"):
            if "__pycache__" in source.parts:
                continue
            target = copy / source.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    shutil.copyfile(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


@pytest.mark.parametrize("module, line, broken, importer, imported", [
    # the IR importing the top layer breaks every contract: the layers, the command line's, and
    # the strategies' (they import the IR, so now everything the command line imports)
    ("lossgen/ir/opset.py", "import lossgen.cli", [LAYERS, ONLY_CLI, STRATEGIES], "lossgen.ir.opset",
     "lossgen.cli"),
    # a layer importing one above it (not the command line)
    ("lossgen/kernels/verify.py", "from lossgen.runs import RunStore", [LAYERS], "lossgen.kernels.verify",
     "lossgen.runs"),
    # a strategy reaching past the IR
    ("search/random_search.py", "from lossgen import kernels", [STRATEGIES], "search.random_search",
     "lossgen.kernels"),
])
def test_an_import_that_breaks_a_contract_fails(tmp_path, module, line, broken, importer, imported):
    copy = copy_of_the_repository(tmp_path)
    assert lint_imports(copy).returncode == 0  # the copy as it is keeps the contracts
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}  # breaks a contract\n")
    result = lint_imports(copy)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    for name in CONTRACTS:
        assert f"{name} {'BROKEN' if name in broken else 'KEPT'}" in out, (name, out)
    assert f"Contracts: {len(CONTRACTS) - len(broken)} kept, {len(broken)} broken." in out, out
    assert importer in out and imported in out, out
