"""The LSTM controller: batched sampling, teacher forcing, REINFORCE bookkeeping."""

import pytest
import torch

from lossgen.opset import Op
from lossgen.programs import Program
from lossgen.search import create
from lossgen.search.rl import RLConfig, RLController


def test_sampled_log_probs_equal_teacher_forced_ones():
    strategy = create("rl", {"op_set": "extended"}, seed=2)
    cands = strategy.ask(64)
    actions = strategy.actions_for(cands)
    with torch.no_grad():
        logp, entropy = strategy.controller.log_prob(actions, strategy._binary[actions[..., 0]])
    sampled = torch.tensor([c.metadata["log_prob"] for c in cands])
    assert torch.allclose(logp, sampled, rtol=1e-4, atol=1e-3)  # float32 sums of 21 terms
    assert (entropy > 0).all()


def test_decisions_have_distinct_binary_operands_and_yield_the_program():
    strategy = create("rl", seed=4)
    for cand in strategy.ask(300):
        raw = Program(cand.metadata["decisions"])  # validates: written operands, a != b
        assert len(raw) == 7
        assert raw.canonical() == cand.program
        for op, a, b in raw.steps:
            if Op(op).arity == 1:
                assert b == 0


def test_ask_samples_all_programs_in_one_pass(monkeypatch):
    strategy = create("rl", seed=0)
    calls = []
    real = torch.lstm_cell

    def counting(*args):
        calls.append(args[0].shape[0])
        return real(*args)

    monkeypatch.setattr(torch, "lstm_cell", counting)
    strategy.ask(200)
    assert calls == [200] * (3 * 7 * 2)  # 3 decisions per step, 7 steps, 2 layers; batch 200


def test_weights_start_uniform_in_a_tenth():
    controller = create("rl", seed=0).controller
    for name, p in controller.named_parameters():
        assert p.abs().max() <= 0.1, name
    assert controller.lstm.num_layers == 2 and controller.lstm.hidden_size == 32


def test_op_choice_is_bounded_by_the_logit_clip():
    # 1.5 tanh(.) bounds logits to [-1.5, 1.5]: no op ever gets more than e^3 times another's odds.
    strategy = create("rl", seed=0)
    with torch.no_grad():
        for p in strategy.controller.op_head.parameters():
            p.mul_(1e4)
    cands = strategy.ask(2000)
    counts = torch.zeros(len(strategy._ops))
    for c in cands:
        for op, _, _ in c.metadata["decisions"]:
            counts[strategy._ops.index(Op(op))] += 1
    share = counts / counts.sum()
    assert share.min() > share.max() / torch.e**3 / 1.5


def test_updates_happen_per_batch_of_ten_rewards_with_a_moving_baseline():
    strategy = create("rl", seed=0)
    strategy.tell(strategy.ask(6), [1.0] * 6)
    assert strategy.updates == 0 and strategy.baseline is None
    strategy.tell(strategy.ask(4), [3.0] * 4)
    assert strategy.updates == 1
    first_mean = (6 * 1.0 + 4 * 3.0) / 10
    assert strategy.baseline == pytest.approx(first_mean)
    strategy.tell(strategy.ask(10), [2.0] * 10)
    assert strategy.updates == 2
    assert strategy.baseline == pytest.approx(0.99 * first_mean + 0.01 * 2.0)


def test_update_changes_the_controller_and_respects_config():
    cfg = RLConfig(lr=1e-2, l2=0.0, entropy_weight=0.0, batch_size=4)
    strategy = RLController(cfg, seed=0)
    before = [p.clone() for p in strategy.controller.parameters()]
    cands = strategy.ask(4)
    strategy.tell(cands, [0.0, 1.0, 0.0, 1.0])
    assert strategy.updates == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, strategy.controller.parameters()))


def test_tampered_decisions_fall_back_to_the_program():
    strategy = create("rl", seed=0)
    cand = strategy.ask(1)[0]
    bad = type(cand)(cand.program, cand.id, cand.strategy, {"decisions": [[0, 0, 0]] * 7})
    actions = strategy.actions_for([bad])
    codes = [int(strategy._ops[i]) for i in actions[0, :, 0]]
    raw = Program([(c, a, b) for c, (a, b) in zip(codes, actions[0, :, 1:].tolist())])
    assert raw.canonical() == cand.program


@pytest.mark.parametrize("threads", [1, 2, 0])
def test_thread_setting_is_restored(threads):
    before = torch.get_num_threads()
    seen = []
    strategy = create("rl", {"threads": threads}, seed=0)
    real = strategy.controller.log_prob

    def spy(*args):
        seen.append(torch.get_num_threads())
        return real(*args)

    strategy.controller.log_prob = spy
    strategy.tell(strategy.ask(10), [1.0] * 10)
    assert seen == [threads or before]
    assert torch.get_num_threads() == before
