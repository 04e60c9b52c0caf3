"""The LSTM controller: batched sampling, teacher forcing, REINFORCE bookkeeping."""

import pytest
import torch

from lossgen.ir.opset import Op
from lossgen.ir.programs import Program
from lossgen.search import create
from lossgen.search.rl import NATIVE_RNN_MIN_BATCH, RLConfig, RLController


@pytest.mark.parametrize("n", [64, NATIVE_RNN_MIN_BATCH + 8])  # both nn.LSTM backends
def test_sampled_log_probs_equal_teacher_forced_ones(n):
    strategy = create("rl", {"op_set": "extended"}, seed=2)
    cands = strategy.ask(n)
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


def test_first_op_is_drawn_from_the_controller_distribution():
    # Gumbel-max sampling must follow softmax(1.5 tanh(W h)); the first op's distribution is the
    # same for every program, so its empirical frequencies can be checked directly.
    strategy = create("rl", seed=1)
    controller = strategy.controller
    with torch.no_grad():
        for p in controller.op_head.parameters():
            p.mul_(20)  # spread the distribution so the check has power
        h, _ = controller.lstm(controller.start.view(1, 1, -1))
        probs = controller._clip(controller.op_head(h[0, 0])).softmax(-1)
    n = 6000
    first = torch.tensor([strategy._ops.index(Op(c.metadata["decisions"][0][0])) for c in strategy.ask(n)])
    freq = torch.bincount(first, minlength=len(probs)).float() / n
    sigma = (probs * (1 - probs) / n).sqrt()
    assert ((freq - probs).abs() <= 4 * sigma + 1e-3).all(), (freq, probs)


def test_tell_reuses_the_sampled_actions_only_for_untouched_candidates():
    strategy = create("rl", seed=3)
    cands = strategy.ask(12)
    rebuilt = [type(c)(c.program, c.id, c.strategy, {"decisions": [list(s) for s in c.metadata["decisions"]]})
               for c in cands]
    fast = strategy.actions_for(cands)
    assert fast is strategy._last_ask[2]  # the sampler's tensor, no rebuild
    assert torch.equal(fast, strategy.actions_for(rebuilt[:6] + cands[6:]))  # rebuilt from metadata
    assert strategy.actions_for(rebuilt) is not fast
    # a candidate whose decisions were replaced is credited from what it carries, not the cache
    bad = type(cands[0])(cands[0].program, cands[0].id, "rl", {"decisions": [[0, 0, 0]] * 7})
    assert not torch.equal(strategy.actions_for([bad] + cands[1:])[0], fast[0])


def test_native_rnn_switch_is_restored():
    enabled = torch._C._get_mkldnn_enabled()
    strategy = create("rl", seed=0)
    cands = strategy.ask(NATIVE_RNN_MIN_BATCH)
    strategy.tell(cands, [float(i % 2) for i in range(len(cands))])
    assert strategy.updates == 1 and torch._C._get_mkldnn_enabled() == enabled


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


def test_decisions_replaced_in_place_are_not_served_from_the_cache():
    strategy = create("rl", seed=3)
    cands = strategy.ask(3)
    tampered = type(cands[0])(cands[0].program, cands[0].id, "rl", {"decisions": [[0, 0, 0]] * 7})
    expected = strategy.actions_for([tampered] + cands[1:])  # invalid: the program's trajectory
    cands[0].metadata["decisions"] = tampered.metadata["decisions"]  # same candidate object, new decisions
    assert torch.equal(strategy.actions_for(cands), expected)
