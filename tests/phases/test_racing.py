"""Phase III's race (lossgen.phases.racing) on small synthetic data, and the fixed epsilons of
run_effectiveness that the race's survivors train with."""

import math

import pytest
import torch

from lossgen.data import load
from lossgen.data.dataset import Dataset
from lossgen.ir.formula import parse
from lossgen.phases import racing
from lossgen.phases.effectiveness import (
    EPSILON_GRID,
    EffectivenessConfig,
    run_effectiveness,
)
from lossgen.phases.racing import race, races_epsilon
from lossgen.training.losses import from_program, named

# a clear signal, learnt in a few epochs (an epoch of the population takes milliseconds)
DATA_SPEC = "synthetic:users=200,items=200,density=0.2,noise=0.3,seed=1"
CONFIG = EffectivenessConfig(seeds=(0,), bootstrap=100)


@pytest.fixture(scope="module")
def data():
    return load(DATA_SPEC, cache_enabled=False)


def loss(text: str, name: str):
    return from_program(parse(text), "symmetric", name=name)


GOOD = {"mse": "(y_hat - y)^2", "linear": "y_hat * (1 - y) - y_hat * y",
        "bce": "-(y * log(y_hat) + (1 - y) * log(1 - y_hat))"}
BAD = {"anti-mse": "-(y_hat - y)^2", "anti-linear": "y_hat * y - y_hat * (1 - y)"}


def group(names=None):
    table = {**GOOD, **BAD}
    return [loss(table[n], n) for n in (names or table)]


def rows_of(result, name):
    return [r for r in result.table() if r["name"] == name]


def test_epsilon_users_race_the_full_grid_and_the_others_once(data):
    result = race(data, {"g": group()}, rungs=(1, 2), survivors=1, config=CONFIG)
    assert races_epsilon(loss(GOOD["bce"], "bce")) and not races_epsilon(loss(GOOD["mse"], "mse"))
    assert sorted(r["eps"] for r in rows_of(result, "bce")) == sorted(EPSILON_GRID)
    for name in ("mse", "linear", *BAD):
        assert [r["eps"] for r in rows_of(result, name)] == [None]
    assert len(result.racers) == len(EPSILON_GRID) + 4
    # a named loss with an epsilon races the grid too; one without races once
    named_race = race(data, {"g": [named("MaxR"), named("BCE"), named("MSE")]}, (1,), 1,
                      EffectivenessConfig(seeds=(0,), eps_grid=(1.0, 1e-3)))
    assert [(r["name"], r["eps"]) for r in named_race.table()] == [("MaxR", 1.0), ("MaxR", 1e-3), ("BCE", None),
                                                                   ("MSE", None)]


def test_a_clearly_bad_loss_is_eliminated_at_the_first_rung(data):
    result = race(data, {"g": group()}, rungs=(2, 4), survivors=1, config=CONFIG)
    for name in BAD:
        (row,) = rows_of(result, name)
        assert row["groups"] == {"g": 2} and row["epochs"] == 2 and not row["diverged"]
    (winner,) = result.survivors["g"]
    assert winner.name in GOOD
    assert [r["groups"]["g"] for r in result.table()].count("survived") == 1


@pytest.mark.parametrize("survivors", [1, 2, 3])
def test_a_group_never_keeps_more_than_its_survivors_and_one_epsilon_per_candidate(data, survivors):
    groups = {"a": group(), "b": group(["mse", "bce", "anti-mse"]), "c": group(["linear"])}
    result = race(data, groups, rungs=(1, 3), survivors=survivors, config=CONFIG)
    for g, specs in result.survivors.items():
        names = [s.name for s in specs]
        assert len(names) == len(set(names)) == min(survivors, len(groups[g]))
        assert set(names) <= {s.name for s in groups[g]}
    # a loss in several groups races once, counts in each, and has one epsilon everywhere
    assert len(rows_of(result, "mse")) == 1 and set(rows_of(result, "mse")[0]["groups"]) == {"a", "b"}
    eps = {}
    for specs in result.survivors.values():
        for s in specs:
            assert eps.setdefault(s.name, s.eps) == s.eps
    assert result.survivors["c"][0].name == "linear"
    if "bce" in eps:
        assert eps["bce"] in EPSILON_GRID
    assert all(e is None for name, e in eps.items() if name != "bce")


def test_a_group_that_cannot_lose_anything_does_not_train(data):
    result = race(data, {"g": group(["mse", "linear"])}, rungs=(3,), survivors=2, config=CONFIG)
    assert result.epochs_trained == 0 and [s.name for s in result.survivors["g"]] == ["mse", "linear"]
    assert all(r["epochs"] == 0 and r["validation"] is None for r in result.table())


def test_the_race_is_deterministic(data):
    runs = [race(data, {"a": group(), "b": group(["bce", "anti-linear"])}, (1, 2, 4), 2, CONFIG) for _ in range(2)]
    assert runs[0].table() == runs[1].table()
    assert runs[0].survivors == runs[1].survivors


def test_the_race_never_opens_the_test_split(data, monkeypatch):
    def refuse(self):
        raise AssertionError("the race read the test split")

    monkeypatch.setattr(Dataset, "open_test", refuse)
    reads = data.test_reads
    progress = []
    result = race(data, {"g": group()}, (1, 2), 2, CONFIG, progress=lambda e, n: progress.append((e, n)))
    assert data.test_reads == reads and len(result.survivors["g"]) == 2
    # (epoch, racers still training): after the first cut a third (and the best racer of each of
    # the 2 best candidates), after the last none
    third = math.ceil(len(result.racers) / 3)
    assert [e for e, _ in progress] == [1, 2] and third <= progress[0][1] <= third + 2 and progress[1][1] == 0


def test_diverged_racers_drop_out(data, monkeypatch):
    real = racing.train_epoch

    def diverge_mse(model, specs, *args):  # the racer of `mse` reports a non-finite training loss
        losses = real(model, specs, *args)
        return torch.where(torch.tensor([s.name == "mse" for s in specs]), torch.tensor(math.nan), losses)

    monkeypatch.setattr(racing, "train_epoch", diverge_mse)
    result = race(data, {"g": group(["mse", "linear", "bce"])}, (2, 4), 1, CONFIG)
    (row,) = rows_of(result, "mse")
    assert row["diverged"] and row["epochs"] == 1 and row["groups"] == {"g": 1} and row["validation"] is None
    assert [s.name for s in result.survivors["g"]] != ["mse"]


def test_race_settings_are_checked(data):
    with pytest.raises(ValueError, match="rungs"):
        race(data, {"g": group()}, (3, 2), 1, CONFIG)
    with pytest.raises(ValueError, match="survivors"):
        race(data, {"g": group()}, (1,), 0, CONFIG)
    with pytest.raises(ValueError, match="twice"):
        race(data, {"g": group(["mse", "mse"])}, (1,), 1, CONFIG)
    with pytest.raises(ValueError, match="two different losses"):
        race(data, {"a": [loss(GOOD["mse"], "x")], "b": [loss(GOOD["linear"], "x")]}, (1,), 1, CONFIG)


def test_phase3_keeps_a_fixed_epsilon_and_grids_the_others(data):
    config = EffectivenessConfig(seeds=(0, 1), max_epochs=2, eps_grid=(1.0, 1e-3), bootstrap=100)
    fixed = loss(GOOD["bce"], "bce").with_eps(1e-2)
    result = run_effectiveness(data, [fixed, named("MaxR"), named("BCE")], config, fixed_eps=["bce"])
    assert result.runs == 2 * (1 + 2 + 1)
    assert result.losses[0].spec.eps == 1e-2 and result.losses[1].spec.eps in (1.0, 1e-3)
    with pytest.raises(ValueError, match="not evaluated"):
        run_effectiveness(data, [named("BCE")], config, fixed_eps=["bce"])


def test_a_race_too_large_for_one_population_trains_in_several_with_the_same_result(monkeypatch):
    """Racers are independent (one seed, one batch order): a race split into populations of two
    racers per rung (each rung from the initialisation) decides exactly as one population does."""
    data = load("synthetic:users=60,items=80,seed=5", cache_enabled=False)
    specs = [from_program(parse(t), "symmetric", name=t) for t in
             ("(y_hat - y)^2", "max(y_hat * (1 / y), y * (1 / y_hat))", "-(y_hat * y) + y_hat", "(y - y_hat)^2 * y_hat")]
    config = EffectivenessConfig(seeds=(0,), eps_grid=(0.1, 0.01), dim=8)
    whole = racing.race(data, {"g": specs}, (2, 4), 1, config)
    monkeypatch.setattr(racing, "population_limit", lambda *a, **k: 2)
    split = racing.race(data, {"g": specs}, (2, 4), 1, config)
    assert [r.history for r in split.racers] == [r.history for r in whole.racers]
    assert split.survivors == whole.survivors and split.epochs_trained > whole.epochs_trained
