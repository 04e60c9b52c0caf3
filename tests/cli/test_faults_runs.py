"""Fault injection on run directories, through the command line: every fault gives one line naming
the problem (exit 2, no traceback; 130 for Ctrl-C), and leaves the run directory unchanged or
resumable to the same result as an uninterrupted run.

How the faults are made (tests cannot mount file systems):
- read-only media: the run (or the parent of a new run) is `chmod`-ed read-only and the commands
  run in a subprocess that cannot override permissions. A normal user cannot anyway; root can, so
  as root the subprocess first drops the capabilities that bypass file permissions
  (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER) with capset(2). The kernel then refuses its
  writes with EACCES and `os.access` answers False, exactly as for a read-only mount (EROFS)
  apart from the errno; the test skips where neither is possible;
- disk full: RLIMIT_FSIZE, a file size limit. Writes past it fail with EFBIG (CPython ignores
  SIGXFSZ, which would otherwise kill the process), the same write path ENOSPC and EDQUOT take,
  and one the code handles identically. The limit is set and restored around one in-process
  command, below the size of the files that command writes;
- corrupted checkpoints: random bytes and text written over the files;
- a second process: a real `lossgen search` holding the run while this process tries it;
- Ctrl-C: a real SIGINT raised while Phase III trains (the training is stubbed to raise it).
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import assert_user_error, invoke, private_cache, runner  # noqa: F401  (autouse fixture)
from kill_resume import committed_rounds
from lossgen.cli import app
from lossgen.runs import CandidateRecord, RunError, RunStore

KEY = ("id", "formula", "reward", "state", "accepted", "evaluation")


# ----------------------------------------------------------------------------- helpers


def ok(*args):
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def rows(run) -> tuple[list[tuple], list[int]]:
    """A run's candidates (the fields that define its result) and rounds, read without writing."""
    store = RunStore.open_readonly(run)
    try:
        return [tuple(getattr(r, k) for k in KEY) for r in store.candidates()], [r.round for r in store.rounds()]
    finally:
        store.close()


def listing(run) -> dict[str, bytes | None]:
    """Every file of a run directory with its bytes (checkpoints, config), for "unchanged". The
    database is compared by its rows (SQLite may rewrite pages or leave -wal/-shm behind), and
    the lock file is the holder's note, not part of the run."""
    out = {}
    for p in sorted(Path(run).rglob("*")):
        name = p.relative_to(run).as_posix()
        if p.is_file() and not name.startswith("run.db") and name != ".lock":
            out[name] = p.read_bytes()
    return out


def assert_last_line_error(result, *fragments, code: int = 2) -> str:
    """A failure in the middle of a command that had printed progress: exit `code`, exactly one
    error line, the last one, no traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def search(run, rounds, env=None):
    return runner.invoke(app, ["search", "--max-rounds", str(rounds), "--run-dir", str(run)], env=env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A two-round run (tests copy it before breaking it) and a four-round run made in one go
    (what a resumed copy must equal)."""
    root = tmp_path_factory.mktemp("faults")
    env = {"LOSSGEN_CACHE_DIR": str(root / "cache")}
    for name, rounds in (("two", 2), ("four", 4)):
        result = search(root / name, rounds, env)
        assert result.exit_code == 0, result.output
    return root / "two", root / "four"


@pytest.fixture
def run(tmp_path, runs):
    """A fresh copy of the two-round run."""
    copy = tmp_path / "run"
    shutil.copytree(runs[0], copy)
    return copy


def assert_resumes_to_the_uninterrupted_result(run, runs):
    result = search(run, 4)
    assert result.exit_code == 0, result.output
    assert rows(run) == rows(runs[1])


# ----------------------------------------------------------------------------- paths


def test_run_dir_that_is_a_file(tmp_path):
    target = tmp_path / "afile"
    target.write_text("mine")
    assert_user_error(invoke("search", "--max-rounds", 1, "--run-dir", target), f"run directory {target} is a file")
    assert target.read_text() == "mine"


def test_run_dir_under_a_file(tmp_path):
    target = tmp_path / "afile"
    target.write_text("mine")
    assert_user_error(invoke("search", "--max-rounds", 1, "--run-dir", target / "run"),
                      str(target / "run"), f"{target} is a file, not a directory")
    assert target.read_text() == "mine"


@pytest.mark.parametrize("command", [["check", "{x}"], ["evaluate", "{x}"], ["report", "{x}"], ["export", "{x}", "rl-0"]])
def test_commands_on_a_run_path_under_a_file(tmp_path, command):
    (tmp_path / "afile").write_text("mine")
    args = [tmp_path / "afile" / "run" if a == "{x}" else a for a in command]
    assert_user_error(invoke(*args), f"{tmp_path / 'afile'} is a file")


def test_report_out_under_a_file(tmp_path, run):
    before = listing(run)
    (tmp_path / "afile").write_text("mine")
    assert_user_error(invoke("report", run, "--out", tmp_path / "afile" / "report"),
                      str(tmp_path / "afile" / "report"), f"{tmp_path / 'afile'} is a file, not a directory")
    assert listing(run) == before and (tmp_path / "afile").read_text() == "mine"


# ----------------------------------------------------------------------------- disk full


@pytest.fixture
def file_size_limit():
    """Set RLIMIT_FSIZE (soft) for the duration of one command, restored afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.getsignal(signal.SIGXFSZ)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # CPython's default already; writes then fail with EFBIG

    def limit(nbytes):
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))

    yield limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, handler)


def test_disk_full_during_a_search_keeps_the_last_round_and_resumes(run, runs, file_size_limit):
    before, recorded = listing(run), rows(run)
    model = min(p.stat().st_size for p in (run / "checkpoints").glob("model-*.pt"))
    round_file = min(p.stat().st_size for p in (run / "checkpoints").glob("round-*.pt"))
    # the session's first commit writes the model, then the round checkpoint: fail at the second
    # when it is the larger (the model file already written must go again), else at the first
    file_size_limit((model + round_file) // 2 if model < round_file else round_file // 2)
    try:
        result = search(run, 4)
    finally:
        file_size_limit(resource.RLIM_INFINITY)
    line = assert_last_line_error(result, "file too large while writing", str(run / "checkpoints"),
                                  "keeps its last completed round (1)")
    assert "resumes" in line
    assert listing(run) == before  # no partial file, no temp file, no orphaned model file
    assert rows(run) == recorded
    assert_resumes_to_the_uninterrupted_result(run, runs)


def candidate(i, round_):
    return CandidateRecord(id=f"c{round_}-{i}", round=round_, program=[[0, 0, 1]], formula="f" * 2000,
                           fingerprint="ab", strategy="rl", state="passed", reward=0.1)


def test_disk_full_while_writing_run_db(tmp_path, file_size_limit):
    """Checkpoint files small, the database's write the one that fails: the round is not
    recorded, its checkpoint is removed again, and the store still works afterwards."""
    store = RunStore.open_or_create(tmp_path / "run", {"toy": 1})
    store.commit_round(0, [candidate(i, 0) for i in range(3)], {}, {"x": 0}, 0.0)
    wal = tmp_path / "run" / "run.db-wal"
    file_size_limit(max(wal.stat().st_size, (tmp_path / "run" / "run.db").stat().st_size) + 4096)
    try:
        with pytest.raises(RunError, match=r"disk full or file too large while writing .*run\.db.*last completed round \(0\)"):
            store.commit_round(1, [candidate(i, 1) for i in range(40)], {}, {"x": 1}, 0.0)
    finally:
        file_size_limit(resource.RLIM_INFINITY)
    assert store.last_round() == 0
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["round-000000.pt"]
    store.commit_round(1, [candidate(i, 1) for i in range(40)], {}, {"x": 1}, 0.0)
    assert store.last_round() == 1 and store.load_checkpoint().state == {"x": 1}
    store.close()


def test_atomic_writes_leave_no_partial_file(tmp_path, file_size_limit):
    from lossgen.util.atomic import WriteError, write_bytes_atomic

    target = tmp_path / "out" / "file.bin"
    write_bytes_atomic(target, b"old")
    file_size_limit(1000)
    try:
        with pytest.raises(WriteError, match="file too large while writing"):
            write_bytes_atomic(target, b"x" * 5000)
    finally:
        file_size_limit(resource.RLIM_INFINITY)
    assert target.read_bytes() == b"old" and [p.name for p in target.parent.iterdir()] == ["file.bin"]


# ----------------------------------------------------------------------------- checkpoints


def test_random_bytes_in_the_newest_checkpoint_fall_back_to_the_previous_one(run, runs):
    newest = run / "checkpoints" / "round-000001.pt"
    newest.write_bytes(random.Random(0).randbytes(4096))  # fixed bytes: no flaky pickle paths
    result = search(run, 4)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "round-000001.pt" in warnings[0] and "UnpicklingError" in warnings[0]
    assert "fell back to the checkpoint of round 0" in warnings[0]
    assert "Traceback" not in result.output
    assert rows(run) == rows(runs[1])  # round 1 redone from round 0's state: the same run


@pytest.mark.parametrize("damage", ["text", "random"])
def test_unreadable_checkpoints_without_a_fallback_are_refused_by_name(run, damage):
    folder = run / "checkpoints"
    for p in folder.glob("round-*.pt"):
        p.write_bytes(b"Index of checkpoints\n12 rounds\n" if damage == "text" else random.Random(1).randbytes(2048))
    before, recorded = listing(run), rows(run)
    line = assert_user_error(search(run, 4), "corrupted run directory", str(run), "checkpoints/round-000001.pt",
                             "checkpoints/round-000000.pt")
    assert "restore" in line
    assert listing(run) == before and rows(run) == recorded


def test_text_in_the_only_checkpoint_names_the_file(tmp_path, runs):
    run = tmp_path / "run"
    shutil.copytree(runs[0], run)
    (run / "checkpoints" / "round-000000.pt").unlink()  # round 1's is the only one kept
    (run / "checkpoints" / "round-000001.pt").write_text("I am not a checkpoint\n")
    assert_user_error(search(run, 4), "checkpoints/round-000001.pt", "unreadable", "no earlier checkpoint")


def test_no_fallback_over_a_round_phase3_used(tmp_path):
    store = RunStore.open_or_create(tmp_path / "run", {"toy": 1})
    for r in range(2):
        store.commit_round(r, [candidate(i, r) for i in range(2)], {}, {"x": r}, 0.0)
    store.set_phase3({"c1-0": {"test_mean": 0.8}}, {"results": [{"candidate": "c1-0"}]})
    (tmp_path / "run" / "checkpoints" / "round-000001.pt").write_bytes(random.Random(2).randbytes(999))
    with pytest.raises(RunError, match="round-000001.pt.*Phase III results use its candidate c1-0"):
        store.load_checkpoint()
    assert store.last_round() == 1
    store.close()


# ----------------------------------------------------------------------------- lost database


@pytest.mark.parametrize("how", ["removed", "emptied"])
@pytest.mark.parametrize("command", [["search", "--max-rounds", "3", "--run-dir", "{run}"], ["check", "{run}"]])
def test_checkpoints_without_their_database_are_refused(run, how, command):
    for p in run.glob("run.db*"):
        p.unlink()
    if how == "emptied":
        (run / "run.db").write_bytes(b"")
    before = listing(run)
    args = [run if a == "{run}" else a for a in command]
    assert_user_error(invoke(*args), str(run), "has checkpoints", "no run database", "refusing to start over")
    assert listing(run) == before  # the checkpoints are still there, nothing was started over
    assert sorted(p.name for p in run.iterdir() if p.name != ".lock") == (
        ["checkpoints", "config.json"] + (["run.db"] if how == "emptied" else []))
    assert (run / "run.db").exists() == (how == "emptied")


def test_a_database_older_than_its_checkpoints_is_refused(tmp_path, runs):
    run = tmp_path / "run"
    shutil.copytree(runs[1], run)  # rounds 0-3, checkpoints of rounds 2 and 3
    for p in run.glob("run.db*"):
        p.unlink()
    shutil.copy(runs[0] / "run.db", run / "run.db")  # the database of rounds 0-1
    assert_user_error(search(run, 6), "checkpoints up to round 3", "run.db ends at round 1")


# ----------------------------------------------------------------------------- two processes


def test_a_second_process_is_told_who_holds_the_run(tmp_path):
    """The holder searches with the paper preset: its rounds train their candidates, so the run
    stays small while it is held (the lossgen preset's rounds sample ~300 candidates/s, and a run
    of 100,000 of them makes the report below slow)."""
    run = tmp_path / "run"

    def paper_search(rounds):
        return runner.invoke(app, ["search", "--max-rounds", str(rounds), "--run-dir", str(run), "--preset", "paper"])

    log = tmp_path / "holder.log"
    env = {**os.environ, "LOSSGEN_CACHE_DIR": os.environ["LOSSGEN_CACHE_DIR"]}
    code = "import sys; from lossgen.cli import app; sys.argv[0] = 'lossgen'; app()"
    with open(log, "wb") as out:
        holder = subprocess.Popen([sys.executable, "-c", code, "search", "--budget", "1000000", "--max-rounds",
                                   "1000000", "--run-dir", str(run), "--preset", "paper"], stdout=out,
                                  stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and holder.poll() is None:
            text = (run / ".lock").read_text() if (run / ".lock").exists() else ""
            if f'"pid": {holder.pid}' in text and committed_rounds(run) > 2:  # in its search loop
                break
            time.sleep(0.1)
        assert holder.poll() is None, log.read_text()
        line = assert_user_error(paper_search(3), f"run directory {run} is in use by pid {holder.pid}",
                                 "lossgen search --budget 1000000")
        assert " since " in line
        assert_user_error(invoke("check", run), f"in use by pid {holder.pid}")
        ok("report", run, "--out", tmp_path / "report")  # readers need no lock
    finally:
        holder.send_signal(signal.SIGINT)
        holder.wait(timeout=120)
    assert holder.returncode == 130, log.read_text()
    assert "Traceback" not in log.read_text()
    done = len(rows(run)[1])
    result = paper_search(done + 1)  # the lock went with its holder; the run resumes
    assert result.exit_code == 0, result.output
    assert rows(run)[1] == list(range(done + 1))


# ----------------------------------------------------------------------------- Phase III


def test_evaluate_out_unwritable_fails_before_training(tmp_path, monkeypatch):
    import lossgen.cli.evaluate as evaluate_cli

    def must_not_train(*args, **kwargs):
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr(evaluate_cli, "run_effectiveness", must_not_train)
    (tmp_path / "afile").write_text("mine")
    out = tmp_path / "afile" / "results"
    assert_user_error(invoke("evaluate", "--losses", "BCE", "--seeds", 1, "--max-epochs", 2, "--out", out),
                      str(out), f"{tmp_path / 'afile'} is a file")


def test_evaluate_run_with_phase3_unwritable_fails_before_training(run, monkeypatch):
    import lossgen.cli.evaluate as evaluate_cli

    def must_not_train(*args, **kwargs):
        raise AssertionError("trained before checking RUN/phase3")

    monkeypatch.setattr(evaluate_cli, "evaluate_run", must_not_train)
    (run / "phase3").write_text("in the way")
    before, recorded = listing(run), rows(run)
    assert_user_error(invoke("evaluate", run, "--seeds", 1, "--max-epochs", 2), str(run / "phase3"), "is a file")
    assert listing(run) == before and rows(run) == recorded


def assert_interrupted(result) -> str:
    """Exit 130 and one line saying what was saved, the last (progress lines may come before it)."""
    assert result.exit_code == 130, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith(("interrupted", "error", "warning"))]
    assert said == lines[-1:] and said[0].startswith("interrupted:"), result.output
    return said[0]


def _ctrl_c(*args, **kwargs):
    progress = args[-1] if args and callable(args[-1]) else kwargs.get("progress")
    if progress is not None:
        progress(1, 3)
    signal.raise_signal(signal.SIGINT)  # a real SIGINT, as from the terminal
    raise AssertionError("SIGINT did not interrupt")


def test_ctrl_c_during_phase3_of_a_run_says_what_was_saved(run, monkeypatch):
    import lossgen.cli.evaluate as evaluate_cli

    monkeypatch.setattr(evaluate_cli, "evaluate_run", _ctrl_c)
    before = listing(run)
    store = RunStore.open_readonly(run)
    meta = store.meta()
    store.close()
    result = invoke("evaluate", run, "--seeds", 1, "--max-epochs", 2)
    line = assert_interrupted(result)
    assert line.startswith("interrupted: Phase III results were not saved")
    assert f"intact in {run}" in line and "run the same command to redo Phase III" in line
    assert listing(run) == before and not (run / "phase3").exists()
    store = RunStore.open_readonly(run)
    assert store.meta() == meta
    store.close()


def test_ctrl_c_during_evaluate_says_nothing_was_saved(tmp_path, monkeypatch):
    import lossgen.cli.evaluate as evaluate_cli

    monkeypatch.setattr(evaluate_cli, "run_effectiveness", _ctrl_c)
    result = invoke("evaluate", "--losses", "BCE", "--seeds", 1, "--max-epochs", 2, "--out", tmp_path / "res")
    line = assert_interrupted(result)
    assert line == "interrupted: nothing was saved (results are printed and written only when training finishes)"
    assert not (tmp_path / "res").exists()


# ----------------------------------------------------------------------------- read-only media

# Runs in a subprocess: drops root's permission overrides (see the module docstring), then runs
# each command with the CLI runner and prints the results as JSON after a marker line.
READ_ONLY_DRIVER = r"""
import ctypes, json, os, sys

def drop_permission_overrides():
    libc = ctypes.CDLL(None, use_errno=True)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
    if libc.capget(ctypes.byref(header), data) != 0:
        return
    mask = ~((1 << 1) | (1 << 2) | (1 << 3)) & 0xFFFFFFFF  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
    data[0].effective &= mask
    data[0].permitted &= mask
    data[0].inheritable &= mask
    libc.capset(ctypes.byref(header), data)

probe, commands = sys.argv[1], json.loads(sys.argv[2])
if os.geteuid() == 0:
    try:
        drop_permission_overrides()
    except (OSError, AttributeError):
        pass
if os.access(probe, os.W_OK):
    print("@@RESULTS@@" + json.dumps({"skip": "cannot make a directory read-only for this process"}))
    sys.exit(0)
from typer.testing import CliRunner
from lossgen.cli import app
results = []
for args in commands:
    r = CliRunner().invoke(app, args)
    results.append({"args": args, "exit_code": r.exit_code, "output": r.output,
                    "exception": type(r.exception).__name__ if r.exception is not None else None})
print("@@RESULTS@@" + json.dumps(results))
"""


def _run_read_only(probe: Path, commands: list[list[str]], tmp_path: Path) -> list[dict]:
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl")}
    proc = subprocess.run([sys.executable, "-c", READ_ONLY_DRIVER, str(probe), json.dumps(commands)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    marker = [line for line in proc.stdout.splitlines() if line.startswith("@@RESULTS@@")]
    assert marker, proc.stdout + proc.stderr
    results = json.loads(marker[-1][len("@@RESULTS@@"):])
    if isinstance(results, dict):
        pytest.skip(results["skip"])
    return results


class _Result:
    """A driver result in the shape `assert_user_error` reads."""

    def __init__(self, d: dict):
        self.exit_code, self.output = d["exit_code"], d["output"]
        self.exception = SystemExit(d["exit_code"]) if d["exception"] == "SystemExit" else d["exception"]


def _read_only(path: Path):
    for p in [path, *path.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)


def _writable(path: Path):
    for p in [path, *path.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)


def test_read_only_media(tmp_path, run):
    """A healthy run on read-only media: reading works (report and export with their output
    elsewhere); every command that writes says "read-only" in one line, before any work. A new
    run cannot be created there."""
    media = tmp_path / "media"
    media.mkdir()
    shutil.move(str(run), media / "run")
    ro_run, out = media / "run", tmp_path / "out"
    ok("search", "--max-rounds", 1, "--run-dir", tmp_path / "warm")  # the data cache, outside the media
    for p in ro_run.glob("run.db-*"):  # as a finished search leaves it (and as copied onto media)
        p.unlink()
    candidate_id = rows(ro_run)[0][0][0]
    before, recorded = listing(ro_run), rows(ro_run)
    for p in ro_run.glob("run.db-*"):  # left by rows()
        p.unlink()
    names = sorted(p.name for p in ro_run.iterdir())
    _read_only(media)
    try:
        commands = [
            ["report", ro_run, "--out", out / "report"],
            ["export", ro_run, candidate_id, "--out", out / "export"],
            ["report", ro_run],
            ["export", ro_run, candidate_id],
            ["check", ro_run],
            ["evaluate", ro_run, "--seeds", "1", "--max-epochs", "2"],
            ["search", "--max-rounds", "3", "--run-dir", ro_run],
            ["search", "--max-rounds", "1", "--run-dir", media / "new"],
        ]
        results = _run_read_only(media, [[str(a) for a in c] for c in commands], tmp_path)
        assert sorted(p.name for p in ro_run.iterdir()) == names  # nothing created: no lock, no -wal/-shm
    finally:
        _writable(media)
    report, export, report_in, export_in, check, evaluate, resume, new = map(_Result, results)
    assert report.exit_code == 0 and (out / "report" / "report.md").is_file(), report.output
    assert export.exit_code == 0 and list((out / "export").glob("*.py")), export.output
    assert_user_error(report_in, f"cannot write to {ro_run / 'report'}", "read-only", "--out")
    assert_user_error(export_in, str(ro_run / "export"), "read-only", "--out")
    for result in (check, evaluate, resume):
        assert_user_error(result, f"run directory {ro_run} is", "read-only", "this command writes to it")
    assert_user_error(new, f"cannot create run directory {media / 'new'}", "read-only")
    assert listing(ro_run) == before and rows(ro_run) == recorded
    assert not (media / "new").exists()
