import torch

from lossgen.formula import parse
from lossgen.losses import from_program, named
from lossgen.models.mlp import MLPPopulation, batch_losses

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
