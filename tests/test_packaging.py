"""lossgen.search is importable as a user imports it, in editable and regular installs, and the
repository's search/ directory never becomes a top-level package named `search`."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, cwd: Path, env_path: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin"}
    if env_path is not None:
        env["PYTHONPATH"] = env_path
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=env)


def test_installed_lossgen_search_imports_from_anywhere(tmp_path):
    # This test session runs against the install made by `pip install -e .` (editable).
    result = run_python(
        "import lossgen.search, pathlib; print(pathlib.Path(lossgen.search.__file__).parent.name)", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "search"
    top_level = run_python("import search", cwd=tmp_path)
    assert top_level.returncode != 0 and "No module named 'search'" in top_level.stderr


def test_regular_install_layout_maps_search_into_lossgen(tmp_path):
    # What a regular (non-editable) install copies: setuptools' build_py with our package-dir.
    build = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "build_py", "--build-lib", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr
    assert (tmp_path / "lossgen" / "search" / "__init__.py").is_file()
    # every subpackage of the source tree is installed, not only the ones pyproject happened to list
    for init in (ROOT / "lossgen").glob("*/__init__.py"):
        assert (tmp_path / "lossgen" / init.parent.name / "__init__.py").is_file(), init.parent.name
    assert not (tmp_path / "search").exists()
    result = run_python("import lossgen.search; print(lossgen.search.__file__)", cwd=tmp_path, env_path=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(tmp_path))
