import pytest
import torch

from lossgen.models import create_population

U, I, DIM = 25, 35, 8


def _user_table(population):
    return population.user_emb if hasattr(population, "user_emb") else population.t["user_emb"]


@pytest.mark.parametrize("model", ["mf", "mlp"])
def test_init_std_scales_the_same_embedding_draws(model):
    small = create_population(model, U, I, [3, 4], DIM)
    large = create_population(model, U, I, [3, 4], DIM, init_std=1.0)
    torch.testing.assert_close(_user_table(large), _user_table(small) * 100.0, rtol=1e-5, atol=0)
    assert 0.9 < float(_user_table(large).std()) < 1.1


@pytest.mark.parametrize("model", ["mf", "mlp"])
@pytest.mark.parametrize("init_std", [0.0, -1.0, float("nan"), float("inf")])
def test_a_bad_init_std_is_refused(model, init_std):
    with pytest.raises(ValueError, match="init_std"):
        create_population(model, U, I, [0], DIM, init_std=init_std)


def test_an_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown model 'ncf'"):
        create_population("ncf", U, I, [0], DIM)
