"""Phase I of every run of a comparison: one after another here, in `jobs` worker processes, or
as Ray tasks on a cluster (`executor`, lossgen.compare.distributed).

Workers are spawned (not forked: torch's thread pools do not survive a fork) and each gets
cpu_count // jobs threads. A run's results do not depend on how many threads it had: the
population trainers split work by candidate, never inside one candidate's sums. Each worker
reports its rounds through a queue; the parent shows them.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable

import torch

from lossgen.compare.distributed import run_searches_ray
from lossgen.compare.plan import ComparePlan, run_dir, run_name
from lossgen.data import load
from lossgen.phases.executor import ExecutorSettings
from lossgen.phases.rundata import remember_data
from lossgen.phases.search import LossSearch, stop_reason
from lossgen.phases.settings import run_config
from lossgen.runs import RunStore

RoundCallback = Callable[[str, dict], None]  # (run name, {"round", "evaluated", "sampled", "best"})


def _open_store(plan: ComparePlan, out: Path, strategy: str, seed: int, dataset):
    config = plan.search_config(strategy, seed).resolved(dataset)
    store = RunStore.open_or_create(run_dir(out, strategy, seed), run_config(config, dataset, plan.dataset))
    return store, config, plan.search_limits()


def prepare_runs(plan: ComparePlan, out: Path, dataset) -> None:
    """Create (or check against its config) every run directory before any work starts, so a
    bad setting or a run made with other settings fails at once with its message."""
    for strategy, seed in plan.runs():
        store, _, _ = _open_store(plan, out, strategy, seed, dataset)
        try:
            remember_data(store, dataset, plan.dataset, plan.data_dir)  # for `lossgen evaluate OUT/runs/RUN`
        finally:
            store.close()


def finished_outcome(plan: ComparePlan, out: Path, strategy: str, seed: int, dataset) -> dict | None:
    """The outcome of a run that has already reached its limits (None: it has work left)."""
    store, _, limits = _open_store(plan, out, strategy, seed, dataset)
    try:
        reason = stop_reason(store, limits)
        if reason is None:
            return None
        last = store.rounds()[-1]
        return {"run": run_name(strategy, seed), "stopped": reason, "rounds": last.round + 1,
                "totals": last.totals, "elapsed": last.get("elapsed")}
    finally:
        store.close()


def search_one(plan: dict, out: str, strategy: str, seed: int, threads: int | None = None, events=None,
               dataset=None, origin: str | None = None) -> dict:
    """Run (or resume) one search to its limits. `plan` is `ComparePlan.to_dict()` (it crosses
    process boundaries); `events` is a callable or a queue that gets one payload per round;
    `origin`: where the parent read the data (`Dataset.origin`), read from there again."""
    if threads is not None:
        torch.set_num_threads(threads)
    plan = ComparePlan.from_dict(plan)
    if dataset is None:
        dataset = load(plan.dataset, plan.data_dir, origin=origin)
    name = run_name(strategy, seed)
    emit = events.put if hasattr(events, "put") else events
    store, config, limits = _open_store(plan, Path(out), strategy, seed, dataset)
    try:
        def progress(r) -> None:
            if emit is not None:
                emit((name, {"round": r.round, "evaluated": r.totals["evaluated"], "sampled": r.totals["sampled"],
                             "best": r.best_so_far}))

        result = LossSearch(dataset, store, config).run(limits, progress)
    finally:
        store.close()
    return {"run": name, "stopped": result.stopped, "rounds": result.rounds, "totals": result.totals,
            "elapsed": result.elapsed}


def run_searches(plan: ComparePlan, out: Path, dataset, jobs: int = 1, on_round: RoundCallback | None = None,
                 on_done: Callable[[dict], None] | None = None,
                 executor: ExecutorSettings | None = None) -> list[dict]:
    """Every run of the plan to its limits; returns their outcomes in plan order. With the ray
    `executor`, `jobs` is ignored: every search is a Ray task and the cluster's CPUs bound how many
    run at once."""
    every = plan.runs()
    outcomes: dict[str, dict] = {}

    def finished(outcome: dict) -> None:
        outcomes[outcome["run"]] = outcome
        if on_done is not None:
            on_done(outcome)

    tasks = []
    for strategy, seed in every:  # runs already at their limits need no search (nor a worker process)
        outcome = finished_outcome(plan, out, strategy, seed, dataset)
        if outcome is None:
            tasks.append((strategy, seed))
        else:
            finished(outcome)

    if executor is not None and executor.is_ray:
        if tasks:
            run_searches_ray(plan, out, dataset, tasks, executor, on_round, finished, search_one)
    elif jobs <= 1 or len(tasks) <= 1:  # no worker pool for a single run
        for strategy, seed in tasks:
            finished(search_one(plan.to_dict(), str(out), strategy, seed, events=lambda e: on_round and on_round(*e),
                                dataset=dataset))
    else:
        # a pool that notices a worker dying (killed, out of memory) instead of waiting for it forever
        context = multiprocessing.get_context("spawn")
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with context.Manager() as manager:
            events = manager.Queue()
            pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, max_tasks_per_child=1)
            try:
                pending = {pool.submit(search_one, plan.to_dict(), str(out), strategy, seed, threads, events,
                                       origin=dataset.origin)
                           for strategy, seed in tasks}
                while pending:
                    done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                    _drain(events, on_round)
                    for future in done:
                        finished(future.result())  # a worker's exception (or BrokenProcessPool) surfaces here
                _drain(events, on_round)
                pool.shutdown()
            except BaseException:
                # an error or Ctrl-C: stop every worker now; each run keeps its completed rounds
                _terminate(pool)
                raise
    return [outcomes[run_name(strategy, seed)] for strategy, seed in every]


def _terminate(pool: ProcessPoolExecutor) -> None:
    workers = list(getattr(pool, "_processes", {}).values())  # the executor has no public kill before 3.14
    for process in workers:
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _drain(events, on_round: RoundCallback | None) -> None:
    while True:
        try:
            name, payload = events.get_nowait()
        except queue_module.Empty:
            return
        if on_round is not None:
            on_round(name, payload)
