"""The population trainer: one data order for all candidates (Phase I), or one per candidate
(Phase III: a seed sets the initialisation and the data order), and a population always equals
its candidates trained alone."""

import pytest
import torch

from lossgen.ir.formula import parse
from lossgen.models import create_population
from lossgen.training.losses import from_program, named
from lossgen.training.trainer import TrainConfig, epoch_order, train_epoch

U, I, DIM, N = 40, 50, 8, 700


def examples():
    gen = torch.Generator().manual_seed(11)
    users = torch.randint(0, U, (N,), generator=gen)
    items = torch.randint(0, I, (N,), generator=gen)
    labels = (torch.rand(N, generator=gen) < 0.55).float()
    return users, items, labels


def test_epoch_orders():
    shared, row = epoch_order(100, torch.Generator().manual_seed(0))
    assert shared.shape == (100,) and row is None and sorted(shared.tolist()) == list(range(100))
    g0, g1 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    orders, rows = epoch_order(100, [g0, g1, g0])
    assert orders.shape == (2, 100) and rows.tolist() == [0, 1, 0]  # one generator: drawn once, shared
    assert not torch.equal(orders[0], orders[1])  # two seeds: two orders
    assert torch.equal(orders[0], shared)  # seed 0's first order is the shared order of seed 0


@pytest.mark.parametrize("model", ["mf", "mlp"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_population_with_its_own_orders_equals_separate_runs(model, optimizer):
    users, items, labels = examples()
    specs = [named("BCE"), from_program(parse("(y_hat - y)^2")), named("MaxR", 1e-2), named("BCE")]
    seeds = [0, 1, 2, 1]
    config = TrainConfig(lr=0.05, batch_size=64, optimizer=optimizer)
    pop = create_population(model, U, I, seeds, DIM)
    gens = {s: torch.Generator().manual_seed(s) for s in set(seeds)}
    for _ in range(2):
        losses = train_epoch(pop, specs, users, items, labels, config, [gens[s] for s in seeds])
    for k, (spec, seed) in enumerate(zip(specs, seeds)):
        single = create_population(model, U, I, [seed], DIM)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(2):
            alone = train_epoch(single, [spec], users, items, labels, config, gen)
        scores = pop.select([k]).predict(users, items)
        torch.testing.assert_close(scores, single.predict(users, items), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(losses[k], alone[0], rtol=1e-5, atol=1e-8)
    # BCE with seeds 0 and 1: other initialisation and other order, other results
    assert not torch.allclose(pop.select([0]).predict(users, items), pop.select([3]).predict(users, items))


@pytest.mark.parametrize("model", ["mf", "mlp"])
def test_one_shared_order_is_what_phase_one_uses(model):
    """With one generator every candidate sees the same order: two copies of one state trained
    with one loss stay equal."""
    users, items, labels = examples()
    pop = create_population(model, U, I, [5], DIM).select([0, 0])
    train_epoch(pop, [named("BCE"), named("BCE")], users, items, labels, TrainConfig(lr=0.05),
                torch.Generator().manual_seed(3))
    assert torch.equal(pop.select([0]).predict(users, items), pop.select([1]).predict(users, items))


def test_a_generator_per_candidate_must_match_the_population():
    users, items, labels = examples()
    pop = create_population("mf", U, I, [0, 1], DIM)
    with pytest.raises(ValueError, match="2 generators for a population of 2|generators for a population"):
        train_epoch(pop, [named("BCE")] * 2, users, items, labels, TrainConfig(), [torch.Generator()])
