"""Fault injection for data: each bad input (a damaged MovieLens file, a foreign split with ids
train never saw, a bad dataset option, data that moved or changed under a run) gives exactly one
line naming the problem, exit 2, no traceback, and changes nothing on disk."""

import shutil

import pytest

from cli_helpers import assert_user_error, invoke, private_cache  # noqa: F401  (autouse fixture)
from data_helpers import foreign_split, movielens_dir, movielens_text, offline  # noqa: F401  (offline: autouse fixture)
from lossgen.runs import RunStore

GOOD = movielens_text()
LAST = GOOD.splitlines()[-1]
RUN = ("--strategy", "random", "--budget", 4, "--per-round", 4, "--seed", 0)
PHASE3 = ("--top", 1, "--seeds", 1, "--max-epochs", 2)




def tree(root):
    """Every file under root with its bytes (to show that nothing changed)."""
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_state(run):
    """What a run holds: its config, checkpoints, candidates and meta (Phase III results among them)."""
    store = RunStore.open_readonly(run)
    try:
        return ((run / "config.json").read_bytes(), sorted(p.name for p in (run / "checkpoints").iterdir()),
                [(c.id, c.state, c.reward, c.phase2_rate) for c in store.candidates()],
                store.get_meta("phase3"), store.get_meta("data"), (run / "phase3").exists())
    finally:
        store.close()


def ok(*args):
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


# ------------------------------------------------------------------ damaged MovieLens files

DAMAGED = {
    "cut mid-line, four fields left": (GOOD[:-4], "the file ends without a line end, so its last line may be cut short"),
    "cut mid-line, two fields left": (GOOD + "\t".join(LAST.split("\t")[:2]), "the last line is cut short (2 of 4 fields and no line end)"),
    "a row with five fields": (GOOD + LAST + "\t9\n", "5 fields, expected 4"),
    "a row with three fields": (GOOD + "1\t2\t3\n", "3 fields, expected 4"),
    "an empty line": (GOOD + "\n" + LAST + "\n", "empty line"),
    "rating above 5": (GOOD + "1\t2\t6\t880000000\n", "rating 6 is outside 1..5"),
    "rating 0": (GOOD + "1\t2\t0\t880000000\n", "rating 0 is outside 1..5"),
    "user id 0": (GOOD + "0\t2\t3\t880000000\n", "user id 0 is not positive"),
    "negative item id": (GOOD + "3\t-2\t3\t880000000\n", "item id -2 is not positive"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_movielens_file_is_refused_by_data_stats(tmp_path, case):
    text, message = DAMAGED[case]
    data = movielens_dir(tmp_path / "data", text)
    before = tree(tmp_path / "data")
    line = assert_user_error(invoke("data", "stats", "ml-100k", "--data-dir", data), message)
    assert "u.data, row " in line
    assert tree(tmp_path / "data") == before and not (tmp_path / "cache" / "prepared").exists()


@pytest.mark.parametrize("case", ["cut mid-line, four fields left", "rating above 5"])
def test_damaged_movielens_file_is_refused_by_search(tmp_path, case):
    text, message = DAMAGED[case]
    data = movielens_dir(tmp_path / "data", text)
    assert_user_error(invoke("search", "--dataset", "ml-100k", "--data-dir", data, *RUN), message)
    assert not (tmp_path / "runs").exists()


def test_damaged_movielens_file_is_refused_by_prepare(tmp_path):
    data = movielens_dir(tmp_path / "data", GOOD[:-4])
    assert_user_error(invoke("data", "prepare", "ml-100k", "--data-dir", data, "--out", tmp_path / "out"), "cut short")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ foreign split directories


@pytest.mark.parametrize("command", [("data", "stats"), ("data", "prepare"), ("search",), ("evaluate",)])
def test_unknown_ids_refusal_says_how_to_go_on(tmp_path, command):
    d = foreign_split(tmp_path / "split")
    before = tree(d)
    if command[0] == "data":
        args = [*command, d] + (["--out", tmp_path / "out"] if command[1] == "prepare" else [])
    elif command[0] == "search":
        args = ["search", "--dataset", d, *RUN]
    else:
        args = ["evaluate", "--dataset", d, "--losses", "BCE", "--seeds", 1, "--max-epochs", 2]
    line = assert_user_error(invoke(*args), "unknown iid 1543 (never seen in train)")
    assert f"{d}:unknown=drop" in line and f"{d}:unknown=extend" in line
    assert tree(d) == before and not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("suffix, message", [
    (":unknown=keep", "unknown=keep is not a mode; choose unknown=refuse, drop or extend"),
    (":mode=drop", "unknown dataset option 'mode'"),
    (":name=nope", "no split named 'nope'"),
    (":unknown=", "the option unknown needs a value"),
])
def test_bad_split_options(tmp_path, suffix, message):
    d = foreign_split(tmp_path / "split")
    assert_user_error(invoke("data", "stats", f"{d}{suffix}"), message)
    assert_user_error(invoke("search", "--dataset", f"{d}{suffix}", *RUN), message)
    assert not (tmp_path / "runs").exists()


def test_split_options_on_other_data_are_refused(tmp_path):
    data = movielens_dir(tmp_path / "data")
    assert_user_error(invoke("data", "stats", "ml-100k:unknown=drop", "--data-dir", data),
                      "only apply to a split directory, not to ml-100k")
    assert_user_error(invoke("data", "stats", f"{data / 'ml-100k'}:unknown=drop"), "is not one")


def test_several_splits_need_a_name(tmp_path):
    d = foreign_split(tmp_path / "split")
    foreign_split(d, name="other")
    assert_user_error(invoke("data", "stats", d), "several splits (ncr, other)", f"{d}:name=NAME")


def test_split_info_declares_ids_so_extend_is_refused(tmp_path):
    ok("data", "prepare", "synthetic:users=40,items=50", "--out", tmp_path / "own", "--name", "s")
    assert_user_error(invoke("data", "stats", f"{tmp_path / 'own'}:unknown=extend"), "declares the id space")


def test_prepare_into_the_split_directory_itself_is_refused(tmp_path):
    d = foreign_split(tmp_path / "split")
    before = tree(d)
    assert_user_error(invoke("data", "prepare", f"{d}:unknown=extend", "--out", d), "is the split directory itself")
    assert tree(d) == before


# ------------------------------------------------------------------ a run's data moved or changed


@pytest.fixture
def run_on_movielens(tmp_path):
    data = movielens_dir(tmp_path / "data")
    run = tmp_path / "run"
    ok("search", "--dataset", "ml-100k", "--data-dir", data, "--run-dir", run, *RUN)
    ok("check", run)
    return data, run


def test_evaluate_when_the_data_moved(tmp_path, run_on_movielens):
    data, run = run_on_movielens
    shutil.move(data, tmp_path / "moved")
    before = run_state(run)
    assert_user_error(invoke("evaluate", run, *PHASE3), "read its data (ml-100k) from", "which is no longer there",
                      "--data-dir")
    assert run_state(run) == before


def test_evaluate_when_the_data_changed(tmp_path, run_on_movielens):
    data, run = run_on_movielens
    (data / "ml-100k" / "u.data").write_text(movielens_text(seed=1))
    before = run_state(run)
    assert_user_error(invoke("evaluate", run, *PHASE3), "has changed since", "--data-dir")
    assert_user_error(invoke("evaluate", run, *PHASE3, "--data-dir", data), "is not the data", "--data-dir")
    assert run_state(run) == before


def test_compare_when_the_data_moved(tmp_path):
    data = movielens_dir(tmp_path / "data")
    args = ("compare", "--strategies", "random", "--seeds", 1, "--budget", 4, "--dataset", "ml-100k", "--max-epochs", 2,
            "--phase3-seeds", 1, "--top", 1, "--baselines", "BCE", "--out", tmp_path / "cmp")
    ok(*args, "--data-dir", data)
    shutil.move(data, tmp_path / "moved")
    before = (tmp_path / "cmp" / "plan.json").read_bytes(), run_state(tmp_path / "cmp" / "runs" / "random-s0")
    assert_user_error(invoke(*args), "the comparison in", "which is no longer there", "--data-dir")
    assert ((tmp_path / "cmp" / "plan.json").read_bytes(), run_state(tmp_path / "cmp" / "runs" / "random-s0")) == before
    ok(*args, "--data-dir", tmp_path / "moved")
    store = RunStore.open_readonly(tmp_path / "cmp" / "runs" / "random-s0")
    try:
        assert store.get_meta("data")["origin"] == str(tmp_path / "moved" / "ml-100k" / "u.data")
    finally:
        store.close()
