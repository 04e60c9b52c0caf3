"""evaluate_run's two selections on a hand-made run (no search: candidates recorded directly):
`race` races every distinct passing candidate and trains the survivors with the epsilon the race
chose; `top` trains the best by search reward, as before."""

import pytest

from lossgen.data import load
from lossgen.ir.formula import parse
from lossgen.phases.effectiveness import EPSILON_GRID, EffectivenessConfig
from lossgen.phases.runs import evaluate_run
from lossgen.phases.settings import SearchConfig, run_config
from lossgen.runs import CandidateRecord, RunError, RunStore

DATA_SPEC = "synthetic:users=200,items=200,density=0.2,noise=0.3,seed=1"
CONFIG = EffectivenessConfig(seeds=(0,), max_epochs=3, bootstrap=100)
FORMULAS = {  # id -> formula; rewards fall in this order
    "c-mse": "(y_hat - y)^2",
    "c-bce": "-(y * log(y_hat) + (1 - y) * log(1 - y_hat))",
    "c-anti": "-(y_hat - y)^2",
    "c-linear": "y_hat * (1 - y) - y_hat * y",
    "c-again": "(y_hat - y)^2",  # the same function as c-mse, evaluated later: not distinct
    "c-failed": "y_hat",  # does not pass Phase II
}


@pytest.fixture(scope="module")
def data():
    return load(DATA_SPEC, cache_enabled=False)


def make_run(path, data, rate: float = 1.0) -> RunStore:
    store = RunStore.open_or_create(path, run_config(SearchConfig(clamp="symmetric").resolved(data), data, DATA_SPEC))
    rows = [CandidateRecord(id=cid, round=0, program=parse(text).steps, formula=text, strategy="toy", state="passed",
                            fingerprint="fp-c-mse" if cid == "c-again" else f"fp-{cid}", reward=1.0 - 0.1 * i,
                            evaluation=i + 1, phase2_rate=0.0 if cid == "c-failed" else rate)
            for i, (cid, text) in enumerate(FORMULAS.items())]
    store.commit_round(0, rows, {}, {}, 0.0)
    store.set_meta("phase2", {"threshold": 0.9, "pairs": 2000})
    return store


def test_race_trains_the_survivors_with_their_epsilon_and_records_the_race(tmp_path, data):
    store = make_run(tmp_path / "run", data)
    reads = data.test_reads
    races = []
    result = evaluate_run(store, data, baselines="BCE", config=CONFIG, selection="race", survivors=2, rungs=(1, 2),
                          race_progress=lambda e, n: races.append(e))
    assert data.test_reads == reads + 1 and races == [1, 2]
    meta = store.get_meta("phase3")
    assert meta["selection"] == "race" and meta["survivors"] == 2 and meta["rungs"] == [1, 2]
    # every distinct passing candidate raced: the epsilon user once per epsilon, the others once
    raced = [(r["name"], r["eps"]) for r in meta["race"]]
    assert sorted(n for n, _ in raced) == sorted(["c-mse", "c-anti", "c-linear"] + ["c-bce"] * len(EPSILON_GRID))
    names = [r.spec.name for r in result.losses]
    assert len(names) == 3 and names[-1] == "BCE" and set(names[:2]) == set(meta["eps"])
    assert "c-anti" not in names
    for r in result.losses[:2]:
        entry = store.candidate(r.spec.name).phase3
        assert entry["eps"] == meta["eps"][r.spec.name] == r.spec.eps
        assert len(r.test["auc"]) == 1  # one run per seed: the race's epsilon is not gridded again
        if r.spec.name == "c-bce":
            assert r.spec.eps in EPSILON_GRID and entry["formula"].endswith(f"with e = {r.spec.eps:g}")
        else:
            assert r.spec.eps is None and entry["formula"] == FORMULAS[r.spec.name]
    assert [e["name"] for e in meta["results"]] == names


def test_top_takes_the_best_by_reward_as_before(tmp_path, data):
    store = make_run(tmp_path / "run", data)
    result = evaluate_run(store, data, top=2, baselines="BCE,MSE", config=CONFIG, selection="top")
    assert [r.spec.name for r in result.losses] == ["c-mse", "c-bce", "BCE", "MSE"]
    assert result.runs == 4  # programs without an epsilon: no grid, as before
    meta = store.get_meta("phase3")
    assert meta["selection"] == "top" and "race" not in meta and meta["top"] == 2
    assert store.candidate("c-bce").phase3["eps"] is None


def test_a_run_without_a_passing_candidate_fails_before_racing(tmp_path, data):
    store = make_run(tmp_path / "run", data, rate=0.5)
    for selection in ("race", "top"):
        with pytest.raises(RunError, match="passed Phase II; nothing to evaluate"):
            evaluate_run(store, data, config=CONFIG, selection=selection)
    with pytest.raises(ValueError, match="unknown selection"):
        evaluate_run(store, data, config=CONFIG, selection="best")
