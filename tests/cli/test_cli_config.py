"""`--config FILE` (TOML) for `lossgen search` and `lossgen run`: precedence command line >
file > default, and one-line errors for unknown keys, wrong types, missing or invalid files."""

from __future__ import annotations

import json

import pytest

from cli_helpers import assert_user_error, invoke, private_cache  # noqa: F401  (autouse fixture)
from lossgen.cli.config import ConfigFileError, load_config_file, resolve
from lossgen.phases.settings import OPTION_TYPES, PHASE_OPTIONS, SEARCH_OPTIONS
from lossgen.runs import RunStore


def write(path, text):
    path.write_text(text)
    return path


def stored(run_dir):
    store = RunStore.open_existing(run_dir)
    try:
        return store.config, store.rounds(), store.candidates()
    finally:
        store.close()


# ----------------------------------------------------------------------------- the commands


def test_file_values_are_used(tmp_path):
    config = write(tmp_path / "c.toml", 'strategy = "random"\nper-round = 5\nmax-rounds = 2\n')
    result = invoke("search", "--config", config, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "2 rounds done" in " ".join(result.output.split())
    on_disk = json.loads((tmp_path / "run" / "config.json").read_text())
    assert on_disk["strategy"] == "random" and on_disk["per_round"] == 5
    _, rounds, rows = stored(tmp_path / "run")
    assert len(rounds) == 2 and len(rows) == 10
    assert all(r.strategy == "random" for r in rows)


def test_command_line_overrides_the_file(tmp_path):
    config = write(tmp_path / "c.toml", 'strategy = "random"\nper_round = 5\nmax-rounds = 2\nseed = 3\n')
    result = invoke("search", "--config", config, "--per-round", 3, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    config, rounds, rows = stored(tmp_path / "run")
    assert config["per_round"] == 3 and config["strategy"] == "random" and config["seed"] == 3
    assert len(rounds) == 2 and len(rows) == 6


def test_run_dir_and_time_limit_from_the_file(tmp_path):
    config = write(tmp_path / "c.toml", f'run-dir = "{tmp_path / "from-file"}"\ntime-limit = "0.2s"\nproxy = false\n')
    result = invoke("search", "--config", config)
    assert result.exit_code == 0, result.output
    assert "time limit of 0.2 s reached" in " ".join(result.output.split())
    config, rounds, rows = stored(tmp_path / "from-file")
    assert config["proxy"] is False and rounds and all(r.state in ("off", "duplicate", "rejected") for r in rows)


@pytest.mark.parametrize("body, fragments", [
    ("colour = 1\n", ["c.toml", "unknown keys colour"]),
    ('per-round = "five"\n', ["'per_round'", "int", "'five'"]),
    ("per-round = true\n", ["'per_round'", "int"]),
    ('budget = "five"\n', ["'budget'", "int"]),
    ("max-rounds = 2.5\n", ["'max_rounds'", "int"]),
    ("proxy = 1\n", ["'proxy'", "bool"]),
    ('eta = "small"\n', ["'eta'", "float"]),
    ("per-round = [\n", ["c.toml", "not valid TOML"]),
    ("strategy = random\n", ["c.toml", "not valid TOML"]),
])
def test_bad_config_files(tmp_path, body, fragments):
    config = write(tmp_path / "c.toml", body)
    # --max-sampled keeps a search that wrongly starts short.
    assert_user_error(invoke("search", "--config", config, "--max-sampled", 10, "--run-dir", tmp_path / "run"), *fragments)
    assert not (tmp_path / "run").exists()


def test_missing_config_file(tmp_path):
    missing = tmp_path / "nope.toml"
    assert_user_error(invoke("search", "--config", missing), str(missing), "does not exist")
    assert_user_error(invoke("run", "--config", missing), str(missing), "does not exist")


def test_one_file_serves_run_and_search(tmp_path):
    config = write(tmp_path / "c.toml", "top = 0\nmax-rounds = 1\n")
    assert_user_error(invoke("run", "--config", config, "--run-dir", tmp_path / "run"), "top must be at least 1")
    assert not (tmp_path / "run").exists()
    result = invoke("search", "--config", config, "--run-dir", tmp_path / "run")  # search ignores `top`
    assert result.exit_code == 0, result.output
    assert RunStore.open_existing(tmp_path / "run").last_round() == 0


# ----------------------------------------------------------------------------- the functions


def test_load_config_file(tmp_path):
    assert load_config_file(None, {"budget"}) == {}
    path = write(tmp_path / "c.toml", 'max-rounds = 4\nstrategy = "evolution"\nproxy = false\n')
    assert load_config_file(path, set(SEARCH_OPTIONS)) == {"max_rounds": 4, "strategy": "evolution", "proxy": False}
    with pytest.raises(ConfigFileError, match="unknown keys max_rounds, proxy"):
        load_config_file(path, {"strategy"})
    with pytest.raises(ConfigFileError, match="does not exist"):
        load_config_file(tmp_path / "missing.toml", {"strategy"})
    with pytest.raises(ConfigFileError, match="not valid TOML"):
        load_config_file(write(tmp_path / "bad.toml", "a = = 1\n"), {"a"})
    with pytest.raises(ConfigFileError, match="not valid TOML"):
        load_config_file(tmp_path, {"a"})  # a directory


def test_resolve_precedence_and_types():
    defaults = {"strategy": "rl", "per_round": 10, "eta": 1e-3, "proxy": True, "budget": None}
    # command line > file > default; None on the command line means "not given".
    out = resolve({"strategy": "evolution", "per_round": None}, {"strategy": "random", "per_round": 5, "eta": 1}, defaults)
    assert out == {"strategy": "evolution", "per_round": 5, "eta": 1.0, "proxy": True, "budget": None}
    assert isinstance(out["eta"], float)
    assert resolve({}, {}, defaults) == defaults
    assert resolve({"proxy": False}, {"proxy": True}, defaults)["proxy"] is False
    # Keys defaulting to None take any value unless their type is given.
    assert resolve({}, {"budget": "x"}, defaults)["budget"] == "x"
    assert resolve({}, {"budget": 7}, defaults, {"budget": int})["budget"] == 7
    for file, types, key in [({"per_round": "five"}, None, "per_round"), ({"per_round": True}, None, "per_round"),
                             ({"eta": True}, None, "eta"), ({"proxy": 1}, None, "proxy"),
                             ({"budget": 2.5}, {"budget": int}, "budget"),
                             ({"budget": False}, {"budget": int}, "budget")]:
        with pytest.raises(ConfigFileError, match=f"'{key}'"):
            resolve({}, file, defaults, types)
    # A tuple of types: any of them (ints stay ints when int is one of them).
    assert resolve({}, {"budget": 90}, defaults, {"budget": (str, int, float)})["budget"] == 90
    assert resolve({}, {"budget": "90m"}, defaults, {"budget": (str, int, float)})["budget"] == "90m"


def test_every_option_without_a_default_has_a_type():
    untyped = {k for k, v in {**SEARCH_OPTIONS, **PHASE_OPTIONS}.items() if v is None or isinstance(v, tuple)}
    assert untyped == set(OPTION_TYPES)
