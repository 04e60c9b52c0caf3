"""lossgen.compare.plan: the plan holds library settings (a shared SearchConfig and the safety
stops), and plans written in the older form (the command line's flat option names in `search`,
no `limits`) still load, to the same plan."""

import json

import pytest

from lossgen.compare.plan import ComparePlan, shared_search
from lossgen.compare.runner import PLAN_FILE, check_same_comparison
from lossgen.phases.settings import Phase3Settings, SearchConfig, SearchLimits
from lossgen.training.trainer import TrainConfig

# plan.json's `plan` as comparisons wrote it before plans held library settings
OLD_FORM = {
    "strategies": ["rl", "evolution", "random"],
    "seeds": [0, 1, 2],
    "budget": 300,
    "search": {
        "dataset": "ml-100k", "data_dir": "/data", "model": "mf", "task": "classification", "max_sampled": None,
        "time_limit": "90m", "max_rounds": None, "patience": 2000, "device": "cpu", "clamp": "official",
        "ops": "paper", "max_steps": 5, "per_round": 8, "proxy": True, "dedupe": True, "filtering": True,
        "eta": 0.002, "delta": 0.0001, "proxy_batch": None, "zero_reward": -0.05, "optimizer": "adam", "lr": 0.02,
    },
    "top": 3,
    "threshold": 0.9,
    "phase3_seeds": 3,
    "max_epochs": 1000,
    "baselines": "BCE,MSE,Hinge,Focal",
}


def new_form() -> ComparePlan:
    config = SearchConfig.from_preset("paper", strategy_config={"op_set": "paper", "max_steps": 5}, per_round=8,
                                      eta=0.002, clamp="official", train=TrainConfig(lr=0.02, optimizer="adam"))
    return ComparePlan(strategies=("rl", "evolution", "random"), seeds=(0, 1, 2), budget=300, dataset="ml-100k",
                       data_dir="/data", search=shared_search(config),
                       limits={"time_limit": 5400.0, "patience": 2000}, top=3, threshold=0.9, phase3_seeds=3,
                       max_epochs=1000, baselines="BCE,MSE,Hinge,Focal", selection="top")


def test_an_old_form_plan_loads_to_the_new_form():
    old = ComparePlan.from_dict(json.loads(json.dumps(OLD_FORM)))
    assert old == new_form()
    old.check()
    assert old.search_limits() == SearchLimits(budget=300, time_limit=5400.0, patience=2000)
    assert old.search_config("evolution", 2) == new_form().search_config("evolution", 2)


def test_an_old_form_plan_without_limits_or_data_names_takes_the_defaults():
    flat = {k: v for k, v in OLD_FORM["search"].items() if k not in ("dataset", "data_dir", "time_limit", "patience")}
    plan = ComparePlan.from_dict({**OLD_FORM, "search": flat})
    assert plan.dataset == "synthetic" and plan.data_dir is None and plan.limits == {}
    assert plan.search_limits() == SearchLimits(budget=300)


def test_the_new_form_round_trips_through_json():
    plan = new_form()
    assert ComparePlan.from_dict(plan.to_dict()) == plan
    loaded = ComparePlan.from_dict(json.loads(json.dumps(plan.to_dict())))  # as plan.json is read back
    assert loaded.limits == plan.limits and loaded.dataset == plan.dataset
    for strategy, seed in plan.runs():
        assert loaded.search_config(strategy, seed) == plan.search_config(strategy, seed)


def test_search_config_and_limits_of_a_run():
    plan = new_form()
    config = plan.search_config("random", 1)
    assert (config.strategy, config.seed, config.per_round, config.clamp) == ("random", 1, 8, "official")
    assert config.train == TrainConfig(lr=0.02, optimizer="adam")
    assert plan.runs()[:4] == [("rl", 0), ("evolution", 0), ("random", 0), ("rl", 1)]
    assert plan.search_limits().budget == 300


def test_plan_check_names_the_bad_setting():
    plan = new_form()
    with pytest.raises(ValueError, match="unknown safety stop 'budget'"):
        ComparePlan(**{**plan.__dict__, "limits": {"budget": 3}}).check()
    with pytest.raises(ValueError, match="patience must be positive"):
        ComparePlan(**{**plan.__dict__, "limits": {"patience": 0}}).check()
    with pytest.raises(ValueError, match="unknown model"):
        ComparePlan(**{**plan.__dict__, "search": {**plan.search, "model": "svd"}}).check()


def test_a_comparison_directory_with_an_old_form_plan_resumes(tmp_path):
    (tmp_path / PLAN_FILE).write_text(json.dumps({"plan": OLD_FORM, "data_key": "k", "command": None}))
    check_same_comparison(tmp_path, new_form(), "k")  # the same comparison: no error
    # the safety stops and where the data lives may change between invocations
    moved = ComparePlan(**{**new_form().__dict__, "data_dir": "/elsewhere", "limits": {"patience": 5}})
    check_same_comparison(tmp_path, moved, "k")
    other = ComparePlan(**{**new_form().__dict__, "search": {**new_form().search, "per_round": 4}})
    with pytest.raises(ValueError, match=r"other settings: per_round \(8 -> 4\)"):
        check_same_comparison(tmp_path, other, "k")
    with pytest.raises(ValueError, match="on other data"):
        check_same_comparison(tmp_path, new_form(), "another key")


def test_a_plan_read_back_from_plan_json_is_the_same_comparison(tmp_path):
    """plan.json holds lists where a fresh plan holds tuples (TrainConfig.betas, a custom op set)."""
    config = SearchConfig(strategy_config={"op_set": ("add", "mul", "log"), "max_steps": 5})
    plan = ComparePlan(strategies=("rl",), seeds=(0,), budget=10, search=shared_search(config))
    (tmp_path / PLAN_FILE).write_text(json.dumps({"plan": plan.to_dict(), "data_key": "k", "command": None}))
    check_same_comparison(tmp_path, plan, "k")


def test_plans_without_an_early_stop_rule_read_as_the_paper_rule():
    plan = ComparePlan.from_dict({"strategies": ["rl"], "seeds": [0], "budget": 5, "search": {}, "limits": {}})
    assert plan.early_stop == "paper"
    assert ComparePlan.from_dict(plan.to_dict()) == plan


def test_plans_from_before_the_race_read_as_the_top_selection():
    """An older plan.json (no selection, survivors, rungs) resumes as it ran: Phase III on the top
    candidates by reward; a new plan keeps its race settings through plan.json."""
    plan = ComparePlan.from_dict({"strategies": ["rl"], "seeds": [0], "budget": 5, "search": {}, "limits": {},
                                  "top": 2})
    assert plan.selection == "top" and plan.top == 2 and plan.rungs == Phase3Settings.rungs
    assert ComparePlan.from_dict(plan.to_dict()) == plan
    assert ComparePlan.from_dict(OLD_FORM).selection == "top"
    race = ComparePlan(strategies=("rl",), seeds=(0,), budget=5, survivors=2, rungs=(2, 6))
    assert race.selection == Phase3Settings.selection == "race"
    stored = ComparePlan.from_dict(json.loads(json.dumps(race.to_dict())))  # as plan.json is read back
    assert (stored.selection, stored.survivors, stored.rungs) == ("race", 2, (2, 6))
    assert race.phase3_settings() == Phase3Settings(selection="race", survivors=2, rungs=(2, 6))
    with pytest.raises(ValueError, match="rungs"):
        ComparePlan(strategies=("rl",), seeds=(0,), budget=5, rungs=(6, 2)).check()
    with pytest.raises(ValueError, match="unknown selection"):
        ComparePlan(strategies=("rl",), seeds=(0,), budget=5, selection="best").check()
