import json
import random

import pytest
import torch

from kill_resume import run_script
from lossgen.runs import CandidateRecord, CandidateState, RoundRecord, RunError, RunSnapshot, RunStore, config_differences

CONFIG = {"strategy": "rl", "seed": 3, "train": {"lr": 0.01, "batch": 128}}


def candidate(i, round_):
    return CandidateRecord(id=f"c{round_}-{i}", round=round_, program=[[0, 0, 1]], formula="y_hat + y",
                           fingerprint="ab", strategy="rl", state="passed", reward=0.01 * i, accepted=i == 0)


def test_rounds_checkpoints_and_reopen(tmp_path):
    store = RunStore.open_or_create(tmp_path / "run", CONFIG)
    assert store.last_round() == -1 and store.load_checkpoint() is None
    for r in range(3):
        store.commit_round(r, [candidate(i, r) for i in range(2)], {"best": r}, {"x": torch.tensor([r])}, 1.0 + r)
    store.close()
    again = RunStore.open_or_create(tmp_path / "run", json.loads(json.dumps(CONFIG)))
    assert again.last_round() == 2
    assert torch.equal(again.load_checkpoint().state["x"], torch.tensor([2]))
    rows = again.candidates()
    assert [c.id for c in rows] == ["c0-0", "c0-1", "c1-0", "c1-1", "c2-0", "c2-1"]
    assert rows[0].program == ((0, 0, 1),) and rows[0].accepted is True and rows[1].accepted is False
    assert rows[0] == candidate(0, 0)  # what was committed is what is read back
    assert [r.get("best") for r in again.rounds()] == [0, 1, 2]
    assert again.rounds()[1] == RoundRecord(1, 2.0, {"best": 1})
    assert len(list((tmp_path / "run" / "checkpoints").glob("*.pt"))) == 2  # only the last two kept
    again.set_phase2({"c0-0": 0.95})
    again.set_phase3({"c0-0": {"auc": [0.8]}})
    first = again.candidate("c0-0")
    assert first.phase2_rate == 0.95 and first.phase3 == {"auc": [0.8]}
    with pytest.raises(RunError, match="round 5 does not follow the last completed round 2"):
        again.commit_round(5, [], {}, {}, 0.0)


def test_the_model_is_written_only_when_given_and_kept_while_a_checkpoint_names_it(tmp_path):
    folder = tmp_path / "run" / "checkpoints"
    store = RunStore.open_or_create(tmp_path / "run", CONFIG)
    changes = {0: 1.0, 4: 2.0, 5: 3.0}  # rounds in which the recommender changed
    for r in range(8):
        model = {"w": torch.tensor([changes[r]])} if r in changes else None
        store.commit_round(r, [], {}, {"x": r}, 0.0, model)
        state = store.load_checkpoint().state
        assert state["x"] == r and "model_file" not in state
        assert state["model"]["w"].item() == changes[max(k for k in changes if k <= r)]
        models = sorted(p.name for p in folder.glob("model-*.pt"))
        if r in (2, 3):  # rounds 1-3 name the model of round 0: one file on disk
            assert models == ["model-000000.pt"]
        if r == 4:  # round 3's checkpoint (kept) still names model 0
            assert models == ["model-000000.pt", "model-000004.pt"]
        if r == 7:
            assert models == ["model-000005.pt"]
    store.close()
    # a resumed session writes the model once, then cleans up as before
    again = RunStore.open_or_create(tmp_path / "run", json.loads(json.dumps(CONFIG)))
    assert again.load_checkpoint().state["model"]["w"].item() == 3.0
    again.commit_round(8, [], {}, {"x": 8}, 0.0, {"w": torch.tensor([3.0])})
    again.commit_round(9, [], {}, {"x": 9}, 0.0)
    assert sorted(p.name for p in folder.glob("*.pt")) == ["model-000008.pt", "round-000008.pt", "round-000009.pt"]
    assert again.load_checkpoint().state["model"]["w"].item() == 3.0


def test_a_missing_model_file_is_a_clear_error(tmp_path):
    store = RunStore.open_or_create(tmp_path / "run", CONFIG)
    store.commit_round(0, [], {}, {}, 0.0, {"w": torch.zeros(1)})
    (tmp_path / "run" / "checkpoints" / "model-000000.pt").unlink()
    with pytest.raises(RunError, match="model file model-000000.pt of round 0 is unreadable"):
        store.load_checkpoint()


def test_config_mismatch_names_the_keys(tmp_path):
    RunStore.open_or_create(tmp_path, CONFIG).close()
    changed = {**CONFIG, "seed": 4, "train": {"lr": 0.1, "batch": 128}}
    with pytest.raises(RunError, match="seed, train.lr differ"):
        RunStore.open_or_create(tmp_path, changed)
    assert config_differences({"a": 1}, {"b": 1}) == ["a", "b"]


def test_refuses_foreign_and_corrupted_directories(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hi")
    with pytest.raises(RunError, match="not a lossgen run directory"):
        RunStore.open_or_create(tmp_path / "other", CONFIG)
    RunStore.open_or_create(tmp_path / "bad", CONFIG).close()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(RunError, match="config.json is unreadable"):
        RunStore.open_or_create(tmp_path / "bad", CONFIG)
    RunStore.open_or_create(tmp_path / "baddb", CONFIG).close()
    for f in (tmp_path / "baddb").glob("run.db*"):
        f.unlink()
    (tmp_path / "baddb" / "run.db").write_bytes(b"garbage" * 100)
    with pytest.raises(RunError, match="run.db is unreadable"):
        RunStore.open_or_create(tmp_path / "baddb", CONFIG)


# A toy run: each round draws candidates from an RNG carried in the checkpoint, so a resumed run
# must continue exactly where the last completed round left it.
RUN_SCRIPT = """
import sys, time, torch
from lossgen.runs import CandidateRecord, RunStore
store = RunStore.open_or_create(sys.argv[1], {"toy": 1})
ck = store.load_checkpoint()
gen = torch.Generator().manual_seed(7)
if ck is not None:
    gen.set_state(ck.state["rng"])
for r in range(store.last_round() + 1, 60):
    values = torch.rand(4, generator=gen).tolist()
    time.sleep(0.01)
    cands = [CandidateRecord(id=f"r{r}-{i}", round=r, program=[[0, 0, 1]], formula="f", strategy="toy",
                             state="passed", reward=v) for i, v in enumerate(values)]
    store.commit_round(r, cands, {"mean": sum(values) / 4}, {"rng": gen.get_state()}, 0.0)
"""


def run_toy(path, kill_at_round=None, extra_delay=0.0):
    """Run the toy to the end, or SIGKILL it `extra_delay` s after it has committed `kill_at_round` rounds."""
    run_script(RUN_SCRIPT, path, kill_after=kill_at_round, delay=extra_delay, timeout=120)


def test_sigkill_at_random_points_then_resume_matches_an_uninterrupted_run(tmp_path):
    run_toy(tmp_path / "clean")
    rng = random.Random(0)
    progress = []
    target = 0
    for _ in range(4):
        target += rng.randint(3, 12)
        run_toy(tmp_path / "killed", kill_at_round=target, extra_delay=rng.uniform(0.0, 0.02))
        store = RunStore.open_or_create(tmp_path / "killed", {"toy": 1})
        progress.append(store.last_round())
        store.close()
    assert any(0 <= p < 59 for p in progress), progress  # at least one kill landed mid-run
    run_toy(tmp_path / "killed")
    clean = RunStore.open_or_create(tmp_path / "clean", {"toy": 1})
    killed = RunStore.open_or_create(tmp_path / "killed", {"toy": 1})
    assert killed.last_round() == clean.last_round() == 59
    assert killed.candidates() == clean.candidates()
    assert [r.get("mean") for r in killed.rounds()] == [r.get("mean") for r in clean.rounds()]


# ----------------------------------------------------------------------------- records and queries


def record(cid, round_, state, evaluation=None, fingerprint=None, reward=None, **more):
    return CandidateRecord(id=cid, round=round_, program=[[0, 0, 1]], formula=f"f-{fingerprint or cid}",
                           strategy="rl", state=state, evaluation=evaluation, fingerprint=fingerprint, reward=reward,
                           **more)


def query_run(path):
    """Two rounds: originals, a run-wide duplicate, a zero-gradient candidate, a re-evaluated function."""
    store = RunStore.open_or_create(path, CONFIG)
    store.commit_round(0, [record("rl-0-aa", 0, "passed", 1, "fa", 0.02),
                           record("rl-0-ab", 0, "zero-gradient", None, "fz", -0.05),
                           record("rl-0-ac", 0, "passed", 2, "fc", 0.04),
                           record("rl-0-ad", 0, "duplicate", None, "fa", 0.02, duplicate_of="rl-0-aa")],
                       {"moved_to": "rl-0-ac", "totals": {"sampled": 4}, "elapsed": 1.5}, {}, 10.0)
    store.commit_round(1, [record("rl-1-ba", 1, "passed", 3, "fb", 0.03),
                           record("rl-1-bb", 1, "off", 4, "fc", 0.05),  # fc again (no dedupe): not distinct
                           record("rl-1-bc", 1, "passed", 5, "fd", 0.01, note="diverged")],
                       {"moved_to": None}, {}, 11.0)
    return store


def test_candidate_state_and_record_columns():
    assert CandidateState("duplicate") is CandidateState.DUPLICATE and CandidateState.OFF == "off"
    assert [s.evaluated for s in CandidateState] == [True, True, False, False, False]
    r = record("x", 0, "zero-gradient", fingerprint="fz")
    assert r.state is CandidateState.ZERO_GRADIENT and not r.evaluated
    columns = r.columns()
    assert list(columns)[:7] == ["id", "round", "program", "formula", "fingerprint", "strategy", "proxy"]
    assert columns["proxy"] == "zero-gradient" and columns["program"] == [[0, 0, 1]] and "state" not in columns
    with pytest.raises(ValueError):
        record("y", 0, "ok")
    with pytest.raises(AttributeError):
        r.reward = 1.0  # frozen
    assert r.with_updates(reward=0.5).reward == 0.5 and r.reward is None
    assert record("p", 0, "passed", 1, phase2_rate=0.9).passes(0.9)
    assert not record("p", 0, "passed", 1, phase2_rate=0.9, note="diverged").passes(0.5)
    assert not record("p", 0, "passed", 1).passes(0.0)


def test_query_methods(tmp_path):
    store = query_run(tmp_path / "run")
    ids = lambda records: [r.id for r in records]  # noqa: E731
    assert ids(store.candidates()) == ["rl-0-aa", "rl-0-ab", "rl-0-ac", "rl-0-ad", "rl-1-ba", "rl-1-bb", "rl-1-bc"]
    assert store.candidate("rl-0-ab").state == "zero-gradient"
    assert store.candidate(" rl-1-bb ").id == "rl-1-bb"
    assert store.candidate("rl-1-bc").note == "diverged"
    assert store.candidate("rl-1-ba").id == "rl-1-ba"
    with pytest.raises(RunError, match=r"ambiguous: 3 candidates match \(rl-1-ba, rl-1-bb, rl-1-bc\)"):
        store.candidate("rl-1")
    with pytest.raises(RunError, match="no candidate with id 'rl_1'"):
        store.candidate("rl_1")  # no LIKE wildcards
    with pytest.raises(RunError, match="empty candidate id"):
        store.candidate("  ")
    assert ids(store.evaluated()) == ["rl-0-aa", "rl-0-ac", "rl-1-ba", "rl-1-bb", "rl-1-bc"]
    assert ids(store.evaluated(through_round=0)) == ["rl-0-aa", "rl-0-ac"]
    assert ids(store.distinct_evaluated()) == ["rl-0-aa", "rl-0-ac", "rl-1-ba", "rl-1-bc"]
    assert ids(store.originals()) == ["rl-0-aa", "rl-0-ab", "rl-0-ac", "rl-1-ba", "rl-1-bb", "rl-1-bc"]
    assert ids(store.passed_since(0)) == ["rl-1-ba", "rl-1-bc"]
    assert ids(store.passed_since(-1)) == ["rl-0-aa", "rl-0-ac", "rl-1-ba", "rl-1-bc"]
    assert [(r.round, r.moved_to, r.elapsed, r.totals) for r in store.rounds()] == \
        [(0, "rl-0-ac", 1.5, {"sampled": 4}), (1, None, None, {})]
    assert store.unrated() == 7
    with pytest.raises(RunError, match="no Phase II results"):
        store.best_passing(3)
    store.set_phase2({"rl-0-aa": 0.95, "rl-0-ac": 0.5, "rl-1-ba": 0.91, "rl-1-bb": 0.99, "rl-1-bc": 0.99})
    assert store.unrated() == 2
    store.set_meta("phase2", {"threshold": 0.9})
    # by reward: rl-1-bb (0.05) repeats fc, rl-0-ac fails, rl-1-bc diverged
    assert ids(store.best_passing(5)) == ["rl-1-ba", "rl-0-aa"]
    assert ids(store.best_passing(1)) == ["rl-1-ba"]
    assert ids(store.best_passing(5, budget=2)) == ["rl-0-aa"]
    with pytest.raises(RunError, match="does not follow"):
        store.commit_round(3, [], {}, {}, 0.0)
    with pytest.raises(RunError, match="belongs to round 1, not 2"):
        store.commit_round(2, [record("rl-2-ca", 1, "passed")], {}, {}, 0.0, {"w": torch.zeros(1)})
    assert store.last_round() == 1
    assert sorted(p.name for p in (store.path / "checkpoints").iterdir()) == ["round-000000.pt", "round-000001.pt"]
    store.close()


def test_snapshot_and_readonly_access(tmp_path):
    store = query_run(tmp_path / "run")
    store.set_meta("phase2", {"threshold": 0.8, "pairs": 10})
    snap = store.snapshot()
    store.close()
    assert isinstance(snap, RunSnapshot) and snap.config == CONFIG and snap.threshold == 0.8
    assert len(snap.candidates) == 7 and [r.round for r in snap.rounds] == [0, 1]
    assert [r.id for r in snap.evaluated()] == ["rl-0-aa", "rl-0-ac", "rl-1-ba", "rl-1-bb", "rl-1-bc"]
    assert [r.id for r in snap.distinct_evaluated()] == ["rl-0-aa", "rl-0-ac", "rl-1-ba", "rl-1-bc"]

    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    reader = RunStore.open_readonly(tmp_path / "run")
    assert reader.snapshot() == snap and reader.candidate("rl-0-ad").duplicate_of == "rl-0-aa"
    for write in (lambda: reader.set_meta("x", 1), lambda: reader.set_phase2({"rl-0-aa": 1.0}),
                  lambda: reader.commit_round(2, [], {}, {}, 0.0)):
        with pytest.raises(RunError, match="read-only"):
            write()
    reader.close()
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["round-000000.pt", "round-000001.pt"]
    assert {p.name for p in (tmp_path / "run").iterdir()} - set(files) <= {"run.db-wal", "run.db-shm"}
    with pytest.raises(RunError, match="not a lossgen run directory"):
        RunStore.open_readonly(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()


def _downgrade_to_schema_2(path):
    """Rebuild run.db as schema 2 wrote it (no eps, no phase2_strict), keeping its rows."""
    import sqlite3
    db = sqlite3.connect(path / "run.db", isolation_level=None)
    db.execute("ALTER TABLE candidates DROP COLUMN eps")
    db.execute("ALTER TABLE candidates DROP COLUMN phase2_strict")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    db.close()


def test_schema_2_directories_read_with_null_new_columns_and_migrate_when_written(tmp_path):
    store = RunStore.open_or_create(tmp_path / "run", CONFIG)
    store.commit_round(0, [record("rl-0-aa", 0, "passed", 1, "fa", 0.05)], {}, {}, 1.0)
    store.close()
    _downgrade_to_schema_2(tmp_path / "run")
    old = RunStore.open_readonly(tmp_path / "run")
    (row,) = old.candidates()
    assert (row.id, row.eps, row.phase2_strict) == ("rl-0-aa", None, None)
    old.close()
    store = RunStore.open_or_create(tmp_path / "run", CONFIG)  # a writer migrates it in place
    assert store.get_meta("schema") == 3
    store.commit_round(1, [record("rl-1-ab", 1, "passed", 2, "fb", 0.07, eps=0.01)], {}, {}, 2.0)
    store.set_phase2({"rl-0-aa": 1.0, "rl-1-ab": 0.95}, {"rl-0-aa": 0.2, "rl-1-ab": None})
    first, second = store.candidates()
    assert (first.eps, first.phase2_strict, second.eps, second.phase2_strict) == (None, 0.2, 0.01, None)
    assert not first.passes(0.9) and second.passes(0.9)  # the strict measure counts where it was taken
    store.close()
