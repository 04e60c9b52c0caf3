"""`run_compare`: the whole comparison, resumable as a whole.

Steps: check the settings and record the plan (plan.json) -> Phase I of every run (skipped for runs already at their
limits) -> Phase II on every run -> the shared Phase III (reused when unchanged; with the race
selection, every run's passing candidates race first, lossgen.compare.phase3) -> measures,
statistics, report. Every step's results live on disk before the next starts, so the same
command after a kill or Ctrl-C picks up where it stopped: completed rounds of a run are kept,
finished runs are not searched again, and a finished Phase III is not trained again.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lossgen.phases.effectiveness import EffectivenessConfig
from lossgen.phases.executor import ExecutorSettings, ray_session
from lossgen.phases.rundata import data_record, load_remembered
from lossgen.phases.runs import check_run, phase2_current
from lossgen.runs import RunStore
from lossgen.training.trainer import TrainConfig
from lossgen.util.atomic import write_text_atomic
from lossgen.compare.measures import run_measures
from lossgen.compare.phase3 import run_survivors, shared_phase3
from lossgen.ir.formula import to_infix
from lossgen.ir.printers import with_epsilon
from lossgen.ir.programs import Program
from lossgen.compare.plan import PLAN_FILE, ComparePlan, run_dir, run_name
from lossgen.compare.report import write_report
from lossgen.compare.searches import prepare_runs, run_searches
from lossgen.compare.summary import summarize

@dataclass
class CompareHooks:
    """Progress callbacks (all optional) for a user interface."""

    on_round: Callable[[str, dict], None] | None = None  # (run name, round payload)
    on_run_done: Callable[[dict], None] | None = None
    on_phase: Callable[[str], None] | None = None  # "search", "check", "phase3", "report"
    on_epoch: Callable[[int, int], None] | None = None  # Phase III (epoch, runs still training)
    on_race: Callable[[int, int], None] | None = None  # Phase III's race (epoch, racers still training)




def check_same_comparison(out: Path, plan: ComparePlan, data_key: str) -> None:
    """A comparison directory holds one comparison: its search settings and data must not change
    (the safety stops and where the data lives may)."""
    path = Path(out) / PLAN_FILE
    if not path.is_file():
        return
    try:
        saved = json.loads(path.read_text())
        old, old_key = ComparePlan.from_dict(saved["plan"]), saved["data_key"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is unreadable ({' '.join(str(err).split())}): not a lossgen comparison directory, "
                         f"or one written by another lossgen; use another --out") from None
    # compared in their stored (JSON) form: plan.json holds lists where a fresh plan has tuples
    before, after = (json.loads(json.dumps({"dataset": p.dataset, **p.search})) for p in (old, plan))
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        detail = ", ".join(f"{k} ({before.get(k)!r} -> {after.get(k)!r})" for k in changed)
        raise ValueError(f"{out} holds a comparison with other settings: {detail}; use another --out")
    if old_key != data_key:
        raise ValueError(f"{out} holds a comparison on other data: the split of {plan.dataset!r} has "
                         f"changed since; use another --out")


def _saved_data(out: Path) -> dict | None:
    """Where an earlier invocation read the data (plan.json's "data"; None when unknown)."""
    try:
        saved = json.loads((Path(out) / PLAN_FILE).read_text()).get("data")
    except (OSError, ValueError, AttributeError):
        return None  # no plan yet, or one check_same_comparison reports
    return saved if isinstance(saved, dict) else None


def run_compare(plan: ComparePlan, out: Path, jobs: int = 1, hooks: CompareHooks | None = None,
                command: str | None = None, executor: ExecutorSettings | None = None) -> dict:
    """Run (or resume) the comparison; returns {"summary", "measures", "phase3", "files"}.
    `executor`: where the searches run (local processes, or Ray tasks); not part of the plan, so
    a comparison started one way resumes the other, with the same results."""
    hooks = hooks or CompareHooks()
    executor = executor or ExecutorSettings()
    executor.check()
    plan.check()
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    if out.exists() and not (out / PLAN_FILE).exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty and is not a lossgen comparison directory (no {PLAN_FILE})")
    # without --data-dir, a comparison reads its data where it did before (plan.json's "data")
    dataset = load_remembered(plan.dataset, plan.data_dir, _saved_data(out), f"the comparison in {out}")
    check_same_comparison(out, plan, dataset.key)
    out.mkdir(parents=True, exist_ok=True)
    prepare_runs(plan, out, dataset)  # every run's settings check out before anything is recorded
    write_text_atomic(out / PLAN_FILE, json.dumps({"plan": plan.to_dict(), "data_key": dataset.key, "command": command,
                                                   "data": data_record(dataset, plan.dataset, plan.data_dir)},
                                                  indent=2) + "\n")

    # one Ray session (when asked for) for the searches and Phase III
    with ray_session(executor) if executor.is_ray else contextlib.nullcontext():
        return _run_phases(plan, out, dataset, jobs, hooks, command, executor)


def _run_phases(plan: ComparePlan, out: Path, dataset, jobs: int, hooks: CompareHooks, command: str | None,
                executor: ExecutorSettings) -> dict:
    """Phase I of every run, Phase II, the shared Phase III and the report (the plan is recorded)."""
    _phase(hooks, "search")
    run_searches(plan, out, dataset, jobs, hooks.on_round, hooks.on_run_done, executor)

    _phase(hooks, "check")
    measures, chosen, run_config = {}, {}, None
    for strategy, seed in plan.runs():
        store = RunStore.open_existing(run_dir(out, strategy, seed))
        try:
            if not phase2_current(store, plan.threshold):
                check_run(store, plan.threshold)
            name = run_name(strategy, seed)
            # with the race, every distinct passing candidate of the run races (top None: all of them)
            top = plan.top if plan.selection == "top" else None
            measures[name] = run_measures(store, plan.budget, top, plan.threshold)
            chosen[name] = measures[name]["chosen"]
            run_config = run_config or store.config
        finally:
            store.close()

    _phase(hooks, "phase3")
    config = EffectivenessConfig(seeds=tuple(range(plan.phase3_seeds)), max_epochs=plan.max_epochs,
                                 task=run_config["task"], model=run_config["model"], dim=run_config["dim"],
                                 train=TrainConfig.from_dict(run_config.get("train", {}))
                                 ).with_early_stop(plan.early_stop)
    # with ray: Phase III sharded by loss over Ray actors (same table)
    phase3 = shared_phase3(out, dataset, chosen, plan.baselines, config, run_config.get("clamp", "paper"),
                           hooks.on_epoch, executor, plan.selection, plan.survivors, plan.rungs, hooks.on_race)
    _narrow_to_survivors(measures, phase3)

    _phase(hooks, "report")
    summary = summarize(plan, measures, phase3)
    files = write_report(out, plan, measures, summary, phase3, command)
    return {"summary": summary, "measures": measures, "phase3": phase3, "files": files}


def _narrow_to_survivors(measures: dict[str, dict], phase3: dict) -> None:
    """With the race, a run's Phase III candidates are its race survivors (with the epsilon they
    trained with): `chosen` keeps those, `raced` counts what raced. With `top`, nothing changes."""
    groups = run_survivors(phase3)
    if groups is None:
        return
    eps = {e["fingerprint"]: e.get("eps") for e in phase3["results"] if e["fingerprint"]}
    for name, m in measures.items():
        kept = set(groups.get(name, []))
        m["raced"] = len(m["chosen"])
        # the formula of the function Phase III trained (the record's carries Phase I's epsilon)
        m["chosen"] = [{**c, "eps": eps.get(c["fingerprint"]),
                        "formula": with_epsilon(to_infix(Program(c["program"])), eps.get(c["fingerprint"]))}
                       for c in m["chosen"] if c["fingerprint"] in kept]


def _phase(hooks: CompareHooks, name: str) -> None:
    if hooks.on_phase is not None:
        hooks.on_phase(name)
