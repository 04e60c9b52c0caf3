import random

import pytest
import torch

from kill_resume import committed_rounds, run_script
from lossgen import kernels
from lossgen.data import load
from lossgen.ir.formula import parse
from lossgen.models import MFPopulation, MLPPopulation
from bench.torch_mf import TorchBiasedMF
from lossgen.phases.proxy import PROBE_Y, PROBE_Y_HAT, fingerprints
from lossgen.phases.search import LossSearch
from lossgen.phases.settings import SearchConfig, SearchLimits, run_config
from lossgen.ir.programs import batch
from lossgen.search import Candidate
from lossgen.runs import CandidateState, RunStore

DATA_SPEC = "synthetic:users=120,items=150,seed=3"


@pytest.fixture(scope="module")
def data():
    return load(DATA_SPEC, cache_enabled=False)


class Scripted:
    """A strategy that proposes given formulas, round after round (the last list repeats)."""

    name = "scripted"

    def __init__(self, rounds):
        self.rounds, self.asked, self.told = rounds, 0, []

    def ask(self, n):
        formulas = self.rounds[min(self.asked, len(self.rounds) - 1)]
        out = [Candidate(parse(f), f"s-{self.asked}-{i}", "scripted") for i, f in enumerate(formulas)]
        self.asked += 1
        return out

    def tell(self, candidates, rewards):
        self.told.append((tuple(c.id for c in candidates), tuple(rewards)))

    def state_dict(self):
        return {"asked": self.asked}

    def load_state_dict(self, state):
        self.asked = state["asked"]


def strip(rounds):
    """Rounds without their timings (which differ between two runs of the same trajectory)."""
    return [(r.round, {k: v for k, v in r.info.items() if k != "elapsed"}) for r in rounds]


def open_search(tmp_path, data, name="run", scripted=None, **overrides):
    config = SearchConfig.from_preset("paper", **{"strategy": "random", **overrides})
    store = RunStore.open_or_create(tmp_path / name, run_config(config.resolved(data), data, DATA_SPEC))
    return store, LossSearch(data, store, config, scripted)


# --------------------------------------------------------------------------- the proxy test's algebra


def test_gram_gives_the_parameter_gradient_of_a_plain_pytorch_mf(data):
    model = MFPopulation.init(data.n_users, data.n_items, [3])
    users = torch.tensor([4, 9, 4, 17, 30])  # a repeated user: shared rows must add up
    items = torch.tensor([2, 2, 11, 5, 7])
    labels = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    y_hat, gram = model.proxy_gram(users, items)
    torch.testing.assert_close(y_hat, model.predict(users, items)[0])
    programs = [parse("(y_hat - y)^2"), parse("max(y_hat, y) * (1 / (y_hat + 1))")]
    _, d = kernels.evaluate(batch(programs), y_hat, labels)
    g = (d / 5).double()
    flat = []
    for program in programs:
        oracle = TorchBiasedMF(data.n_users, data.n_items, seed=3)
        loss = kernels.program_loss([program], torch.sigmoid(oracle(users, items)), labels)[0]
        loss.backward()
        flat.append(torch.cat([p.grad.reshape(-1) for p in oracle.parameters()]).double())
    for k in range(2):
        torch.testing.assert_close(float(g[k] @ gram @ g[k]) ** 0.5, float(flat[k].norm()), rtol=1e-4, atol=1e-9)
    diff = g[0] - g[1]
    torch.testing.assert_close(float(diff @ gram @ diff) ** 0.5, float((flat[0] - flat[1]).norm()), rtol=1e-4, atol=1e-9)


def test_mlp_gram_is_a_gram_matrix_of_its_eval_predictions(data):
    model = MLPPopulation.init(data.n_users, data.n_items, [1, 2])
    users, items = torch.tensor([1, 2, 3, 1]), torch.tensor([5, 6, 5, 8])
    y_hat, gram = model.proxy_gram(users, items, index=1)
    torch.testing.assert_close(y_hat, model.predict(users, items)[1])
    assert torch.allclose(gram, gram.T) and torch.linalg.eigvalsh(gram).min() > -1e-9 and (gram.diag() > 0).all()


def test_fingerprints_identify_functions_not_programs():
    # (symmetric clamp: in the paper's, Neg collapses to xi and y_hat - y is not a difference)
    same = [parse("(y_hat - y)^2"), parse("(y - y_hat)^2"), parse("(y_hat + -y)^2")]
    other = [parse("y_hat * y"), parse("y^2"), parse("log(1)")]
    _, d = kernels.evaluate(batch(same + other), PROBE_Y_HAT, PROBE_Y, "symmetric")
    fp = fingerprints(d)
    assert fp[0] == fp[1] == fp[2]
    assert len({fp[0], fp[3], fp[4]}) == 3
    assert fp[4] == fp[5]  # both constant in y_hat: zero derivative everywhere
    assert fingerprints(torch.tensor([[-0.0, 1.0]])) == fingerprints(torch.tensor([[0.0, 1.0]]))


# --------------------------------------------------------------------------- one round


def test_a_round_records_proxy_outcomes_rewards_and_moves_to_the_best(tmp_path, data):
    script = Scripted([["(y_hat - y)^2", "(y - y_hat)^2", "y^2", "y_hat * y", "log(y_hat + 1) * y"], ["(y_hat - y)^2"]])
    store, search = open_search(tmp_path, data, scripted=script, eta=0.0, clamp="symmetric")
    initial = store.get_meta("initial")["validation"]
    first = search.step()
    rows = {r.id: r for r in store.candidates()}
    mse, mse2, const, harmful = rows["s-0-0"], rows["s-0-1"], rows["s-0-2"], rows["s-0-3"]
    assert mse.state == CandidateState.PASSED == "passed" and mse.evaluation == 1
    assert mse.reward == pytest.approx(mse.validation - initial, abs=1e-12)
    assert mse2.state == "duplicate" and mse2.duplicate_of == "s-0-0" and mse2.reward == mse.reward
    assert mse2.evaluation is None
    assert const.state == "zero-gradient" and const.reward == search.config.zero_reward
    assert harmful.state == "passed" and harmful.reward < 0 and not harmful.accepted
    evaluated = [r for r in rows.values() if r.evaluation is not None]
    best = max(evaluated, key=lambda r: r.reward)
    assert first.moved_to == best.id and best.accepted
    assert first.validation == pytest.approx(best.validation)
    assert (first.sampled, first.evaluated, first.zero_gradient, first.duplicates) == (5, 3, 1, 1)
    assert first.accepted == first.totals["accepted"] == sum(r.accepted for r in rows.values()) >= 1
    assert script.told[0] == (tuple(rows), tuple(r.reward for r in rows.values()))
    # A later round: the same function again is a run-wide duplicate with the earlier reward.
    search.step()
    again = next(r for r in store.candidates() if r.round == 1)
    assert again.state == "duplicate" and again.duplicate_of == "s-0-0" and again.reward == mse.reward


def test_reward_filtering_keeps_the_recommender_from_harmful_copies(tmp_path, data):
    harmful = [["y_hat * y"]]
    store, search = open_search(tmp_path, data, "filtered", Scripted(harmful), eta=0.0)
    before = search.utility
    report = search.step()
    assert report.accepted == 0 and report.moved_to is None and search.utility == before
    store2, unfiltered = open_search(tmp_path, data, "unfiltered", Scripted(harmful), filtering=False)
    report = unfiltered.step()
    assert report.moved_to == "s-0-0" and unfiltered.utility < before


def test_proxy_and_dedupe_off_evaluate_everything(tmp_path, data):
    store, search = open_search(tmp_path, data, scripted=Scripted([["y^2", "(y_hat - y)^2", "(y - y_hat)^2"]]),
                                proxy=False, dedupe=False, clamp="symmetric")
    report = search.step()
    assert report.evaluated == 3 and report.zero_gradient == 0 and report.duplicates == 0
    assert [r.state for r in store.candidates()] == ["off"] * 3


def test_limits(tmp_path, data):
    with pytest.raises(ValueError, match="no stopping rule"):
        SearchLimits().check()
    with pytest.raises(ValueError, match="budget must be positive"):
        SearchLimits(budget=0).check()
    store, search = open_search(tmp_path, data, "budget")
    result = search.run(SearchLimits(budget=12))
    assert result.totals["evaluated"] >= 12 and "budget" in result.stopped
    assert result.totals["evaluated"] - 12 < search.config.per_round  # stops after the round that reached it
    result = search.run(SearchLimits(max_sampled=result.totals["sampled"] + 25))
    assert "sampled" in result.stopped and result.totals["sampled"] % 10 == 0
    store, search = open_search(tmp_path, data, "patience", Scripted([["y^2"]]))
    result = search.run(SearchLimits(patience=3, max_rounds=50))
    assert result.rounds == 3 and "no validation improvement" in result.stopped


@pytest.mark.parametrize("strategy,model", [("rl", "mf"), ("evolution", "mf"), ("random", "mlp")])
def test_resumed_runs_follow_the_same_trajectory(tmp_path, data, strategy, model):
    def go(name, rounds):
        store, search = open_search(tmp_path, data, name, strategy=strategy, model=model)
        search.run(SearchLimits(max_rounds=rounds))
        return store

    rounds = 8 if model == "mf" else 4  # the MLP epoch is ~20x slower
    whole = go("whole", rounds)
    go("parts", rounds // 4).close()
    go("parts", rounds // 2 + 1).close()
    parts = go("parts", rounds)
    assert parts.candidates() == whole.candidates()
    assert strip(parts.rounds()) == strip(whole.rounds())


def test_config_mismatch_on_resume(tmp_path, data):
    store, _ = open_search(tmp_path, data)
    store.close()
    with pytest.raises(ValueError, match="eta differ"):
        open_search(tmp_path, data, eta=0.5)


# --------------------------------------------------------------------------- kill -9 and resume

KILL_SCRIPT = """
import sys
from lossgen.data import load
from lossgen.phases.search import LossSearch
from lossgen.phases.settings import SearchConfig, SearchLimits, run_config
from lossgen.runs import RunStore
data = load(sys.argv[2], cache_enabled=False)
config = SearchConfig.from_preset("paper", strategy="rl", per_round=8)
store = RunStore.open_or_create(sys.argv[1], run_config(config.resolved(data), data, sys.argv[2]))
LossSearch(data, store, config).run(SearchLimits(max_rounds=int(sys.argv[3])))
"""


def test_sigkill_at_random_points_then_resume_matches_an_uninterrupted_run(tmp_path):
    rounds = 30
    run_script(KILL_SCRIPT, tmp_path / "clean", DATA_SPEC, rounds)
    rng = random.Random(1)
    target, progress = 0, []
    for _ in range(4):
        target += rng.randint(2, 7)
        run_script(KILL_SCRIPT, tmp_path / "killed", DATA_SPEC, rounds, kill_after=target, delay=rng.uniform(0.0, 0.03))
        progress.append(committed_rounds(tmp_path / "killed"))
    assert any(0 < p < rounds for p in progress), progress  # kills landed mid-run
    run_script(KILL_SCRIPT, tmp_path / "killed", DATA_SPEC, rounds)
    clean, killed = RunStore.open_existing(tmp_path / "clean"), RunStore.open_existing(tmp_path / "killed")
    assert killed.last_round() == clean.last_round() == rounds - 1
    assert killed.candidates() == clean.candidates()
    assert strip(killed.rounds()) == strip(clean.rounds())


def test_stop_reason_reads_a_stored_runs_limits_without_searching(tmp_path):
    from lossgen.phases.search import stop_reason

    data = load(DATA_SPEC, cache_enabled=False)
    config = SearchConfig.from_preset("paper", strategy="random", per_round=5).resolved(data)
    store = RunStore.open_or_create(tmp_path / "run", run_config(config, data, DATA_SPEC))
    assert stop_reason(store, SearchLimits(max_rounds=3)) is None  # nothing done yet
    result = LossSearch(data, store, config).run(SearchLimits(max_rounds=3))
    assert stop_reason(store, SearchLimits(max_rounds=3)) == result.stopped == "3 rounds done"
    assert stop_reason(store, SearchLimits(max_rounds=4)) is None
    assert stop_reason(store, SearchLimits(max_sampled=result.totals["sampled"])) is not None
    store.close()
