"""Shared by the pipeline CLI tests: invoking `lossgen` in-process, a private data cache, and the
one-line user-error contract."""

import pytest
from typer.testing import CliRunner

from lossgen.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Prepared splits go to a private cache; relative default paths land in tmp_path.
    (Autouse in every module that imports it.)"""
    monkeypatch.setenv("LOSSGEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *fragments):
    """Exit 2, exactly one line that starts with 'error:' and names `fragments`; no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
