import ast
from pathlib import Path

import pytest

import lossgen
from lossgen.data import load
from lossgen.phases.check import positive_rates
from lossgen.phases.effectiveness import EffectivenessConfig
from lossgen.phases.runs import check_run, evaluate_run, phase2_current
from lossgen.phases.search import LossSearch
from lossgen.phases.settings import SearchConfig, SearchLimits, run_config
from lossgen.ir.programs import Program
from lossgen.runs import RunError, RunStore, distinct_evaluated

DATA_SPEC = "synthetic:users=120,items=150,seed=3"


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A small rl run (module-wide; the tests below only read it or add Phase II/III results)."""
    data = load(DATA_SPEC, cache_enabled=False)
    config = SearchConfig.from_preset("paper", strategy="rl", clamp="symmetric")
    store = RunStore.open_or_create(tmp_path_factory.mktemp("runs") / "rl",
                                    run_config(config.resolved(data), data, DATA_SPEC))
    LossSearch(data, store, config).run(SearchLimits(budget=40))
    return data, store


def test_check_run_rates_every_candidate(searched):
    data, store = searched
    summary = check_run(store, threshold=0.9)
    rows = store.candidates()
    expected = positive_rates([Program(r.program) for r in rows], "symmetric").tolist()
    assert [r.phase2_rate for r in rows] == expected
    distinct = distinct_evaluated(rows)
    assert store.distinct_evaluated() == distinct
    assert summary.distinct == len(distinct) == len({r.fingerprint for r in distinct})
    assert summary.passed == sum(r.phase2_rate >= 0.9 for r in distinct)
    assert store.get_meta("phase2")["passed"] == summary.passed
    assert store.unrated() == 0 and phase2_current(store, 0.9) and not phase2_current(store, 0.5)
    assert data.test_reads == 0


def test_phase3_candidates_are_the_best_passing_by_reward(searched):
    _, store = searched
    check_run(store, threshold=0.9)
    chosen = store.best_passing(top=100)
    assert all(r.phase2_rate >= 0.9 for r in chosen)
    assert [r.reward for r in chosen] == sorted((r.reward for r in chosen), reverse=True)
    assert len({r.fingerprint for r in chosen}) == len(chosen)
    early = store.best_passing(top=100, budget=10)
    assert all(r.evaluation <= 10 for r in early) and len(early) <= len(chosen)


def test_phase3_needs_phase2(tmp_path):
    data = load(DATA_SPEC, cache_enabled=False)
    config = SearchConfig(strategy="random")
    store = RunStore.open_or_create(tmp_path / "r", run_config(config.resolved(data), data, DATA_SPEC))
    with pytest.raises(RunError, match="no candidates yet"):
        check_run(store)
    LossSearch(data, store, config).run(SearchLimits(max_rounds=1))
    with pytest.raises(RunError, match="no Phase II results"):
        store.best_passing(3)


def test_evaluate_run_reads_the_test_split_once_and_records_results(searched):
    data, store = searched
    check_run(store, threshold=0.5)  # a low bar, so that something passes in a tiny search
    reads = data.test_reads
    config = EffectivenessConfig(seeds=(0,), max_epochs=5)
    result = evaluate_run(store, data, top=2, baselines="BCE,MSE", config=config, selection="top")
    assert data.test_reads == reads + 1
    names = [r.spec.name for r in result.losses]
    chosen = [r.id for r in store.best_passing(2)]
    assert names == chosen + ["BCE", "MSE"]
    meta = store.get_meta("phase3")
    assert [e["name"] for e in meta["results"]] == names and meta["metric"] == "auc"
    for cid in chosen:
        recorded = store.candidate(cid).phase3
        assert recorded["test"]["auc"] == next(r.test["auc"] for r in result.losses if r.spec.name == cid)
    # the library writes no presentation files: RUN/phase3/effectiveness.* is the CLI's (tests/cli)
    assert not (Path(store.path) / "phase3").exists()


def test_only_phase3_reads_the_test_split():
    """Statically: `open_test` is called in lossgen.phases.effectiveness and nowhere else."""
    root = Path(lossgen.__file__).parent
    callers = set()
    for path in list(root.rglob("*.py")) + list((root.parent / "search").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("open_test", "_read_test"):
                callers.add(path.relative_to(root.parent).as_posix())
    assert callers == {"lossgen/phases/effectiveness.py", "lossgen/data/dataset.py"}, callers
