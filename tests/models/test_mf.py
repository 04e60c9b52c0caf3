import pytest
import torch

from lossgen.ir.formula import parse
from lossgen.kernels import reference_values
from lossgen.ir.programs import batch as batch_programs
from lossgen.training.losses import NAMED, from_program, named
from lossgen.models.mf import LossTable, MFPopulation
from bench.torch_mf import TorchBiasedMF, train_torch

U, I, DIM = 30, 40, 8


def examples(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, U, (n,), generator=g), torch.randint(0, I, (n,), generator=g),
            (torch.rand(n, generator=g) < 0.5).float())


@pytest.mark.parametrize("spec", [named(n, eps=0.1) for n in NAMED]
                         + [from_program(parse("max(y_hat, y) * (1 / (y_hat + 1))"), "paper"),
                            from_program(parse("(y_hat - y)^2"), "symmetric"),
                            from_program(parse("max(y_hat * (1 / y), y * (1 / y_hat))"), "symmetric", "MaxR-program",
                                         eps=0.1),
                            from_program(parse("log(y_hat) * -y + sqrt(y_hat)"), "official", "log-sqrt", eps=0.3)],
                         ids=lambda s: s.label())
def test_fused_sgd_equals_plain_pytorch(spec):
    users, items, labels = examples()
    # large lr and l2 so that weight decay and every gradient term matter
    lr, l2 = 0.5, 0.05
    pop = MFPopulation.init(U, I, [3], dim=DIM)
    pop_loss = pop.train_steps(LossTable.build([spec]), users, items, labels, 32, lr, l2)
    ref = TorchBiasedMF(U, I, DIM, seed=3)
    ref_loss = train_torch(ref, spec, users, items, labels, 32, lr, l2)
    assert float(pop_loss[0]) == pytest.approx(ref_loss, rel=1e-4, abs=1e-6)
    got = pop.true_parameters()
    torch.testing.assert_close(got["user_emb"][0], ref.user_emb.detach(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got["item_emb"][0], ref.item_emb.detach(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got["user_bias"][0], ref.user_bias.detach(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got["item_bias"][0], ref.item_bias.detach(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got["global_bias"][0], ref.global_bias.detach(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(pop.scores(users, items)[0], ref(users, items).detach(), rtol=1e-4, atol=1e-5)


def test_population_equals_separate_runs():
    users, items, labels = examples(500)
    specs = [named("BCE"), from_program(parse("log(y_hat) * -y")), named("MaxR", 1e-3),
             from_program(parse("log(y_hat) * -y"), eps=0.05)]
    pop = MFPopulation.init(U, I, [1, 2, 3, 4], dim=DIM)
    pop.train_steps(LossTable.build(specs), users, items, labels, 64, 0.05, 1e-3)
    assert not torch.equal(pop.user_emb[1], pop.select([3]).user_emb[0])  # the epsilon matters
    for k, (spec, seed) in enumerate(zip(specs, [1, 2, 3, 4])):
        single = MFPopulation.init(U, I, [seed], dim=DIM)
        single.train_steps(LossTable.build([spec]), users, items, labels, 64, 0.05, 1e-3)
        for name, t in pop.state_dict().items():
            assert torch.equal(t[k], single.state_dict()[name][0]), name


def test_weight_decay_is_exact_for_untouched_rows():
    pop = MFPopulation.init(U, I, [0], dim=DIM)
    before = pop.true_parameters()["user_emb"][0, U - 1].clone()
    users = torch.zeros(10, dtype=torch.long)  # only user 0 is touched
    pop.train_steps(LossTable.build([named("BCE")]), users, torch.arange(10), torch.ones(10), 5, 0.1, 0.01)
    after = pop.true_parameters()["user_emb"][0, U - 1]
    torch.testing.assert_close(after, before * (1 - 0.1 * 0.01) ** 2)


def test_bad_ids_and_shapes_are_value_errors():
    pop = MFPopulation.init(U, I, [0], dim=DIM)
    table = LossTable.build([named("BCE")])
    with pytest.raises(ValueError, match=r"users out of range: ids must be in \[0, 30\)"):
        pop.train_steps(table, torch.tensor([0, 30]), torch.tensor([0, 1]), torch.ones(2), 2, 0.1, 0.0)
    with pytest.raises(ValueError, match="batch size must be in 1..256"):
        pop.train_steps(table, torch.tensor([0]), torch.tensor([0]), torch.ones(1), 512, 0.1, 0.0)
    with pytest.raises(ValueError, match="labels contain NaN"):
        pop.train_steps(table, torch.tensor([0]), torch.tensor([0]), torch.tensor([float("nan")]), 1, 0.1, 0.0)


def lazy_adam_reference(spec, users, items, labels, batch, lr, l2, betas=(0.9, 0.999), eps=1e-8, seed=3):
    """Lazy Adam written out in plain PyTorch: autograd gradients, then Adam on touched rows only."""
    model = TorchBiasedMF(U, I, DIM, seed=seed)
    params = [model.user_emb, model.item_emb, model.user_bias, model.item_bias, model.global_bias]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    from bench.torch_mf import batch_loss

    for t, start in enumerate(range(0, users.shape[0], batch), start=1):
        sl = slice(start, start + batch)
        loss = batch_loss(spec, model(users[sl], items[sl]), labels[sl])
        grads = torch.autograd.grad(loss, params)
        touched = [users[sl].unique(), items[sl].unique(), users[sl].unique(), items[sl].unique(), None]
        with torch.no_grad():
            for p, g, mi, vi, rows in zip(params, grads, m, v, touched):
                idx = (...,) if rows is None else rows  # the global bias is a 0-dim tensor
                grad = g[idx] + l2 * p[idx]
                mi[idx] = betas[0] * mi[idx] + (1 - betas[0]) * grad
                vi[idx] = betas[1] * vi[idx] + (1 - betas[1]) * grad * grad
                b1, b2 = 1 - betas[0] ** t, 1 - betas[1] ** t
                if rows is None:  # dense: torch.optim.Adam's form
                    p[idx] -= lr * (mi[idx] / b1) / (torch.sqrt(vi[idx]) / b2**0.5 + eps)
                else:  # rows: torch.optim.SparseAdam's form
                    p[idx] -= lr * b2**0.5 / b1 * mi[idx] / (torch.sqrt(vi[idx]) + eps)
    return model


@pytest.mark.parametrize("spec", [named("BCE"), named("SumR", 0.1), from_program(parse("log(y_hat) * -y")),
                                  from_program(parse("1 / y_hat + log(y_hat) * -y"), "symmetric", eps=0.01)],
                         ids=lambda s: s.label())
def test_fused_lazy_adam_equals_the_reference(spec):
    users, items, labels = examples(200)
    pop = MFPopulation.init(U, I, [3], dim=DIM)
    pop.train_steps(LossTable.build([spec]), users, items, labels, 25, 0.01, 0.01, optimizer="adam")
    ref = lazy_adam_reference(spec, users, items, labels, 25, 0.01, 0.01)
    got = pop.true_parameters()
    for name in ("user_emb", "item_emb", "user_bias", "item_bias", "global_bias"):
        torch.testing.assert_close(got[name][0], getattr(ref, name).detach(), rtol=1e-4, atol=1e-6, msg=name)
    assert int(pop.adam_step[0]) == 8


def test_adam_population_equals_separate_runs_and_select_keeps_state():
    users, items, labels = examples(300)
    specs = [named("BCE"), named("MaxR", 1e-2)]
    pop = MFPopulation.init(U, I, [1, 2], dim=DIM)
    pop.train_steps(LossTable.build(specs), users, items, labels, 50, 0.01, 1e-3, optimizer="adam")
    single = MFPopulation.init(U, I, [2], dim=DIM)
    single.train_steps(LossTable.build(specs[1:]), users, items, labels, 50, 0.01, 1e-3, optimizer="adam")
    for name, t in single.state_dict().items():
        assert torch.equal(pop.state_dict()[name][1], t[0]), name
    picked = pop.select([1])
    assert torch.equal(picked.adam_moments[0], pop.adam_moments[1])


def test_unknown_optimizer():
    pop = MFPopulation.init(U, I, [0], dim=DIM)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        pop.train_steps(LossTable.build([named("BCE")]), torch.tensor([0]), torch.tensor([0]), torch.ones(1), 1, 0.1,
                        0.0, optimizer="rmsprop")


def test_program_eps_equals_the_plain_pytorch_reference():
    """A program with its own epsilon, trained by the fused step, against the same model trained
    with torch.optim.SGD on the pure-PyTorch reference loss (no compiled code in the loss)."""
    users, items, labels = examples()
    program = parse("max(y_hat * (1 / y), y * (1 / y_hat))")
    spec = from_program(program, "symmetric", eps=0.01)
    lr, l2, size = 0.05, 0.01, 32
    pop = MFPopulation.init(U, I, [3], dim=DIM)
    pop.train_steps(LossTable.build([spec]), users, items, labels, size, lr, l2)
    ref = TorchBiasedMF(U, I, DIM, seed=3)
    optimizer = torch.optim.SGD(ref.parameters(), lr=lr, weight_decay=l2)
    prog = batch_programs([program])
    for start in range(0, users.shape[0], size):
        sl = slice(start, start + size)
        optimizer.zero_grad()
        y_hat = torch.sigmoid(ref(users[sl], items[sl]))
        reference_values(prog, y_hat, labels[sl], "symmetric", eps=0.01).mean().backward()
        optimizer.step()
    got = pop.true_parameters()
    for name in ("user_emb", "item_emb", "user_bias", "item_bias", "global_bias"):
        torch.testing.assert_close(got[name][0], getattr(ref, name).detach(), rtol=1e-4, atol=1e-6, msg=name)


def test_program_without_eps_keeps_the_paper_smoothing():
    table = LossTable.build([from_program(parse("log(y_hat) * -y")), from_program(parse("log(y_hat) * -y"), eps=0.5),
                             named("MaxR", 0.1)])
    assert table.eps.tolist() == [0.0, 0.5, pytest.approx(0.1)]  # 0: the paper's smoothing


def test_bad_program_eps_in_a_loss_table_is_a_value_error():
    pop = MFPopulation.init(U, I, [0], dim=DIM)
    table = LossTable.build([from_program(parse("log(y_hat) * -y"), eps=0.5)])
    table.eps[0] = -1.0
    with pytest.raises(ValueError, match=r"loss_eps\[0\] = -1: a program's smoothing epsilon must be finite and > 0"):
        pop.train_steps(table, torch.tensor([0]), torch.tensor([0]), torch.ones(1), 1, 0.1, 0.0)
