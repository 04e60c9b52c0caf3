"""The two presets of Phase I: `paper` reproduces the search as it was before presets existed
(records of 10 rounds per strategy, stored from that code, must come out the same), and the
`lossgen` preset's pieces: per-candidate epsilon, strict rejection before training, rewards
from the fixed reference state."""

import json
from pathlib import Path

import pytest
import torch

from lossgen.data import load
from lossgen.ir.formula import parse_loss
from lossgen.phases.search import LossSearch
from lossgen.phases.settings import SearchConfig, SearchLimits, run_config
from lossgen.ir.programs import Program
from lossgen.runs import CandidateState, RunStore
from lossgen.training.losses import from_program

GOLDEN = Path(__file__).parent / "data" / "paper_preset_rounds.json"


def _search(tmp_path, config, rounds, data=None):
    data = data or load("synthetic")
    store = RunStore.open_or_create(tmp_path / f"{config.strategy}-{config.preset}", run_config(config, data, "synthetic"))
    search = LossSearch(data, store, config)
    search.run(SearchLimits(max_rounds=rounds))
    return search, store


@pytest.mark.parametrize("strategy", ["rl", "evolution", "random"])
def test_paper_preset_reproduces_the_search_from_before_presets(tmp_path, strategy):
    expected = json.loads(GOLDEN.read_text())[strategy]
    _, store = _search(tmp_path, SearchConfig.from_preset("paper", strategy=strategy, seed=3), rounds=10)
    got = [[c.id, c.state.value, None if c.reward is None else round(c.reward, 9), c.duplicate_of, c.accepted,
            c.fingerprint] for c in store.candidates()]
    store.close()
    assert got == expected


def test_lossgen_preset_tries_an_epsilon_grid_rejects_before_training_and_scores_from_the_reference(tmp_path):
    search, store = _search(tmp_path, SearchConfig(strategy="evolution", seed=0), rounds=40)
    rows = store.candidates()
    states = {c.state for c in rows}
    assert CandidateState.REJECTED in states and CandidateState.PASSED in states
    rejected = [c for c in rows if c.state == CandidateState.REJECTED]
    assert all(c.evaluation is None and -0.05 <= c.reward <= 0 for c in rejected)  # graded, never trained
    trained = [c for c in rows if c.evaluated]
    # a trained candidate that uses an epsilon op carries the grid value that scored best; others none
    for c in trained:
        assert (c.eps in (0.1, 0.01, 0.001)) if Program(c.program).uses_epsilon else c.eps is None
    assert any(c.eps is not None for c in trained)
    # the recommender never moves: no copy is accepted, and every round reports the reference state
    assert not any(c.accepted for c in rows)
    assert len({r.get("validation") for r in store.rounds()}) == 1
    store.close()


def test_reference_rewards_are_a_function_of_the_loss(tmp_path):
    """The reference state and the batch order of a reward never change during a run: a loss scored
    late gets what it would have got in the first round."""
    config = SearchConfig(strategy="random", seed=1, per_round=4)
    search, store = _search(tmp_path, config, rounds=2)
    spec = [from_program(parse_loss("(y_hat - y)^2")[0], search.clamp)]

    def reward():
        order = torch.Generator().manual_seed(config.seed)
        return float(search.evaluator.evaluate(search.model, spec, order).utilities[0]) - search.utility

    early = reward()
    search.run(SearchLimits(max_rounds=8))
    assert reward() == early and early > 0
    store.close()


@pytest.mark.parametrize("reward", ["reference", "moving"])
def test_a_resumed_run_with_an_epsilon_grid_follows_the_same_trajectory(tmp_path, reward):
    """With the epsilon grid the gradient memory holds variants (candidate@eps) that the records do
    not show: a resumed run restores it from its checkpoint and proposes, screens and scores exactly
    as the uninterrupted one (the moving recommender of the paper's reward included)."""
    data = load("synthetic")
    config = SearchConfig(strategy="evolution", seed=2, reward=reward, strategy_config={"novelty": True})

    def rows(path, splits):
        for rounds in splits:
            store = RunStore.open_or_create(path, run_config(config, data, "synthetic"))
            LossSearch(data, store, config).run(SearchLimits(max_rounds=rounds))
            store.close()
        store = RunStore.open_readonly(path)
        out = [(c.id, c.state, c.reward, c.eps, c.duplicate_of, c.accepted) for c in store.candidates()]
        store.close()
        return out

    whole, resumed = rows(tmp_path / "whole", [24]), rows(tmp_path / "resumed", [9, 24])
    assert whole == resumed
    assert any(r[3] is not None for r in whole)  # some candidate was scored with an epsilon
