"""Phase III sharded by loss over Ray actors (lossgen.phases.distributed.train_sharded) gives the
same table as one population: epochs, validation, test metrics, the reference and the bootstraps."""

import pytest

ray = pytest.importorskip("ray")

from lossgen.data import load  # noqa: E402
from lossgen.ir.formula import parse  # noqa: E402
from lossgen.phases.distributed import group_shards  # noqa: E402
from lossgen.phases.effectiveness import EffectivenessConfig, run_effectiveness  # noqa: E402
from lossgen.phases.executor import ExecutorSettings  # noqa: E402
from lossgen.training.losses import from_program, parse_losses  # noqa: E402

pytestmark = pytest.mark.ray


def test_group_shards_cut_only_between_losses():
    assert group_shards(list("aaabbbcccddd"), 2) == [range(0, 6), range(6, 12)]
    assert group_shards(list("aabbbbbbbbcd"), 3) == [range(0, 2), range(2, 10), range(10, 12)]
    assert group_shards(list("aaa"), 3) == [range(0, 3)]


def test_sharded_phase3_gives_the_same_table(cluster):
    data = load("synthetic:users=120,items=150,seed=3", cache_enabled=False)
    specs = parse_losses("BCE,MSE,Hinge,MaxR") + [from_program(parse("max(y_hat, y) * (1 / (y_hat + 1))"), "paper",
                                                               name="found")]
    config = EffectivenessConfig(seeds=(0, 1), max_epochs=6, eps_grid=(1.0, 1e-2), bootstrap=300)
    whole = run_effectiveness(data, specs, config)
    test_reads = data.test_reads
    split = run_effectiveness(data, specs, config, executor=ExecutorSettings("ray", workers=2))
    assert data.test_reads == test_reads + 1  # the driver read the test split, once
    assert split.reference == whole.reference and split.runs == whole.runs
    assert split.epochs_trained == whole.epochs_trained
    assert [(r.spec, r.validation, r.test, r.epochs, r.vs_reference) for r in split.losses] == \
        [(r.spec, r.validation, r.test, r.epochs, r.vs_reference) for r in whole.losses]
