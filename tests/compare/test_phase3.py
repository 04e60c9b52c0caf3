"""The shared Phase III of a comparison with either selection, on hand-made run choices (no
search): with `race` each run is one group of one race, a loss found by several runs races once,
and each run's Phase III candidates are its own survivors."""

import hashlib
import json
from dataclasses import asdict

import pytest

from lossgen.compare.phase3 import (
    distinct_losses,
    loss_name,
    phase3_key,
    run_survivors,
    shared_phase3,
)
from lossgen.compare.runner import _narrow_to_survivors
from lossgen.compare.summary import join_phase3
from lossgen.data import load
from lossgen.ir.formula import parse
from lossgen.phases.effectiveness import EPSILON_GRID, EffectivenessConfig

DATA_SPEC = "synthetic:users=200,items=200,density=0.2,noise=0.3,seed=1"
CONFIG = EffectivenessConfig(seeds=(0,), max_epochs=2, bootstrap=100)
FORMULAS = {"fp-mse-0000": "(y_hat - y)^2", "fp-bce-0000": "-(y * log(y_hat) + (1 - y) * log(1 - y_hat))",
            "fp-anti-000": "-(y_hat - y)^2", "fp-linear-0": "y_hat * (1 - y) - y_hat * y"}


def row(fp):
    return {"id": fp, "fingerprint": fp, "program": [list(s) for s in parse(FORMULAS[fp]).steps],
            "formula": FORMULAS[fp], "reward": 0.1, "evaluation": 1}


# run a and run b both found the MSE-like loss
CHOSEN = {"a": [row("fp-mse-0000"), row("fp-anti-000"), row("fp-bce-0000")],
          "b": [row("fp-linear-0"), row("fp-mse-0000")], "c": []}


@pytest.fixture(scope="module")
def data():
    return load(DATA_SPEC, cache_enabled=False)


def test_each_run_races_as_one_group_and_keeps_its_own_survivors(tmp_path, data):
    epochs, races = [], []
    saved = shared_phase3(tmp_path, data, CHOSEN, "BCE", CONFIG, "symmetric", lambda e, n: epochs.append(e),
                          selection="race", survivors=1, rungs=(1, 2), race_progress=lambda e, n: races.append(e))
    assert saved["selection"] == "race" and races and epochs
    groups = run_survivors(saved)
    assert set(groups) == {"a", "b", "c"} and groups["c"] == []
    assert all(len(fps) == 1 and set(fps) <= {r["fingerprint"] for r in CHOSEN[run]} for run, fps in groups.items()
               if run != "c")
    # the shared loss raced once, in both groups
    racers = saved["race"]["racers"]
    (mse,) = [r for r in racers if r["fingerprint"] == "fp-mse-0000"]
    assert set(mse["groups"]) == {"a", "b"} and mse["name"] == loss_name("fp-mse-0000")
    assert sorted(r["eps"] for r in racers if r["fingerprint"] == "fp-bce-0000") == sorted(EPSILON_GRID)
    # Phase III: the survivors (once each) with their race epsilon, and the baseline
    candidates = [e for e in saved["results"] if e["kind"] == "candidate"]
    assert {e["fingerprint"] for e in candidates} == {fp for fps in groups.values() for fp in fps}
    assert [e["name"] for e in saved["results"] if e["kind"] == "baseline"] == ["BCE"]
    assert all(len(e["test"]) == 1 for e in candidates)  # one seed, no epsilon grid
    # each run's Phase III candidates are its own survivors; the summary joins them by fingerprint
    measures = {run: {"chosen": [dict(r) for r in rows]} for run, rows in CHOSEN.items()}
    _narrow_to_survivors(measures, saved)
    for run, m in measures.items():
        assert [c["fingerprint"] for c in m["chosen"]] == groups[run] and m["raced"] == len(CHOSEN[run])
    join_phase3(measures, saved)
    assert all(m["best_loss"] is not None for run, m in measures.items() if run != "c")
    assert measures["c"]["best_loss"] is None
    # unchanged: reused, nothing trains
    again = []
    assert shared_phase3(tmp_path, data, CHOSEN, "BCE", CONFIG, "symmetric", lambda e, n: again.append(e),
                         selection="race", survivors=1, rungs=(1, 2), race_progress=lambda e, n: again.append(e)) == saved
    assert again == []


def test_the_race_settings_and_groups_are_part_of_the_key(tmp_path, data):
    losses = distinct_losses(CHOSEN)

    def key(**race):
        settings = {"survivors": 1, "rungs": [1, 2], "groups": {run: [r["fingerprint"] for r in rows]
                                                                for run, rows in CHOSEN.items()}}
        return phase3_key(losses, "BCE", CONFIG, "symmetric", data.key, {**settings, **race})

    keys = {phase3_key(losses, "BCE", CONFIG, "symmetric", data.key), key(), key(survivors=2), key(rungs=[1, 3]),
            key(groups={"a": ["fp-mse-0000"], "b": ["fp-mse-0000", "fp-linear-0"]})}
    assert len(keys) == 5
    # with `top`, the key is the one comparisons wrote before races existed (they resume unchanged)
    settings = asdict(CONFIG)
    del settings["warmup"], settings["init_std"]  # fields added later, left out at their defaults
    blob = json.dumps({"losses": sorted((l["fingerprint"], l["program"]) for l in losses), "baselines": "BCE",
                       "config": settings, "clamp": "symmetric", "data": data.key}, sort_keys=True, default=str)
    assert phase3_key(losses, "BCE", CONFIG, "symmetric", data.key) == hashlib.sha256(blob.encode()).hexdigest()[:20]


def test_top_trains_every_chosen_loss_once_as_before(tmp_path, data):
    saved = shared_phase3(tmp_path, data, CHOSEN, "BCE", CONFIG, "symmetric")
    assert saved["selection"] == "top" and "race" not in saved and run_survivors(saved) is None
    assert sorted(e["fingerprint"] for e in saved["results"] if e["kind"] == "candidate") == sorted(FORMULAS)
    measures = {run: {"chosen": [dict(r) for r in rows]} for run, rows in CHOSEN.items()}
    _narrow_to_survivors(measures, saved)
    assert measures == {run: {"chosen": rows} for run, rows in CHOSEN.items()}
    with pytest.raises(ValueError, match="unknown selection"):
        shared_phase3(tmp_path, data, CHOSEN, "BCE", CONFIG, "symmetric", selection="best")


def test_a_runs_survivors_carry_the_formula_phase3_trained_with_one_epsilon():
    """The records' formulas carry Phase I's epsilon; a survivor's is the bare program with Phase III's."""
    from lossgen.compare.runner import _narrow_to_survivors
    chosen = {"id": "rl-1", "fingerprint": "f1", "program": [[8, 0, 0]], "formula": "1 / y_hat with e = 0.1",
              "eps": 0.1, "reward": 0.2, "evaluation": 1}
    measures = {"rl-s0": {"chosen": [chosen, {**chosen, "id": "rl-2", "fingerprint": "f2"}]}}
    phase3 = {"selection": "race", "race": {"groups": {"rl-s0": ["f1"]}},
              "results": [{"fingerprint": "f1", "eps": 1e-4}, {"fingerprint": None, "eps": None}]}
    _narrow_to_survivors(measures, phase3)
    (kept,) = measures["rl-s0"]["chosen"]
    assert kept["formula"] == "1 / y_hat with e = 0.0001" and kept["eps"] == 1e-4
    assert measures["rl-s0"]["raced"] == 2
