"""tell accepts candidates the strategy never asked for (seeding with known losses)."""

import pytest
import torch

from lossgen.ir.formula import parse
from lossgen.ir.programs import Program
from lossgen.search import Candidate, create
from lossgen.search.evolution import tree_to_program

MSE = parse("(y_hat - y)^2")
BCE_LIKE = parse("log(1 / y_hat) * y + y_hat * (1 - y)")  # 7 steps: BCE-like, within budget


def rl_log_prob(strategy, program):
    actions = strategy.actions_for([Candidate.seed(program)])
    with torch.no_grad():
        logp, _ = strategy.controller.log_prob(actions, strategy._binary[actions[..., 0]])
    return float(logp[0])


def test_rl_seed_trajectory_yields_exactly_the_seeded_program():
    strategy = create("rl")
    for program in (MSE, BCE_LIKE, parse("y_hat"), parse("max(y_hat, y) * (1 / (y_hat + 1))")):
        rows = strategy.actions_for([Candidate.seed(program)])[0]
        codes = [int(strategy._ops[i]) for i in rows[:, 0]]
        raw = Program([(c, int(a), int(b)) for c, (a, b) in zip(codes, rows[:, 1:].tolist())])
        assert len(raw) == strategy.config.max_steps
        assert raw.canonical() == program.canonical()


def test_rl_moves_toward_a_rewarded_seed():
    strategy = create("rl", seed=0)
    before = rl_log_prob(strategy, MSE)
    for _ in range(30):
        asked = strategy.ask(9)
        strategy.tell(asked + [Candidate.seed(MSE)], [0.0] * 9 + [1.0])
    after = rl_log_prob(strategy, MSE)
    assert after > before + 1.0


def test_evolution_seed_joins_the_population_and_breeds():
    strategy = create("evolution", {"population_size": 20}, seed=0)
    asked = strategy.ask(20)
    strategy.tell(asked + [Candidate.seed(BCE_LIKE, source="BCE")], [0.0] * 20 + [5.0])
    assert strategy.population[0].fitness.values == (5.0,)
    assert tree_to_program(strategy.population[0]) == BCE_LIKE
    # Offspring now come from a population whose best member is the seed.
    kids = strategy.ask(200)
    assert all(k.metadata["origin"] in ("crossover", "mutation") for k in kids)


def test_evolution_seed_before_any_ask():
    strategy = create("evolution", seed=1)
    strategy.tell([Candidate.seed(MSE), Candidate.seed(BCE_LIKE)], [1.0, 2.0])
    assert len(strategy.population) == 2
    assert all(c.program.validate(7) for c in strategy.ask(60))


def test_random_accepts_seeds():
    strategy = create("random")
    strategy.tell([Candidate.seed(MSE)], [1.0])


@pytest.mark.parametrize("name", ["rl", "evolution", "random"])
def test_seeds_outside_the_op_set_or_budget_are_rejected(name):
    strategy = create(name, {"max_steps": 7})
    with pytest.raises(ValueError, match="op set"):
        strategy.tell([Candidate.seed(parse("tanh(y_hat) * y"))], [1.0])
    long_one = parse("((y_hat + y)^2 + 1)^2 * log(y_hat * y + 1) + y")
    assert len(long_one) > 7
    with pytest.raises(ValueError, match="max_steps"):
        strategy.tell([Candidate.seed(long_one)], [1.0])


def test_seeds_with_extended_ops_are_accepted_by_extended_strategies():
    for name in ("rl", "evolution", "random"):
        strategy = create(name, {"op_set": "extended"})
        strategy.tell([Candidate.seed(parse("tanh(y_hat) * y"))] * 10, [1.0] * 10)


def test_asked_candidates_from_another_strategy_count_as_seeds():
    rl = create("rl", seed=0)
    evo = create("evolution", seed=0)
    foreign = create("random", seed=0).ask(20)
    rl.tell(foreign, [1.0] * 20)
    evo.tell(foreign, [1.0] * 20)
    assert rl.updates == 1
    assert len(evo.population) == len({c.program for c in foreign})
