"""Where data comes from, from the command line: a run (and a comparison) remembers where it read
its data and reads it there again; `data stats` names the file it read; foreign split directories
through `DIR:unknown=drop|extend`. MovieLens is stood in for by a small synthetic u.data."""

import json
import shutil


from cli_helpers import invoke, private_cache  # noqa: F401  (autouse fixture)
from data_helpers import foreign_split, movielens_dir, offline  # noqa: F401  (offline: autouse fixture)
from lossgen.phases.rundata import DATA_META
from lossgen.runs import RunStore

PHASE3 = ("--top", 3, "--seeds", 1, "--max-epochs", 3)




def ok(*args):
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def meta(run, key=DATA_META):
    store = RunStore.open_readonly(run)
    try:
        return store.get_meta(key)
    finally:
        store.close()


def test_movielens_flow_search_then_evaluate_without_data_dir(tmp_path, monkeypatch, offline):  # noqa: F811  (the fixture)
    movielens_dir(tmp_path / "data")
    ok("search", "--strategy", "evolution", "--dataset", "ml-100k", "--data-dir", "data", "--budget", 10, "--seed", 0)
    run = tmp_path / "runs" / "evolution-ml-100k-mf-s0"
    assert meta(run)["origin"] == str(tmp_path / "data" / "ml-100k" / "u.data")
    assert "origin" not in json.loads((run / "config.json").read_text())  # not part of the run's identity
    ok("check", run)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the relative --data-dir given to search means nothing here
    result = ok("evaluate", run, *PHASE3)
    assert (run / "phase3").is_dir() and "Phase III on ml-100k" in " ".join(result.output.split())
    assert not offline


def test_resume_with_another_data_dir_holding_the_same_data(tmp_path):
    movielens_dir(tmp_path / "a")
    args = ("search", "--strategy", "random", "--dataset", "ml-100k", "--run-dir", tmp_path / "run", "--per-round", 4)
    ok(*args, "--data-dir", tmp_path / "a", "--budget", 4)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    result = ok(*args, "--data-dir", tmp_path / "b", "--budget", 8)
    assert "resuming" in result.output
    assert meta(tmp_path / "run")["origin"] == str(tmp_path / "b" / "ml-100k" / "u.data")


def test_a_run_without_a_data_record_looks_the_data_up_as_before(tmp_path, monkeypatch):
    data = movielens_dir(tmp_path / "data")
    run = tmp_path / "run"
    ok("search", "--strategy", "random", "--dataset", "ml-100k", "--data-dir", data, "--run-dir", run, "--budget", 4)
    ok("check", run)
    store = RunStore.open_existing(run)
    store.set_meta(DATA_META, None)  # as a run made before runs recorded where their data was
    store.close()
    monkeypatch.setenv("LOSSGEN_DATA_DIR", str(data))
    ok("evaluate", run, *PHASE3)


def test_data_stats_shows_the_file_it_read(tmp_path):
    movielens_dir(tmp_path / "a")
    movielens_dir(tmp_path / "b")
    ok("data", "stats", "ml-100k", "--data-dir", tmp_path / "a")  # fills the cache from a
    result = ok("data", "stats", "ml-100k", "--data-dir", tmp_path / "b")
    assert f"source: {tmp_path / 'b' / 'ml-100k' / 'u.data'}" in " ".join(result.output.split())
    shown = json.loads(ok("data", "stats", "ml-100k", "--data-dir", tmp_path / "b", "--json").output.splitlines()[-1])
    assert shown["source"] == str(tmp_path / "b" / "ml-100k" / "u.data")


def test_foreign_split_with_unknown_ids_through_search_and_evaluate(tmp_path):
    d = foreign_split(tmp_path / "split")
    run = tmp_path / "run"
    ok("search", "--strategy", "random", "--dataset", f"{d}:unknown=extend", "--run-dir", run, "--budget", 6)
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"] == f"{d}:unknown=extend"
    ok("check", run)
    ok("evaluate", run, *PHASE3)
    # the mode is part of the run's identity: the same run with other data is refused
    other = invoke("search", "--strategy", "random", "--dataset", f"{d}:unknown=drop", "--run-dir", run, "--budget", 6)
    assert other.exit_code == 2 and "dataset" in other.output


def test_drop_warns_once_per_file_and_stats_show_the_rest(tmp_path):
    d = foreign_split(tmp_path / "split")
    result = ok("data", "stats", f"{d}:unknown=drop")
    assert "dropped 1 rows with ids never seen in train" in " ".join(result.output.split())
    extended = json.loads(ok("data", "stats", f"{d}:unknown=extend", "--json").output)
    refused_ids = json.loads(ok("data", "stats", f"{d}:unknown=drop", "--json").output.splitlines()[-1])
    assert extended["items"] == refused_ids["items"] + 2 and extended["test"] is None


def test_prepare_writes_a_foreign_split_that_loads_without_options(tmp_path):
    d = foreign_split(tmp_path / "split")
    ok("data", "prepare", f"{d}:unknown=extend", "--out", tmp_path / "ours")
    assert (tmp_path / "ours" / "ncr.info.json").is_file()
    ours = json.loads(ok("data", "stats", tmp_path / "ours", "--json").output)
    theirs = json.loads(ok("data", "stats", f"{d}:unknown=extend", "--json").output)
    assert ours["key"] == theirs["key"] and ours["items"] == theirs["items"] and ours["test"] > 0


def test_compare_resumed_without_data_dir_reads_where_it_did(tmp_path, offline):  # noqa: F811  (the fixture)
    data = movielens_dir(tmp_path / "data")
    args = ("compare", "--strategies", "random", "--seeds", 1, "--budget", 4, "--dataset", "ml-100k", "--max-epochs", 2,
            "--phase3-seeds", 1, "--top", 1, "--baselines", "BCE", "--out", tmp_path / "cmp")
    ok(*args, "--data-dir", data)
    plan = json.loads((tmp_path / "cmp" / "plan.json").read_text())
    assert plan["data"]["origin"] == str(data / "ml-100k" / "u.data")
    ok(*args)
    assert not offline
    run = tmp_path / "cmp" / "runs" / "random-s0"
    assert meta(run)["origin"] == str(data / "ml-100k" / "u.data")
    ok("evaluate", run, "--top", 1, "--seeds", 1, "--max-epochs", 2)
