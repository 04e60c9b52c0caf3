from types import SimpleNamespace

import pytest
import torch

from lossgen.ir.formula import parse
from lossgen.training.losses import from_program, named
from lossgen.training.losses import batch_losses, losses_and_grads
from lossgen.models.mlp import MLPPopulation
from lossgen.training.trainer import TrainConfig

U, I, DIM = 25, 35, 8


def examples(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, U, (n,), generator=g), torch.randint(0, I, (n,), generator=g),
            (torch.rand(n, generator=g) < 0.5).float())


SPECS = [named("BCE"), from_program(parse("max(y_hat, y) * (1 / (y_hat + 1))")), named("LogMin", 1e-2)]


def train(pop, specs, users, items, labels, batch=32, lr=0.05, l2=1e-3):
    for start in range(0, users.shape[0], batch):
        sl = slice(start, start + batch)
        pop.step(specs, users[sl], items[sl], labels[sl], lr, l2)


def test_population_equals_separate_runs_with_dropout_and_batch_norm():
    users, items, labels = examples()
    pop = MLPPopulation.init(U, I, [4, 5, 6], dim=DIM)
    train(pop, SPECS, users, items, labels)
    for k, seed in enumerate([4, 5, 6]):
        single = MLPPopulation.init(U, I, [seed], dim=DIM)
        train(single, [SPECS[k]], users, items, labels)
        for name, t in pop.state_dict().items():
            torch.testing.assert_close(t[k], single.state_dict()[name][0], rtol=1e-5, atol=1e-6, msg=name)
        torch.testing.assert_close(pop.scores(users, items)[k], single.scores(users, items)[0], rtol=1e-5, atol=1e-5)


def test_step_lowers_the_training_loss():
    users, items, labels = examples(512, seed=1)
    pop = MLPPopulation.init(U, I, [0, 1, 2], dim=DIM)
    with torch.no_grad():
        before = batch_losses(SPECS, pop.scores(users, items), labels)
    for _ in range(5):
        train(pop, SPECS, users, items, labels, lr=0.1, l2=0.0)
    with torch.no_grad():
        after = batch_losses(SPECS, pop.scores(users, items), labels)
    assert (after < before).all()


def test_batch_losses_order_matches_specs():
    scores = torch.randn(3, 10)
    labels = (torch.rand(10) < 0.5).float()
    mixed = batch_losses(SPECS, scores, labels)
    for k, spec in enumerate(SPECS):
        torch.testing.assert_close(mixed[k], batch_losses([spec], scores[k : k + 1], labels)[0])


# ---------------------------------------------------------------- against a plain PyTorch model
# The population's step is written out by hand; these replay it with autograd, F.batch_norm and
# torch.optim on one candidate, with the population's own dropout masks.

def _reference(pop):
    t = pop.state_dict()
    s = t["scale"][0].float()
    params = {n: torch.nn.Parameter(t[n][0].clone()) for n in
              ("w1", "b1", "g1", "beta1", "w2", "b2", "g2", "beta2", "w3", "b3")}
    for n in ("user_emb", "item_emb"):
        params[n] = torch.nn.Parameter(t[n][0] * s)
    running = {n: t[n][0].clone() for n in ("rm1", "rv1", "rm2", "rv2")}
    return params, running


def _reference_loss(params, running, keep, spec, users, items, labels, sparse=False):
    emb = torch.nn.functional.embedding
    h = torch.cat([emb(users, params["user_emb"], sparse=sparse), emb(items, params["item_emb"], sparse=sparse)], 1)
    for layer in (1, 2):
        h = h @ params[f"w{layer}"] + params[f"b{layer}"]
        h = torch.nn.functional.batch_norm(h, running[f"rm{layer}"], running[f"rv{layer}"], params[f"g{layer}"],
                                           params[f"beta{layer}"], training=True, momentum=0.1, eps=1e-5)
        h = torch.relu(h) * keep[layer - 1][0] / (1 - 0.2)
    scores = (h @ params["w3"] + params["b3"]).squeeze(-1)
    return batch_losses([spec], scores.unsqueeze(0), labels)[0]


def _assert_matches(pop, params, running, atol):
    t = pop.state_dict()
    for name, p in params.items():
        got = t[name][0] * (t["scale"][0].float() if name.endswith("_emb") else 1)
        torch.testing.assert_close(got, p.detach(), rtol=1e-4, atol=atol, msg=name)
    for name, r in running.items():
        torch.testing.assert_close(t[name][0], r, rtol=1e-4, atol=atol, msg=name)



@pytest.mark.parametrize("lr, l2", [(0.05, 1e-3), (0.1, 5.0)])  # the second renormalises the tables
def test_sgd_step_matches_autograd_and_torch_sgd(lr, l2):
    users, items, labels = examples(192, seed=3)
    for spec in SPECS:
        pop = MLPPopulation.init(U, I, [7], dim=DIM)
        params, running = _reference(pop)
        opt = torch.optim.SGD(params.values(), lr=lr, weight_decay=l2)
        for start in range(0, 192, 24):
            sl = slice(start, start + 24)
            keep = [m.clone() for m in pop.dropout_keep(24)]
            opt.zero_grad()
            _reference_loss(params, running, keep, spec, users[sl], items[sl], labels[sl]).backward()
            opt.step()
            pop.step([spec], users[sl], items[sl], labels[sl], lr, l2)
        _assert_matches(pop, params, running, atol=1e-5)


def test_adam_step_matches_torch_adam_and_sparse_adam():
    users, items, labels = examples(192, seed=4)
    lr, l2, betas, eps = 0.01, 1e-2, (0.8, 0.99), 1e-5
    for spec in SPECS:
        pop = MLPPopulation.init(U, I, [8], dim=DIM)
        params, running = _reference(pop)
        tables = [params["user_emb"], params["item_emb"]]
        dense = torch.optim.Adam([p for n, p in params.items() if not n.endswith("_emb")], lr=lr, betas=betas,
                                 eps=eps, weight_decay=l2)
        sparse = torch.optim.SparseAdam(tables, lr=lr, betas=betas, eps=eps)
        for start in range(0, 192, 24):
            sl = slice(start, start + 24)
            keep = [m.clone() for m in pop.dropout_keep(24)]
            dense.zero_grad()
            sparse.zero_grad()
            _reference_loss(params, running, keep, spec, users[sl], items[sl], labels[sl], sparse=True).backward()
            for n in ("b1", "b2"):  # batch norm cancels these biases: autograd's rounding noise,
                params[n].grad.zero_()  # which Adam would blow up to +-lr, is exactly zero
            for p in tables:  # coupled L2 on the touched rows only
                g = p.grad.coalesce()
                rows = g.indices()[0]
                p.grad = torch.sparse_coo_tensor(g.indices(), g.values() + l2 * p.detach()[rows], p.shape,
                                                 check_invariants=True)
            dense.step()
            sparse.step()
            pop.step([spec], users[sl], items[sl], labels[sl], lr, l2, optimizer="adam", betas=betas, eps=eps)
        _assert_matches(pop, params, running, atol=1e-5)


def test_adam_population_equals_separate_runs_and_select_carries_its_state():
    # Adam divides by sqrt(v): a gradient that is ~0 by cancellation, whose last bits differ
    # between a batched and a single product, moves its weight by up to lr with eps = 1e-8. A
    # larger eps keeps that rounding at rounding size, so the test can stay at 1e-5.
    users, items, labels = examples()
    pop = MLPPopulation.init(U, I, [4, 5, 6], dim=DIM)
    train(pop, SPECS, users, items, labels)  # SGD first: Adam then starts from scaled tables
    for _ in range(2):
        for start in range(0, 256, 32):
            sl = slice(start, start + 32)
            pop.step(SPECS, users[sl], items[sl], labels[sl], 0.01, 1e-3, optimizer="adam", eps=1e-4)
    for k, seed in enumerate([4, 5, 6]):
        single = MLPPopulation.init(U, I, [seed], dim=DIM)
        train(single, [SPECS[k]], users, items, labels)
        half = None
        for epoch in range(2):
            if epoch == 1:  # a selected copy continues exactly where the population would
                half = single
                single = single.select([0])
            for start in range(0, 256, 32):
                sl = slice(start, start + 32)
                single.step([SPECS[k]], users[sl], items[sl], labels[sl], 0.01, 1e-3, optimizer="adam", eps=1e-4)
        assert half is not None and int(single.t["adam_t"][0]) == 16
        for name, t in pop.state_dict().items():
            torch.testing.assert_close(t[k], single.state_dict()[name][0], rtol=1e-5, atol=1e-6, msg=name)


def test_adam_lowers_the_training_loss_and_keeps_the_scale_at_one():
    users, items, labels = examples(512, seed=1)
    pop = MLPPopulation.init(U, I, [0, 1, 2], dim=DIM)
    with torch.no_grad():
        before = batch_losses(SPECS, pop.scores(users, items), labels)
    for _ in range(5):
        for start in range(0, 512, 32):
            sl = slice(start, start + 32)
            pop.step(SPECS, users[sl], items[sl], labels[sl], 0.01, 1e-4, optimizer="adam")
    with torch.no_grad():
        after = batch_losses(SPECS, pop.scores(users, items), labels)
    assert (after < before).all()
    assert (pop.t["scale"] == 1).all()


def test_copy_candidate_carries_adam_state_and_unknown_optimizer_fails():
    users, items, labels = examples(64)
    trained = MLPPopulation.init(U, I, [1, 2], dim=DIM)
    trained.step(SPECS[:2], users, items, labels, 0.01, 1e-4, optimizer="adam")
    fresh = MLPPopulation.init(U, I, [3, 4], dim=DIM)
    fresh.copy_candidate(0, trained, 1)
    for name, t in trained.state_dict().items():
        assert torch.equal(fresh.t[name][0], t[1]), name
    assert not fresh.t["m_w1"][1].any()
    with pytest.raises(ValueError, match="optimizer"):
        fresh.step(SPECS[:2], users, items, labels, 0.01, 1e-4, optimizer="rmsprop")


def test_dropout_masks_are_deterministic_per_candidate_and_drop_a_fifth():
    a = MLPPopulation.init(U, I, [0, 1], dim=DIM)
    b = MLPPopulation.init(U, I, [1], dim=DIM)
    first = [m.clone() for m in a.dropout_keep(128)]
    assert torch.equal(b.dropout_keep(128)[0][0], first[0][1])
    assert not torch.equal(first[0][0], first[0][1])
    a.t["steps"] += 1  # the next step draws fresh masks
    assert not torch.equal(a.dropout_keep(128)[0], first[0])
    big = MLPPopulation.init(U, I, list(range(64)), dim=DIM).dropout_keep(128)
    rate = 1 - torch.cat([m.reshape(-1) for m in big]).mean()
    assert abs(float(rate) - 0.2) < 0.003  # 655,360 draws: 5 sigma is 0.0025


@pytest.mark.parametrize("spec", [named(n, 1e-2) for n in ("MSE", "BCE", "Hinge", "Focal", "MaxR", "SumR", "LogMin")]
                         + [SPECS[1], from_program(parse("max(y_hat * (1 / y), y * (1 / y_hat))"), eps=1e-2),
                            from_program(parse("log(y_hat) * -y + sqrt(1 - y_hat)"), "symmetric", eps=0.3)])
def test_loss_gradients_match_autograd(spec):
    # saturated scores make y_hat == y exactly (the ties of MaxR / LogMin) and hit Focal's clamp
    scores = torch.cat([torch.randn(2, 300, generator=torch.Generator().manual_seed(0)) * 3,
                        torch.tensor([[40.0, -40.0, 0.0, 1.0] * 5] * 2)], 1)
    labels = torch.cat([(torch.rand(300, generator=torch.Generator().manual_seed(1)) < 0.5).float(),
                        torch.tensor([1.0, 0.0, 1.0, 0.0] * 5)])
    leaf = scores.clone().requires_grad_(True)
    expected = batch_losses([spec, spec], leaf, labels)
    (grad,) = torch.autograd.grad(expected.sum(), [leaf])
    losses, grads = losses_and_grads([spec, spec], scores, labels)
    torch.testing.assert_close(losses, expected.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads, grad, rtol=1e-4, atol=1e-7)


def test_training_is_deterministic_and_takes_any_batch_size():
    users, items, labels = examples(75, seed=2)
    runs = []
    for _ in range(2):
        pop = MLPPopulation.init(U, I, [3, 9], dim=DIM)
        train(pop, SPECS[:2], users, items, labels, batch=32)  # batches of 32, 32 and 11
        pop.step(SPECS[:2], users[:1], items[:1], labels[:1], 0.05, 1e-3)  # and of one
        runs.append(pop.state_dict())
    for name, t in runs[0].items():
        assert torch.equal(t, runs[1][name]), name
        assert torch.isfinite(t.double()).all(), name


def test_programs_with_and_without_eps_in_one_population():
    """Programs with the paper's smoothing and programs with their own epsilons share a population:
    each candidate gets exactly what it gets alone, and the epsilon is used."""
    program = parse("log(y_hat) * -y + 1 / (y_hat + y)")
    specs = [from_program(program, "symmetric"), named("BCE"), from_program(program, "symmetric", eps=0.05),
             from_program(program, "symmetric", eps=0.5)]
    scores = torch.randn(4, 64, generator=torch.Generator().manual_seed(0)) * 3
    labels = (torch.rand(64, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    losses, grads = losses_and_grads(specs, scores, labels)
    for k, spec in enumerate(specs):
        alone, alone_grads = losses_and_grads([spec], scores[k : k + 1], labels)
        assert torch.equal(losses[k], alone[0]) and torch.equal(grads[k], alone_grads[0])
        torch.testing.assert_close(batch_losses(specs, scores, labels)[k], alone[0])
    assert len({float(v) for v in losses[[0, 2, 3]]}) == 3  # the same program, three smoothings

    users, items, labels = examples(96)
    pop = MLPPopulation.init(U, I, [4, 5, 6, 7], dim=DIM)
    train(pop, specs, users, items, labels)
    single = MLPPopulation.init(U, I, [6], dim=DIM)
    train(single, [specs[2]], users, items, labels)
    for name, t in pop.state_dict().items():
        torch.testing.assert_close(t[2], single.state_dict()[name][0], rtol=1e-5, atol=1e-6, msg=name)


# ---------------------------------------------------------------- the fused C++ step
# SGD steps and evaluation scores run in torch.ops.lossgen.mlp_train_epoch / mlp_predict; the
# PyTorch step above (fused=False) is their reference: same dropout stream, same batch norm, same
# lazy decay, so they agree to float rounding.

ALL_LOSSES = [named(n, 1e-2) for n in ("MSE", "BCE", "Hinge", "Focal", "MaxR", "SumR", "LogMin")] + [
    SPECS[1], from_program(parse("max(y_hat * (1 / y), y * (1 / y_hat))"), eps=1e-2)]


def _true_state(pop):
    state = pop.state_dict()
    for name in ("user_emb", "item_emb"):
        state[name] = state[name] * state["scale"].float()[:, None, None]
    return state


def _assert_same_models(fused, plain, rtol=1e-4, atol=1e-5):
    want = _true_state(plain)
    for name, t in _true_state(fused).items():
        torch.testing.assert_close(t, want[name], rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize("dim", [8, 20, 64])  # 64: whole vector tiles; 8, 20: partial ones
@pytest.mark.parametrize("lr, l2", [(0.05, 1e-3), (0.1, 5.0)])  # the second renormalises the tables
def test_fused_steps_equal_the_pytorch_step(dim, lr, l2):
    users, items, labels = examples(200, seed=5)
    seeds = list(range(10, 10 + len(ALL_LOSSES)))
    fused = MLPPopulation.init(U, I, seeds, dim=dim)
    plain = MLPPopulation.init(U, I, seeds, dim=dim, fused=False)
    for start, size in [(0, 64), (64, 64), (128, 17), (145, 1), (146, 54)]:  # odd batches too
        sl = slice(start, start + size)
        got = fused.step(ALL_LOSSES, users[sl], items[sl], labels[sl], lr, l2)
        want = plain.step(ALL_LOSSES, users[sl], items[sl], labels[sl], lr, l2)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    _assert_same_models(fused, plain)
    assert fused.t["steps"].tolist() == [5] * len(seeds)
    torch.testing.assert_close(fused.scores(users, items), plain.scores(users, items), rtol=1e-4, atol=1e-5)


def test_fused_epochs_equal_pytorch_epochs_with_shared_and_own_orders():
    users, items, labels = examples(300, seed=6)
    # (MaxR with e = 1e-3 and lr 0.05 takes steps of ~50 whose direction flips at its kink: a
    # rounding difference there becomes a different model, so this test keeps e at 1e-2)
    specs = [named("BCE"), SPECS[1], named("MaxR", 1e-2), named("BCE")]
    fused = MLPPopulation.init(U, I, [1, 2, 3, 4], dim=16)
    plain = MLPPopulation.init(U, I, [1, 2, 3, 4], dim=16, fused=False)
    config = TrainConfig(lr=0.05, batch_size=48)
    for pop in (fused, plain):
        pop.fit_epoch(specs, users, items, labels, config)  # one order for all
    orders = torch.stack([torch.randperm(300, generator=torch.Generator().manual_seed(s)) for s in (0, 1)])
    row = torch.tensor([0, 1, 0, 1])
    got = fused.fit_epoch(specs, users[orders], items[orders], labels[orders], config, row)
    want = plain.fit_epoch(specs, users[orders], items[orders], labels[orders], config, row)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    _assert_same_models(fused, plain)


def test_fused_population_equals_separate_runs_bit_for_bit_and_its_dropout_follows_the_seed():
    users, items, labels = examples(256, seed=7)
    config = TrainConfig(lr=0.05, batch_size=32)
    specs = [named("BCE"), SPECS[1], named("LogMin", 1e-2)]
    runs = []
    for _ in range(2):
        pop = MLPPopulation.init(U, I, [4, 5, 6], dim=DIM)
        pop.fit_epoch(specs, users, items, labels, config)
        runs.append(pop.state_dict())
    for name, t in runs[0].items():  # the same seeds: the same dropout masks, the same models
        assert torch.equal(t, runs[1][name]), name
    for k, seed in enumerate([4, 5, 6]):
        single = MLPPopulation.init(U, I, [seed], dim=DIM)
        single.fit_epoch([specs[k]], users, items, labels, config)
        for name, t in single.state_dict().items():
            assert torch.equal(runs[0][name][k], t[0]), name
    # one loss, one initialisation, another seed's dropout key: another model
    other = MLPPopulation.init(U, I, [4], dim=DIM)
    other.t["rng_key"].copy_(MLPPopulation.init(U, I, [99], dim=DIM).t["rng_key"])
    other.fit_epoch(specs[:1], users, items, labels, config)
    assert not torch.equal(other.t["w2"][0], runs[0]["w2"][0])


def test_fused_step_refuses_diverged_programs_as_the_pytorch_step_does():
    users, items, labels = examples(32)
    for fused in (True, False):
        pop = MLPPopulation.init(U, I, [0, 1], dim=DIM, fused=fused)
        pop.t["w3"][1] = float("nan")
        with pytest.raises(ValueError, match="NaN"):
            pop.step([named("BCE"), SPECS[1]], users, items, labels, 0.05, 1e-3)
        named_only = MLPPopulation.init(U, I, [0, 1], dim=DIM, fused=fused)
        named_only.t["w3"][1] = float("nan")  # a named loss lets NaN flow on
        losses = named_only.step([named("BCE"), named("MSE")], users, items, labels, 0.05, 1e-3)
        assert torch.isfinite(losses[0]) and torch.isnan(losses[1])


def test_fused_ops_check_their_inputs():
    users, items, labels = examples(32)
    pop = MLPPopulation.init(U, I, [0], dim=DIM)
    with pytest.raises(ValueError, match="items out of range"):
        pop.step(SPECS[:1], users, items + I, labels, 0.05, 1e-3)
    with pytest.raises(ValueError, match="batch size"):  # the program kernels' blocks hold 256 points
        pop.fit_epoch(SPECS[:1], users, items, labels, SimpleNamespace(optimizer="sgd", batch_size=300, lr=0.1, l2=0.0))
    pop.t["w1"] = pop.t["w1"].contiguous()  # [K, 2d, 64] memory instead of its transpose
    with pytest.raises(ValueError, match="w1"):
        pop.scores(users, items)

