"""The `novelty` option: strategies stop re-proposing programs they proposed or were told."""

import copy
import io
import json
import random

import pytest
import torch

from lossgen.ir.formula import parse
from lossgen.search import Candidate, create, program_key
from lossgen.search.base import ProposalMemory

NAMES = ["rl", "evolution", "random"]
MSE = parse("(y_hat - y)^2")
BCE_LIKE = parse("log(1 / y_hat) * y + y_hat * (1 - y)")


def run(strategy, rounds, n=10, seed=0):
    """ask/tell with random rewards; the trace is what a resumed run must reproduce."""
    rng = random.Random(seed)
    trace = []
    for _ in range(rounds):
        cands = strategy.ask(n)
        strategy.tell(cands, [rng.random() for _ in cands])
        trace.extend((c.id, c.program) for c in cands)
    return trace


def repeated_share(trace):
    seen, repeated = set(), 0
    for cid, program in trace:
        key = program_key(program, canonical=True)
        repeated += key in seen
        seen.add(key)
    return repeated / len(trace)


@pytest.mark.parametrize("name", NAMES)
def test_novelty_is_off_by_default_and_off_changes_nothing(name):
    absent, off = create(name, seed=6), create(name, {"novelty": False}, seed=6)
    assert absent.config.novelty is False and absent.config == off.config
    assert run(absent, 8) == run(off, 8)
    assert "novelty_keys" not in absent.state_dict()
    assert "novel" not in absent.ask(1)[0].metadata


@pytest.mark.parametrize("name", NAMES)
def test_novelty_must_be_a_bool(name):
    for value in ("yes", 1, None):
        with pytest.raises(ValueError, match="novelty must be a bool") as err:
            create(name, {"novelty": value})
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", NAMES)
def test_novelty_cuts_repeated_proposals(name):
    # Measured over 50 rounds of ask(10) with random rewards, seeds 0..7: without novelty 39-45%
    # (random), 14-23% (evolution), 19-28% (rl) of the proposals repeat an earlier one; with it, 0.
    for seed in (0, 1):
        off = repeated_share(run(create(name, seed=seed), 50, seed=seed))
        on_trace = run(create(name, {"novelty": True}, seed=seed), 50, seed=seed)
        on = repeated_share(on_trace)
        assert off > 0.1, off
        assert on <= 0.01, on
        assert len(on_trace) == 500


@pytest.mark.parametrize("name", NAMES)
def test_novel_flags_and_exhausted_spaces_still_fill_the_batch(name):
    # max_steps 1 over the paper ops: a few dozen programs in all, so the space runs out and the
    # strategy must settle for known ones rather than propose fewer.
    strategy = create(name, {"novelty": True, "max_steps": 1}, seed=2)
    seen = set()
    for _ in range(12):
        cands = strategy.ask(10)
        assert len(cands) == 10
        for c in cands:
            assert c.metadata["novel"] == (c.key not in seen)
            seen.add(c.key)
        strategy.tell(cands, [0.0] * 10)
    assert len(seen) < 100  # exhausted: the later batches are all known programs


@pytest.mark.parametrize("name", NAMES)
def test_told_seeds_are_remembered(name):
    first = create(name, {"novelty": True}, seed=4).ask(1)[0].program
    on = create(name, {"novelty": True}, seed=4)  # its first proposal would be `first`
    on.tell([Candidate.seed(first)], [1.0])
    again = on.ask(1)[0]
    assert again.program != first and again.metadata["novel"]
    # another strategy's candidates count as told too
    foreign = create("random", seed=0).ask(30)
    strategy = create(name, {"novelty": True}, seed=4)
    strategy.tell(foreign, [0.0] * 30)
    keys = {c.key for c in foreign}
    assert not keys & {c.key for c in strategy.ask(30)}


def roundtrip(state, via):
    if via == "json":
        return json.loads(json.dumps(state))
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


@pytest.mark.parametrize("name, via", [(name, via) for name in NAMES for via in ("object", "torch.save", "json")
                                        if not (name == "rl" and via == "json")])  # rl's state holds tensors
def test_state_dict_round_trip_with_novelty_resumes_the_identical_sequence(name, via):
    original = create(name, {"novelty": True}, seed=7)
    run(original, 5, n=12)
    original.tell([Candidate.seed(MSE)], [0.5])  # seeds are part of the memory
    extra = original.ask(5)
    original.tell(extra, [0.1] * 5)  # below rl's batch size: buffered rewards travel too
    state = roundtrip(copy.deepcopy(original.state_dict()), via)
    expected = run(original, 6, n=7, seed=1)

    restored = create(name, {"novelty": True}, seed=999)
    restored.load_state_dict(state)
    assert run(restored, 6, n=7, seed=1) == expected

    forgetful = create(name, {"novelty": True}, seed=999)  # the memory is what makes the difference
    forgetful.load_state_dict({k: v for k, v in state.items() if k != "novelty_keys"})
    assert run(forgetful, 6, n=7, seed=1) != expected


def test_rl_credits_exactly_the_returned_trajectories():
    # A nearly exhausted space (max_steps 1: a few dozen programs): an ask that draws several
    # batches and returns new programs and filled-in known ones together.
    strategy = create("rl", {"novelty": True, "max_steps": 1}, seed=1)
    calls = []
    real = strategy.controller.sample
    strategy.controller.sample = lambda n, *args: calls.append(n) or real(n, *args)
    rng = random.Random(0)
    for _ in range(10):
        calls.clear()
        cands = strategy.ask(10)
        if 0 < sum(c.metadata["novel"] for c in cands) < 10:
            break
        strategy.tell(cands, [rng.random() for _ in cands])
    else:
        pytest.fail("no ask mixed new and known programs")
    assert calls == [32, 64, 128, 96]  # doubling batches, NOVELTY_DRAWS * 10 draws in all
    assert [c.metadata["novel"] for c in cands] == sorted((c.metadata["novel"] for c in cands), reverse=True)
    actions = strategy.actions_for(cands)
    assert actions is strategy._last_ask[2]
    rebuilt = [type(c)(c.program, c.id, c.strategy, {"decisions": [list(s) for s in c.metadata["decisions"]]})
               for c in cands]
    assert torch.equal(strategy.actions_for(rebuilt), actions)
    with torch.no_grad():
        logp, _ = strategy.controller.log_prob(actions, strategy._binary[actions[..., 0]])
    sampled = torch.tensor([c.metadata["log_prob"] for c in cands])
    assert torch.allclose(logp, sampled, rtol=1e-4, atol=1e-3)
    updates = strategy.updates
    strategy.tell(cands, [1.0] * 10)
    assert strategy.updates == updates + 1


def test_evolution_keeps_exploring_a_converged_population():
    # A population frozen on two seeds (every offspring scores below them): without novelty 43-50%
    # of 300 offspring repeat an earlier one (seeds 0..3), with it none does, still bred from them.
    def offspring(novelty):
        strategy = create("evolution", {"novelty": novelty, "population_size": 2}, seed=0)
        strategy.tell([Candidate.seed(MSE), Candidate.seed(BCE_LIKE)], [1.0, 1.0])
        trace, origins = [], set()
        for _ in range(30):
            cands = strategy.ask(10)
            strategy.tell(cands, [0.0] * 10)
            trace.extend((c.id, c.program) for c in cands)
            origins.update(c.metadata["origin"] for c in cands[2:])
        return repeated_share(trace), origins

    off, _ = offspring(False)
    on, origins = offspring(True)
    assert off > 0.3 and on <= 0.02, (off, on)
    assert origins == {"crossover", "mutation"}


def test_memory_state_is_compact_and_exact():
    memory = ProposalMemory()
    keys = [f"{k * 7_919_000_003 % 16**12:012x}" for k in range(1, 500)]
    assert all(memory.add(k) for k in keys) and not memory.add(keys[0])
    state = memory.state()
    assert isinstance(state, str) and len(state) == 8 * len(keys)
    restored = ProposalMemory(state)
    assert len(restored) == len(keys) and all(k in restored for k in keys)
    assert restored.state() == state
    assert program_key(MSE) not in restored
    with pytest.raises(ValueError):
        ProposalMemory(state[:-4])
