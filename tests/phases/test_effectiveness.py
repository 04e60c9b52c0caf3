import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from lossgen.cli import app
from lossgen.data import load
from lossgen.ir.formula import parse
from lossgen.training.losses import from_program, named
from lossgen.phases.effectiveness import EffectivenessConfig, Run, should_stop, run_effectiveness


@pytest.fixture(scope="module")
def data():
    return load("synthetic:users=120,items=150,seed=3", cache_enabled=False)


def test_stop_rule():
    config = EffectivenessConfig(patience=3, stale=5, max_epochs=100)
    run = Run(named("BCE"), 0)
    run.history = [0.5, 0.6, 0.59, 0.58, 0.57]  # three consecutive drops
    run.epochs, run.best_epoch = 5, 1
    assert should_stop(run, config)
    run.history = [0.5, 0.6, 0.59, 0.595, 0.57]
    assert not should_stop(run, config)
    run.epochs, run.best_epoch = 8, 1  # best 6 epochs ago > stale
    assert should_stop(run, config)
    run.epochs, run.best_epoch = 100, 99
    assert should_stop(run, config)  # epoch cap


def test_effectiveness_selects_on_validation_and_reads_test_once(data):
    config = EffectivenessConfig(seeds=(0, 1), max_epochs=8, eps_grid=(1.0, 1e-3), bootstrap=200)
    specs = [named("BCE"), named("MSE"), named("MaxR"), from_program(parse("(y_hat - y)^2"), "symmetric")]
    before = data.test_reads
    result = run_effectiveness(data, specs, config)
    assert data.test_reads == before + 1
    assert result.runs == 2 * (1 + 1 + 2 + 1)
    assert [r.spec.name for r in result.losses] == [s.name for s in specs]
    maxr = result.losses[2]
    assert maxr.spec.eps in (1.0, 1e-3)
    assert all(len(r.test["auc"]) == 2 for r in result.losses)
    assert result.reference in ("BCE", "MSE")
    others = [r for r in result.losses if r.spec.name != result.reference]
    assert all(r.vs_reference is not None and 0 <= r.vs_reference["p_value"] <= 1 for r in others)
    # the symmetric-clamp program (y_hat - y)^2 is MSE: same training, same test numbers
    mse, program = result.losses[1], result.losses[3]
    assert program.test["auc"] == pytest.approx(mse.test["auc"], abs=1e-5)


def test_evaluate_cli_writes_reports(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "--dataset", "synthetic:users=80,items=100,seed=1", "--losses", "BCE,SumR",
                                 "--seeds", "1", "--max-epochs", "3", "--out", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    body = json.loads((tmp_path / "effectiveness.json").read_text())
    assert [l["name"] for l in body["losses"]] == ["BCE", "SumR"]
    assert (tmp_path / "effectiveness.md").read_text().startswith("| loss |")
    assert "BCE" in (tmp_path / "effectiveness.csv").read_text()


@pytest.mark.parametrize("args, message", [
    (["--model", "gnn"], "unknown --model 'gnn'"),
    (["--losses", "BCE,Cosine"], "unknown loss 'Cosine'"),
    (["--loss", "y_hat +"], "unexpected end of formula"),
    (["--format", "xml"], "unknown --format 'xml'"),
    (["--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'"),
])
def test_evaluate_user_errors(args, message):
    result = CliRunner().invoke(app, ["evaluate", "--dataset", "synthetic:users=50,items=60"] + args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_effectiveness_with_the_mlp(data):
    config = EffectivenessConfig(seeds=(0,), max_epochs=2, eps_grid=(1e-3,), model="mlp", bootstrap=100)
    result = run_effectiveness(data, [named("BCE"), named("SumR")], config)
    assert [len(r.test["auc"]) for r in result.losses] == [1, 1]


def test_effectiveness_with_adam(data):
    from lossgen.training.trainer import TrainConfig

    config = EffectivenessConfig(seeds=(0,), max_epochs=3, eps_grid=(1e-3,), bootstrap=100,
                                 train=TrainConfig(optimizer="adam", lr=0.005))
    result = run_effectiveness(data, [named("BCE"), named("MaxR")], config)
    assert all(0.0 <= r.test["auc"][0] <= 1.0 for r in result.losses)


def test_effectiveness_with_the_mlp_and_adam(data):
    from lossgen.training.trainer import TrainConfig

    config = EffectivenessConfig(seeds=(0,), max_epochs=2, eps_grid=(1e-3,), model="mlp", bootstrap=100,
                                 train=TrainConfig(optimizer="adam", lr=0.001))
    result = run_effectiveness(data, [named("BCE"), named("SumR")], config)
    assert all(0.0 <= r.test["auc"][0] <= 1.0 for r in result.losses)


def test_early_stop_modes():
    from lossgen.phases.effectiveness import EARLY_STOP, EffectivenessConfig, Run, should_stop
    from lossgen.training.losses import named

    paper = EffectivenessConfig()
    official = paper.with_early_stop("official")
    assert paper.early_stop == "paper" and official.early_stop == "official"
    assert (official.warmup, official.patience, official.stale) == EARLY_STOP["official"] == (100, 10, 100)
    with pytest.raises(ValueError, match="early stop"):
        paper.with_early_stop("patient")

    def run_with(history, best_epoch):
        run = Run(named("BCE"), 0)
        run.history, run.epochs, run.best_epoch = list(history), len(history), best_epoch
        return run

    falling = run_with([0.9 - 0.01 * i for i in range(12)], 0)  # 11 consecutive worse epochs
    assert should_stop(falling, paper) and not should_stop(falling, official)  # official: not before 100
    stale = run_with([0.5] * 60, 0)  # best 59 epochs ago
    assert should_stop(stale, paper) and not should_stop(stale, official)
    late_stale = run_with([0.5] * 102, 0)
    assert should_stop(late_stale, official)
    capped = run_with([0.5 + 0.001 * i for i in range(5)], 4)
    assert should_stop(capped, replace(official, max_epochs=5))  # the epoch cap applies in every mode


def test_the_phase3_key_of_a_comparison_does_not_change_with_the_default_early_stop_and_init():
    import hashlib
    import json
    from dataclasses import asdict, replace

    from lossgen.compare.phase3 import phase3_key
    from lossgen.phases.effectiveness import EffectivenessConfig

    config = EffectivenessConfig()
    losses = [{"fingerprint": "ab", "program": [[0, 0, 1]]}]
    before = asdict(config)
    del before["warmup"], before["init_std"]  # what a key was made of before the fields existed
    blob = json.dumps({"losses": [("ab", [[0, 0, 1]])], "baselines": "BCE", "config": before, "clamp": "paper",
                       "data": "k"}, sort_keys=True, default=str)
    assert phase3_key(losses, "BCE", config, "paper", "k") == hashlib.sha256(blob.encode()).hexdigest()[:20]
    assert phase3_key(losses, "BCE", config.with_early_stop("official"), "paper", "k") != phase3_key(
        losses, "BCE", config, "paper", "k")
    assert phase3_key(losses, "BCE", replace(config, init_std=1.0), "paper", "k") != phase3_key(
        losses, "BCE", config, "paper", "k")


def test_seeds_vary_the_data_order_and_runs_equal_separate_ones():
    """A seed sets a run's initialisation and its data order: the spread over seeds is not zero,
    and each seed's run equals the same seed trained alone."""
    data = load("synthetic:users=120,items=150,seed=3", cache_enabled=False)
    config = EffectivenessConfig(seeds=(0, 1, 2), max_epochs=4, bootstrap=50)
    together = run_effectiveness(data, [named("BCE"), named("MSE")], config)
    for result in together.losses:
        assert result.std("auc") > 0, result.test
    for i, seed in enumerate(config.seeds):
        alone = run_effectiveness(data, [named("BCE"), named("MSE")], replace(config, seeds=(seed,)))
        for both, single in zip(together.losses, alone.losses):
            assert both.test["auc"][i] == pytest.approx(single.test["auc"][0], abs=1e-6)
