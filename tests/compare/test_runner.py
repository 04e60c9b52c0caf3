"""lossgen.compare end to end on small synthetic data: every output, resuming after a kill,
reuse of finished work, and --jobs not changing results."""

import json
from pathlib import Path

import pytest

from compare_helpers import SEARCH, private_cache, small_plan  # noqa: F401  (autouse fixture)
from kill_resume import committed_rounds, run_script
from lossgen.compare.plan import ComparePlan, run_dir
from lossgen.compare.report import CSV_FIELDS, PLOTS
from lossgen.compare.runner import CompareHooks, run_compare
from lossgen.runs import RunStore


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished small comparison, shared by the read-only tests below."""
    out = tmp_path_factory.mktemp("compare") / "out"
    phases = []
    result = run_compare(small_plan(), out, hooks=CompareHooks(on_phase=phases.append), command="lossgen compare ...")
    return out, result, phases


def comparable(out: Path) -> dict:
    """What must not depend on interruptions or parallelism: candidates, counts, Phase III."""
    data = json.loads((out / "compare.json").read_text())
    runs = {name: {k: v for k, v in m.items() if k not in ("elapsed", "by_time")} for name, m in data["runs"].items()}
    return {"runs": runs, "phase3": data["phase3"]}


def run_candidates(out: Path, plan: ComparePlan) -> dict:
    found = {}
    for strategy, seed in plan.runs():
        store = RunStore.open_existing(run_dir(out, strategy, seed))
        found[(strategy, seed)] = store.candidates()
        store.close()
    return found


def test_a_small_comparison_writes_every_output(finished):
    out, result, phases = finished
    assert phases == ["search", "check", "phase3", "report"]
    for name in ("compare.md", "compare.csv", "compare.json", *PLOTS, "phase3/phase3.json", "phase3/effectiveness.md"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for strategy, seed in small_plan().runs():
        assert (run_dir(out, strategy, seed) / "run.db").is_file()
    lines = (out / "compare.csv").read_text().splitlines()
    assert lines[0] == ",".join(CSV_FIELDS) and len(lines) == 1 + 4
    md = (out / "compare.md").read_text()
    for heading in ("Paired tests between strategies", "Best loss against the best baseline", "Proxy fidelity",
                    "## Runs", "## Phase III", "lossgen compare ..."):
        assert heading in md
    assert "| loss | formula | named loss |" in md
    candidates = [e for e in result["phase3"]["results"] if e["kind"] == "candidate"]
    assert candidates and all("named" in e for e in candidates)
    assert all(e["named"] is None for e in result["phase3"]["results"] if e["kind"] == "baseline")
    summary = result["summary"]
    assert set(summary["per_strategy"]) == {"rl", "random"}
    assert summary["reference"] in ("BCE", "MSE")
    assert len(summary["curves"]["evaluations"]) == 12


def test_every_run_spends_the_same_budget_and_phase3_covers_every_choice(finished):
    out, result, _ = finished
    phase3_fps = {e["fingerprint"] for e in result["phase3"]["results"] if e["kind"] == "candidate"}
    baselines = {e["name"] for e in result["phase3"]["results"] if e["kind"] == "baseline"}
    assert baselines == {"BCE", "MSE"}
    for name, m in result["measures"].items():
        assert m["reached_budget"] and m["evaluated"] == 12, name
        assert all(ev <= 12 for ev, _ in m["by_evaluation"])
        # the plan's race: every passing candidate raced, the survivors reached Phase III
        assert 1 <= len(m["chosen"]) == min(small_plan().survivors, m["raced"])
        assert {c["fingerprint"] for c in m["chosen"]} <= phase3_fps
        # the best loss is chosen on Phase III validation, among the run's own candidates
        best = m["best_loss"]
        assert best["phase3"]["validation"] == max(c["phase3"]["validation"] for c in m["chosen"])
        assert m["best_test"] == best["phase3"]["test"]


def test_runs_of_one_seed_differ_only_in_their_strategy(finished):
    """Same seed: same recommender initialisation, batch order, split and settings."""
    out = finished[0]
    configs = {(st, seed): json.loads((run_dir(out, st, seed) / "config.json").read_text())
               for st, seed in small_plan().runs()}
    for seed in (0, 1):
        rl, random = configs[("rl", seed)], configs[("random", seed)]
        assert sorted(k for k in rl if rl[k] != random[k]) == ["strategy"]
        assert rl["seed"] == seed and rl["data_key"] == configs[("rl", 0)]["data_key"]


def test_running_again_reuses_everything(finished):
    out, result, _ = finished
    before = run_candidates(out, small_plan())
    phase3_mtime = (out / "phase3" / "phase3.json").stat().st_mtime_ns
    epochs = []
    again = run_compare(small_plan(), out, hooks=CompareHooks(on_epoch=lambda e, a: epochs.append(e)))
    assert epochs == []  # Phase III was not trained again
    assert (out / "phase3" / "phase3.json").stat().st_mtime_ns == phase3_mtime
    assert run_candidates(out, small_plan()) == before
    assert again["summary"]["per_strategy"] == result["summary"]["per_strategy"]


def test_a_larger_budget_extends_the_runs_and_retrains_phase3(finished, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(finished[0], out)
    epochs = []
    bigger = run_compare(small_plan(budget=20), out, hooks=CompareHooks(on_epoch=lambda e, a: epochs.append(e)))
    assert all(m["evaluated"] == 20 for m in bigger["measures"].values())
    assert epochs  # the candidate set may change, so Phase III's key changed and it trained


KILL_SCRIPT = """
import json, sys
from pathlib import Path
from lossgen.compare.plan import ComparePlan
from lossgen.compare.runner import run_compare
run_compare(ComparePlan.from_dict(json.loads(sys.argv[2])), Path(sys.argv[1]).parents[1])
"""


def test_a_killed_comparison_resumes_to_the_same_result(tmp_path, finished):
    plan = json.dumps(small_plan().to_dict())
    clean, killed = finished[0], tmp_path / "killed"
    # killed while the second run of the plan (random, seed 0) is searching
    run_script(KILL_SCRIPT, run_dir(killed, "random", 0), plan, kill_after=3)
    assert 3 <= committed_rounds(run_dir(killed, "random", 0))
    assert not (killed / "phase3" / "phase3.json").exists()
    run_script(KILL_SCRIPT, run_dir(killed, "rl", 0), plan)
    assert comparable(killed) == comparable(clean)
    assert run_candidates(killed, small_plan()) == run_candidates(clean, small_plan())


def test_parallel_jobs_give_the_same_runs(tmp_path, finished):
    plan = small_plan(strategies=("random",))
    run_compare(plan, tmp_path / "parallel", jobs=2)
    assert run_candidates(tmp_path / "parallel", plan) == run_candidates(finished[0], plan)


def test_other_search_settings_in_the_same_directory_are_refused(finished):
    out = finished[0]
    with pytest.raises(ValueError, match=r"other settings: model \('mf' -> 'mlp'\)"):
        run_compare(small_plan(search={**SEARCH, "model": "mlp"}), out)


def test_a_directory_that_is_not_a_comparison_is_refused(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a lossgen comparison directory"):
        run_compare(small_plan(), tmp_path / "stuff")
    assert sorted(p.name for p in (tmp_path / "stuff").iterdir()) == ["notes.txt"]


def test_a_refused_invocation_changes_nothing(finished, monkeypatch):
    out = finished[0]
    plan_file = out / "plan.json"
    saved = json.loads(plan_file.read_text())
    before = {name: (out / name).read_bytes() for name in ("compare.json", "compare.md")}
    plan_file.write_text(json.dumps({**saved, "data_key": "another split"}))
    try:
        with pytest.raises(ValueError, match="comparison on other data"):
            run_compare(small_plan(), out)
        assert {name: (out / name).read_bytes() for name in before} == before
    finally:
        plan_file.write_text(json.dumps(saved))


def test_an_unknown_baseline_fails_before_any_search(tmp_path):
    with pytest.raises(ValueError, match="Fcal"):
        run_compare(small_plan(baselines="BCE,Fcal"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


WORKER_KILL_SCRIPT = """
import gc, json, os, signal, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from lossgen.compare.plan import ComparePlan
from lossgen.compare.runner import CompareHooks, run_compare

killed = []

def on_round(name, r):  # a worker dies in the middle of its search (as killed by the OOM killer)
    if killed:
        return
    for pool in (o for o in gc.get_objects() if isinstance(o, ProcessPoolExecutor)):
        for process in list(pool._processes.values())[:1]:
            os.kill(process.pid, signal.SIGKILL)
            killed.append(process.pid)

try:
    run_compare(ComparePlan.from_dict(json.loads(sys.argv[2])), Path(sys.argv[1]), jobs=2,
                hooks=CompareHooks(on_round=on_round))
except Exception as err:
    print("stopped:", type(err).__name__)
    sys.exit(3)
"""


def test_a_worker_that_dies_stops_the_comparison_instead_of_hanging(tmp_path):
    import subprocess
    import sys

    plan = json.dumps(small_plan(strategies=("random",), budget=40).to_dict())
    proc = subprocess.run([sys.executable, "-c", WORKER_KILL_SCRIPT, str(tmp_path / "out"), plan],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "stopped: BrokenProcessPool" in proc.stdout
