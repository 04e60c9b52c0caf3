"""lossgen.phases.settings: the one place for each default, and the mapping from the flat option
names (command line, TOML files, old comparison plans) to SearchConfig and SearchLimits."""

import json

import pytest

from lossgen.phases.settings import (DEFAULT_BASELINES, DEFAULT_BUDGET, DEFAULT_PATIENCE, OPTION_TYPES, PHASE_OPTIONS,
                                     SEARCH_OPTIONS, CheckSettings, Phase3Settings, SearchConfig, SearchLimits,
                                     parse_duration, phase_settings, search_from_options)
from lossgen.training.trainer import TrainConfig


def test_parse_duration():
    assert parse_duration("90m") == 5400
    assert parse_duration("2h") == 7200
    assert parse_duration("3600") == 3600
    assert parse_duration(3600) == 3600
    assert parse_duration("1.5h") == 5400
    assert parse_duration("45s") == 45
    assert parse_duration(" 10 m ") == 600
    for bad in ("abc", "", "10d", "-5", "1h30m", "h"):
        with pytest.raises(ValueError, match="time limit"):
            parse_duration(bad)


def test_option_defaults_are_the_library_defaults():
    config, train = SearchConfig(), TrainConfig()
    for name in ("strategy", "seed", "per_round", "proxy", "dedupe", "proxy_batch", "delta", "zero_reward",
                 "filtering", "eta", "model", "task", "clamp"):
        assert SEARCH_OPTIONS[name] == getattr(config, name), name
    assert (SEARCH_OPTIONS["lr"], SEARCH_OPTIONS["optimizer"]) == (train.lr, train.optimizer)
    phase3, check = Phase3Settings(), CheckSettings()
    assert PHASE_OPTIONS == {"threshold": check.threshold, "top": phase3.top, "seeds": phase3.seeds,
                             "max_epochs": phase3.max_epochs, "baselines": DEFAULT_BASELINES,
                             "early_stop": phase3.early_stop, "selection": phase3.selection,
                             "survivors": phase3.survivors, "rungs": phase3.rungs}
    assert phase3.early_stop == "paper"
    assert DEFAULT_BASELINES == "BCE,MSE,Hinge,Focal"
    # every option without a default has a type to check config-file values against
    # (and the list-valued ones, given as "0.1,0.01" or a list)
    assert {k for k, v in {**SEARCH_OPTIONS, **PHASE_OPTIONS}.items()
            if v is None or isinstance(v, tuple)} == set(OPTION_TYPES)


def test_search_from_options():
    config, limits = search_from_options({})
    assert limits == SearchLimits.default() == SearchLimits(budget=DEFAULT_BUDGET, patience=DEFAULT_PATIENCE)
    assert config == SearchConfig(strategy_config={"op_set": "paper", "max_steps": 7, "novelty": True})
    config, limits = search_from_options({"strategy": "evolution", "seed": 4, "ops": "add, mul,log", "max_steps": 5,
                                          "proxy": False, "lr": 0.05, "optimizer": "adam", "time_limit": "2m",
                                          "max_rounds": 9})
    assert limits == SearchLimits(time_limit=120.0, max_rounds=9)
    assert (config.strategy, config.seed, config.proxy) == ("evolution", 4, False)
    assert config.strategy_config == {"op_set": ("add", "mul", "log"), "max_steps": 5, "novelty": True}
    assert config.train == TrainConfig(lr=0.05, optimizer="adam")
    for options, message in [({"device": "cuda"}, "--device 'cuda'"), ({"budget": 0}, "budget must be positive"),
                             ({"time_limit": "soon"}, "time limit 'soon'"), ({"strategy": "foo"}, "unknown strategy"),
                             ({"model": "svd"}, "unknown model"), ({"per_round": 0}, "per_round"),
                             ({"optimizer": "rmsprop"}, "unknown optimizer"), ({"clamp": "loose"}, "clamp")]:
        with pytest.raises(ValueError, match=message):
            search_from_options(options)


def test_search_config_round_trips_through_its_stored_form():
    config = SearchConfig(strategy="random", strategy_config={"op_set": "extended"}, seed=2,
                          train=TrainConfig(optimizer="adam", betas=(0.8, 0.99)))
    stored = json.loads(json.dumps(config.to_dict()))  # as config.json holds it: tuples became lists
    assert stored["train"]["betas"] == [0.8, 0.99]
    assert SearchConfig.from_dict(stored) == config


def test_limits():
    assert SearchLimits().empty and not SearchLimits.default().empty
    with pytest.raises(ValueError, match="no stopping rule"):
        SearchLimits().check()
    with pytest.raises(ValueError, match="max_rounds must be positive"):
        SearchLimits(max_rounds=0).check()
    totals = {"evaluated": 10, "sampled": 40}
    assert SearchLimits(budget=10).reached(totals, 0.0, 1, 0) == "budget of 10 evaluations reached"
    assert SearchLimits(budget=11).reached(totals, 0.0, 1, 0) is None
    assert SearchLimits(time_limit=5.0).reached(totals, 5.0, 1, 0) == "time limit of 5 s reached"
    assert SearchLimits(patience=3).reached(totals, 0.0, 9, 3) == "no validation improvement for 3 rounds"


def test_phase_settings_check():
    CheckSettings().check()
    Phase3Settings().check()
    with pytest.raises(ValueError, match="threshold must be in"):
        CheckSettings(threshold=1.5).check()
    with pytest.raises(ValueError, match="at least 2 pairs"):
        CheckSettings(pairs=1).check()
    with pytest.raises(ValueError, match="max-epochs must be at least 1"):
        Phase3Settings(max_epochs=0).check()
    with pytest.raises(ValueError, match="Fcal"):
        Phase3Settings(baselines="BCE,Fcal").check()
    Phase3Settings(baselines=" ").check()  # no baselines at all


def test_presets_name_complete_settings_and_options_override_them():
    lossgen, _ = search_from_options({})
    assert (lossgen.preset, lossgen.clamp, lossgen.reward, lossgen.strict) == ("lossgen", "symmetric", "reference", True)
    assert lossgen.eps_grid == (0.1, 0.01, 0.001) and lossgen.strategy_config["novelty"] is True
    paper, _ = search_from_options({"preset": "paper"})
    assert (paper.preset, paper.clamp, paper.reward, paper.strict, paper.eps_grid) == ("paper", "paper", "moving", False, ())
    assert "novelty" not in paper.strategy_config  # the strategies' configs as before presets
    assert paper == SearchConfig.from_preset("paper", strategy_config={"op_set": "paper", "max_steps": 7})
    mixed, _ = search_from_options({"preset": "paper", "clamp": "symmetric", "eps_grid": "0.01,1e-4"})
    assert (mixed.clamp, mixed.eps_grid, mixed.reward) == ("symmetric", (0.01, 1e-4), "moving")
    assert search_from_options({"eps_grid": "none"})[0].eps_grid == ()
    check, phase3 = phase_settings({"preset": "paper"})
    assert (check.strict, phase3.selection) == (False, "top")
    check, phase3 = phase_settings({"rungs": "2,4"})
    assert (check.strict, phase3.selection, phase3.rungs) == (True, "race", (2, 4))
    for options, message in [({"preset": "fast"}, "unknown preset 'fast'"), ({"reward": "best"}, "unknown reward"),
                             ({"eps_grid": "0.1,x"}, "--eps-grid"), ({"eps_grid": "0,0.1"}, "eps-grid values"),
                             ({"eps_grid": "0.1,0.1"}, "twice")]:
        with pytest.raises(ValueError, match=message):
            search_from_options(options)
    with pytest.raises(ValueError, match="rungs must be increasing"):
        phase_settings({"rungs": "5,3"})


def test_configs_stored_before_presets_read_as_the_paper_preset():
    stored = SearchConfig.from_preset("paper").to_dict()
    for key in ("preset", "eps_grid", "reward", "strict"):
        del stored[key]
    assert SearchConfig.from_dict(stored) == SearchConfig.from_preset("paper")
    assert SearchConfig.from_dict(SearchConfig().to_dict()) == SearchConfig()
