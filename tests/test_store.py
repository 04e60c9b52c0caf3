import json
import random

import pytest
import torch

from kill_resume import run_script
from lossgen.store import RunError, RunStore, config_differences

CONFIG = {"strategy": "rl", "seed": 3, "train": {"lr": 0.01, "batch": 128}}


def candidate(i, round_):
    return {"id": f"c{round_}-{i}", "program": [[0, 0, 1]], "formula": "y_hat + y", "fingerprint": "ab",
            "strategy": "rl", "proxy": "ok", "reward": 0.01 * i, "accepted": i == 0}


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
    assert [c["id"] for c in rows] == ["c0-0", "c0-1", "c1-0", "c1-1", "c2-0", "c2-1"]
    assert rows[0]["program"] == [[0, 0, 1]] and rows[0]["accepted"] is True and rows[1]["accepted"] is False
    assert [r["best"] for r in again.rounds()] == [0, 1, 2]
    assert len(list((tmp_path / "run" / "checkpoints").glob("*.pt"))) == 2  # only the last two kept
    again.set_phase2({"c0-0": 0.95})
    again.set_phase3({"c0-0": {"auc": [0.8]}})
    first = again.candidates("WHERE id = ?", ("c0-0",))[0]
    assert first["phase2_rate"] == 0.95 and first["phase3"] == {"auc": [0.8]}
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
from lossgen.store import RunStore
store = RunStore.open_or_create(sys.argv[1], {"toy": 1})
ck = store.load_checkpoint()
gen = torch.Generator().manual_seed(7)
if ck is not None:
    gen.set_state(ck.state["rng"])
for r in range(store.last_round() + 1, 60):
    values = torch.rand(4, generator=gen).tolist()
    time.sleep(0.01)
    cands = [{"id": f"r{r}-{i}", "program": [[0, 0, 1]], "formula": "f", "strategy": "toy", "proxy": "ok",
              "reward": v} for i, v in enumerate(values)]
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
    assert [r["mean"] for r in killed.rounds()] == [r["mean"] for r in clean.rounds()]
