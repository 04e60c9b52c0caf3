"""Shared by the comparison tests (local and on Ray): a small plan on synthetic data and a
private data cache."""

import pytest

from lossgen.compare.plan import ComparePlan, shared_search
from lossgen.phases.settings import SearchConfig

DATA_SPEC = "synthetic:users=120,items=150,seed=3"
# the settings every run shares (SearchConfig's stored form, without strategy and seed): the paper
# preset, whose rl and random runs spend a small evaluation budget in a few rounds (the lossgen
# preset's strict check rejects most candidates before training; tests/compare/test_phase3.py and
# the CLI tests cover its race)
SEARCH = shared_search(SearchConfig.from_preset("paper", strategy_config={"op_set": "paper", "max_steps": 7}))


def small_plan(budget: int = 12, **changes) -> ComparePlan:
    """rl and random, 2 seeds, a short Phase III with BCE and MSE; `changes` replace fields."""
    fields = dict(strategies=("rl", "random"), seeds=(0, 1), budget=budget, dataset=DATA_SPEC, search=SEARCH,
                  limits={"patience": 200}, top=2, phase3_seeds=1, max_epochs=4, baselines="BCE,MSE")
    return ComparePlan(**{**fields, **changes})


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Prepared splits go to a private cache. (Autouse in every module that imports it.)"""
    monkeypatch.setenv("LOSSGEN_CACHE_DIR", str(tmp_path / "cache"))
