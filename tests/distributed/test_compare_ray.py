"""`lossgen compare` on a Ray cluster (lossgen.compare.distributed): a local multi-node cluster
started by conftest.py with Ray's own test utilities. Skipped without Ray."""

import json
import threading
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from compare_helpers import private_cache, small_plan  # noqa: E402, F401  (autouse fixture)
from lossgen.compare.plan import ComparePlan, run_dir  # noqa: E402
from lossgen.compare.runner import CompareHooks, run_compare  # noqa: E402
from lossgen.phases.executor import ExecutorSettings  # noqa: E402
from lossgen.runs import RunStore  # noqa: E402

pytestmark = pytest.mark.ray
NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024**2}  # as conftest.py's worker nodes

RAY = ExecutorSettings("ray")


def plan(**changes) -> ComparePlan:
    return small_plan(budget=60, **changes)


@pytest.fixture(scope="module")
def local_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    run_compare(plan(), out)
    return out


def comparable(out: Path) -> dict:
    """compare.json without wall times (what must not depend on where the searches ran)."""
    data = json.loads((out / "compare.json").read_text())
    runs = {name: {k: v for k, v in m.items() if k not in ("elapsed", "by_time")} for name, m in data["runs"].items()}
    return {"runs": runs, "phase3": data["phase3"]}


def candidates(out: Path, p: ComparePlan) -> dict:
    found = {}
    for strategy, seed in p.runs():
        store = RunStore.open_readonly(run_dir(out, strategy, seed))
        found[(strategy, seed)] = store.candidates()
        store.close()
    return found


def check_record(out: Path, p: ComparePlan) -> None:
    """Nothing lost or repeated: rounds 0..n-1 once each, candidate ids unique, evaluations 1..N."""
    for strategy, seed in p.runs():
        store = RunStore.open_readonly(run_dir(out, strategy, seed))
        rounds = [r.round for r in store.rounds()]
        rows = store.candidates()
        store.close()
        assert rounds == list(range(len(rounds)))
        assert len({r.id for r in rows}) == len(rows)
        evaluations = sorted(r.evaluation for r in rows if r.evaluation is not None)
        assert evaluations == list(range(1, len(evaluations) + 1))


def test_compare_on_ray_equals_the_local_executor(cluster, local_result, tmp_path):
    out = tmp_path / "ray"
    nodes = set()
    run_compare(plan(), out, hooks=CompareHooks(on_round=lambda name, r: nodes.add(r["node"])), executor=RAY)
    assert comparable(out) == comparable(local_result)
    assert candidates(out, plan()) == candidates(local_result, plan())
    check_record(out, plan())
    assert len(nodes) == 2  # both worker nodes searched


def test_a_worker_node_removed_mid_comparison_is_retried_and_resumed(cluster, local_result, tmp_path):
    c, workers = cluster
    victim = c.add_node(**NODE)  # the node that will be removed (the fixture's two stay for later tests)
    c.wait_for_nodes()
    out, events, removed = tmp_path / "ray", [], threading.Event()

    target = []

    def on_round(name: str, r: dict) -> None:
        events.append((name, r["round"], r["node"]))
        if not removed.is_set() and r["node"] == victim.node_id and r["round"] == 0:  # a search just began there
            removed.set()
            target.append(name)
            c.remove_node(victim, allow_graceful=False)  # kills its raylet and the search task on it

    run_compare(plan(), out, hooks=CompareHooks(on_round=on_round), executor=RAY)
    assert removed.is_set()
    # the search that was on the removed node went on elsewhere from its committed rounds: the
    # retry's first round comes after every round the lost worker reported (a fresh start would
    # report round 0 again). Progress events are sampled (a few a second), the run store is the record.
    lost = [rnd for n, rnd, node in events if n == target[0] and node == victim.node_id]
    retried = [rnd for n, rnd, node in events if n == target[0] and node != victim.node_id]
    assert retried and min(retried) > max(lost), (target, lost, retried)
    check_record(out, plan())
    assert comparable(out) == comparable(local_result)
    assert candidates(out, plan()) == candidates(local_result, plan())
