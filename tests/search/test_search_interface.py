"""lossgen.search.create, the Candidate type and the SearchStrategy protocol."""

import random

import pytest

import lossgen.search as search
from lossgen.ir.formula import parse
from lossgen.ir.opset import EXTENDED_OPS, PAPER_OPS
from lossgen.ir.programs import Program
from lossgen.search import Candidate, SearchStrategy, create, program_key
from lossgen.search.base import canonical_from_steps
from lossgen.search.random_search import sample_steps

NAMES = ["rl", "evolution", "random"]


@pytest.mark.parametrize("name", NAMES)
def test_create_builds_each_strategy_with_paper_defaults(name):
    strategy = create(name)
    assert isinstance(strategy, SearchStrategy)
    assert strategy.name == name
    assert strategy.config.max_steps == 7
    assert strategy.config.ops() == PAPER_OPS


@pytest.mark.parametrize("name", NAMES)
def test_create_accepts_a_dict_of_config_fields(name):
    strategy = create(name, {"op_set": "extended", "max_steps": 4}, seed=3)
    assert strategy.config.ops() == EXTENDED_OPS
    assert strategy.config.max_steps == 4


def test_rl_config_has_the_papers_controller_settings():
    cfg = search.RLConfig()
    assert (cfg.hidden, cfg.layers, cfg.init_range, cfg.logit_clip) == (32, 2, 0.1, 1.5)
    assert (cfg.lr, cfg.entropy_weight, cfg.baseline_decay, cfg.batch_size) == (1e-3, 1e-4, 0.99, 10)


def test_create_rejects_unknown_names_and_foreign_configs():
    with pytest.raises(ValueError, match="unknown strategy"):
        create("annealing")
    with pytest.raises(TypeError, match="RLConfig"):
        create("rl", search.RandomConfig())
    with pytest.raises(ValueError, match="max_steps"):
        create("random", {"max_steps": 0})
    with pytest.raises(ValueError, match="unknown op"):
        create("evolution", {"op_set": "Add,Frobnicate"})


@pytest.mark.parametrize("name", NAMES)
def test_ask_zero_and_negative(name):
    strategy = create(name)
    assert strategy.ask(0) == []
    with pytest.raises(ValueError):
        strategy.ask(-1)


@pytest.mark.parametrize("name", NAMES)
def test_tell_checks_its_arguments(name):
    strategy = create(name)
    cands = strategy.ask(3)
    with pytest.raises(ValueError, match="rewards"):
        strategy.tell(cands, [0.0, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        strategy.tell(cands, [0.0, float("nan"), 1.0])


@pytest.mark.parametrize("name", NAMES)
def test_load_state_dict_rejects_another_strategys_state(name):
    other = "random" if name != "random" else "rl"
    with pytest.raises(ValueError, match="strategy"):
        create(name).load_state_dict(create(other).state_dict())


def test_program_key_identifies_canonical_programs():
    a = parse("max(y_hat, y) * (1 / (y_hat + 1))")
    raw = Program([(7, 1, 0)] + [(op, a_ if a_ < 3 else a_ + 1, b_ if b_ < 3 else b_ + 1) for op, a_, b_ in a.steps])
    assert raw != a  # a dead step in front
    assert program_key(raw) == program_key(a) == program_key(a, canonical=True)
    assert program_key(parse("y_hat * y")) != program_key(parse("y_hat + y"))
    assert len(program_key(a)) == 12


def test_seed_candidates_have_stable_ids():
    mse = parse("(y_hat - y)^2")
    cand = Candidate.seed(mse, source="MSE")
    assert cand.id == f"seed-{program_key(mse)}"
    assert cand.strategy == "seed" and cand.metadata == {"source": "MSE"}
    assert Candidate.seed(mse) == cand  # metadata does not take part in equality


def test_fast_canonicalisation_matches_program_canonical():
    rng = random.Random(0)
    ops = EXTENDED_OPS
    for _ in range(5000):
        steps = sample_steps(rng, ops, rng.randint(1, 7))
        assert canonical_from_steps(steps) == Program(steps).canonical()
    # Small op sets make repeated subtrees (and equal-operand copies) common.
    few = (EXTENDED_OPS[0], EXTENDED_OPS[7])  # Add, Square
    for _ in range(5000):
        steps = sample_steps(rng, few, 7)
        assert canonical_from_steps(steps) == Program(steps).canonical()
