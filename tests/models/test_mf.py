import pytest
import torch

from lossgen.formula import parse
from lossgen.losses import NAMED, from_program, named
from lossgen.models.mf import LossTable, MFPopulation
from lossgen.models.torch_mf import TorchBiasedMF, train_torch_mf

U, I, DIM = 30, 40, 8


def examples(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, U, (n,), generator=g), torch.randint(0, I, (n,), generator=g),
            (torch.rand(n, generator=g) < 0.5).float())


@pytest.mark.parametrize("spec", [named(n, eps=0.1) for n in NAMED]
                         + [from_program(parse("max(y_hat, y) * (1 / (y_hat + 1))"), "paper"),
                            from_program(parse("(y_hat - y)^2"), "symmetric")], ids=lambda s: s.name)
def test_fused_sgd_equals_plain_pytorch(spec):
    users, items, labels = examples()
    # large lr and l2 so that weight decay and every gradient term matter
    lr, l2 = 0.5, 0.05
    pop = MFPopulation.init(U, I, [3], dim=DIM)
    pop_loss = pop.sgd(LossTable.build([spec]), users, items, labels, 32, lr, l2)
    ref = TorchBiasedMF(U, I, DIM, seed=3)
    ref_loss = train_torch_mf(ref, spec, users, items, labels, 32, lr, l2)
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
    specs = [named("BCE"), from_program(parse("log(y_hat) * -y")), named("MaxR", 1e-3)]
    pop = MFPopulation.init(U, I, [1, 2, 3], dim=DIM)
    pop.sgd(LossTable.build(specs), users, items, labels, 64, 0.05, 1e-3)
    for k, (spec, seed) in enumerate(zip(specs, [1, 2, 3])):
        single = MFPopulation.init(U, I, [seed], dim=DIM)
        single.sgd(LossTable.build([spec]), users, items, labels, 64, 0.05, 1e-3)
        for name, t in pop.state_dict().items():
            assert torch.equal(t[k], single.state_dict()[name][0]), name


def test_weight_decay_is_exact_for_untouched_rows():
    pop = MFPopulation.init(U, I, [0], dim=DIM)
    before = pop.true_parameters()["user_emb"][0, U - 1].clone()
    users = torch.zeros(10, dtype=torch.long)  # only user 0 is touched
    pop.sgd(LossTable.build([named("BCE")]), users, torch.arange(10), torch.ones(10), 5, 0.1, 0.01)
    after = pop.true_parameters()["user_emb"][0, U - 1]
    torch.testing.assert_close(after, before * (1 - 0.1 * 0.01) ** 2)


def test_bad_ids_and_shapes_are_value_errors():
    pop = MFPopulation.init(U, I, [0], dim=DIM)
    table = LossTable.build([named("BCE")])
    with pytest.raises(ValueError, match=r"users out of range: ids must be in \[0, 30\)"):
        pop.sgd(table, torch.tensor([0, 30]), torch.tensor([0, 1]), torch.ones(2), 2, 0.1, 0.0)
    with pytest.raises(ValueError, match="batch size must be in 1..256"):
        pop.sgd(table, torch.tensor([0]), torch.tensor([0]), torch.ones(1), 512, 0.1, 0.0)
    with pytest.raises(ValueError, match="labels contain NaN"):
        pop.sgd(table, torch.tensor([0]), torch.tensor([0]), torch.tensor([float("nan")]), 1, 0.1, 0.0)
