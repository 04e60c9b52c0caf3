"""Every strategy emits only valid, canonical programs over its op set, within max_steps."""

import pytest

from lossgen.ir.opset import EXTENDED_OPS, PAPER_OPS
from lossgen.search import create
from bench.toy_reward import GradientSignReward

REWARD = GradientSignReward()


def check_candidates(cands, strategy):
    ops = set(strategy.config.ops())
    for cand in cands:
        program = cand.program
        program.validate(strategy.config.max_steps)
        assert program.ops() <= ops, (cand.id, str(program))
        assert program == program.canonical()
        assert cand.strategy == strategy.name
        assert cand.id.startswith(f"{strategy.name}-") and cand.id.endswith(cand.key)


@pytest.mark.parametrize("name", ["rl", "evolution", "random"])
@pytest.mark.parametrize("op_set", ["paper", "extended"])
def test_thousands_of_programs_are_valid(name, op_set):
    seen_ops = set()
    lengths = set()
    for seed in range(3):
        strategy = create(name, {"op_set": op_set}, seed=seed)
        ids = set()
        for _ in range(8):
            cands = strategy.ask(128)
            check_candidates(cands, strategy)
            strategy.tell(cands, REWARD([c.program for c in cands]))
            ids.update(c.id for c in cands)
            for c in cands:
                seen_ops |= c.program.ops()
                lengths.add(len(c.program))
        assert len(ids) == 8 * 128  # ids are unique within a run
    expected = set(EXTENDED_OPS if op_set == "extended" else PAPER_OPS)
    assert seen_ops == expected  # every op of the set is reachable, none outside it
    assert min(lengths) <= 2 and max(lengths) >= 6


@pytest.mark.parametrize("name", ["rl", "evolution", "random"])
@pytest.mark.parametrize("max_steps", [1, 3])
def test_small_step_budgets(name, max_steps):
    strategy = create(name, {"max_steps": max_steps}, seed=5)
    for _ in range(4):
        cands = strategy.ask(100)
        check_candidates(cands, strategy)
        strategy.tell(cands, REWARD([c.program for c in cands]))
