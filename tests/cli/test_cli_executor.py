"""`--executor local|ray` and `--ray-address` on compare, search, run and evaluate: without Ray the
ray executor fails with one line that says how to install it (the default suite; Ray's own tests
are in tests/distributed)."""

import sys

import pytest

from cli_helpers import assert_user_error, invoke, private_cache  # noqa: F401 - autouse fixture
from lossgen.phases.executor import INSTALL_HINT, ExecutorError, ExecutorSettings, require_ray

COMMANDS = {
    "compare": ["compare", "--strategies", "random", "--seeds", "1", "--budget", "2", "--out", "cmp"],
    "search": ["search", "--budget", "2"],
    "run": ["run", "--budget", "2"],
    "evaluate": ["evaluate", "--losses", "BCE", "--max-epochs", "1", "--seeds", "1"],
}


@pytest.fixture
def no_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_ray_executor_without_ray_is_one_line_saying_how_to_install_it(no_ray, tmp_path, command):
    assert_user_error(invoke(*COMMANDS[command], "--executor", "ray"), 'pip install "lossgen[ray]"')
    assert not (tmp_path / "cmp").exists() and not (tmp_path / "runs").exists()  # refused before any work


@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_executor_options_are_one_line(command):
    assert_user_error(invoke(*COMMANDS[command], "--executor", "spark"), "unknown executor 'spark'")
    assert_user_error(invoke(*COMMANDS[command], "--ray-address", "auto"), "--ray-address needs --executor ray")


def test_executor_settings(no_ray):
    ExecutorSettings().check()
    with pytest.raises(ExecutorError, match="choose local or ray"):
        ExecutorSettings("dask").check()
    with pytest.raises(ExecutorError) as err:
        require_ray()
    assert str(err.value) == INSTALL_HINT
    with pytest.raises(ExecutorError, match="workers must be at least 1"):
        ExecutorSettings("local", workers=0).check()
