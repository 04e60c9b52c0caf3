"""Phase I of a comparison on a Ray cluster: each (strategy, seed) search is one Ray task.

Ray schedules the tasks on the cluster's CPUs (one CPU each) and retries a task whose worker or
node dies (`max_retries`). A search task is the one writer of its run directory, exactly as a local
search process is: it resumes the run from its last committed round (run.db + checkpoints), so a
retried task redoes at most the round in progress, and a round is committed once, by one
transaction. That is what makes "no candidate lost or evaluated twice in the final record" hold.

What the tasks share:
- the dataset goes through Ray's object store (`ray.put` once, without its test split, which
  Phase I never reads), so worker nodes need no copy of the data;
- the run directories are written where the driver's `--out` points, so that path must be on a
  file system every node sees at the same path (NFS, a cluster file system, or one machine). A task
  that does not find the comparison's plan.json there refuses with one line instead of writing a
  run nobody will read (docs/distributed.md).

Ray is imported inside the functions only: the package works without it.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Callable

from lossgen.compare.plan import PLAN_FILE, ComparePlan
from lossgen.phases.distributed import search_only
from lossgen.phases.executor import ExecutorError, ExecutorSettings, ray_session
from lossgen.runs import RunError

RETRIES = 3  # Ray retries of a search task whose worker or node died
EVENT_INTERVAL = 0.25  # seconds between two progress events of one search task
LOCK_WAIT = 60.0  # seconds a retried task waits for the lock of the run a dead worker still held


def _search_task(search, plan: dict, out: str, strategy: str, seed: int, dataset, events) -> dict:
    """The body of one search task (runs on a Ray worker); `search` is `searches.search_one`
    (passed in: that module calls this one)."""
    import ray  # noqa: PLC0415 - only on a Ray worker
    from ray.exceptions import RayError  # noqa: PLC0415

    node = ray.get_runtime_context().get_node_id()
    if not (Path(out) / PLAN_FILE).is_file():
        raise ExecutorError(f"the comparison directory {out} is not visible on node {socket.gethostname()}: run "
                            f"directories must be on a file system that every Ray node mounts at the same path "
                            f"(see docs/distributed.md)")

    last, unsent = [-float("inf")], []

    def emit(event) -> None:
        # at most a few events a second: a duplicate-only round takes milliseconds (a run can have
        # thousands), and the driver shows progress, no more. Fire and forget: a task blocked in a
        # get lends its CPU to Ray, which would start another task in its place.
        name, payload = event
        item = (name, {**payload, "node": node, "pid": os.getpid()})
        now = time.monotonic()
        if now - last[0] >= EVENT_INTERVAL:
            last[0] = now
            unsent.clear()
            events.actor.put_nowait.remote(item)
        else:
            unsent[:] = [item]

    def flush() -> None:
        """The last round's event, and every earlier one delivered before the task ends."""
        if unsent:
            events.actor.put_nowait.remote(unsent.pop())
        try:
            ray.get(events.actor.qsize.remote())
        except RayError:  # progress only: a lost queue costs the display, not the search
            pass

    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            outcome = search(plan, out, strategy, seed, threads=1, events=emit, dataset=dataset)
            flush()
            return outcome
        except RunError as err:
            # a retry can start before the kernel has dropped the lock of the worker that died
            if "is in use by" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def run_searches_ray(plan: ComparePlan, out: Path, dataset, tasks: list[tuple[str, int]], executor: ExecutorSettings,
                     on_round: Callable[[str, dict], None] | None, finished: Callable[[dict], None],
                     search: Callable[..., dict]) -> None:
    """Run `tasks` ((strategy, seed) pairs with work left) as Ray tasks; `finished` gets each outcome
    as it comes (in completion order), `on_round` committed rounds (payload + "node", "pid"), at
    most one every EVENT_INTERVAL seconds per search (progress, not a record: the run store is)."""
    with ray_session(executor) as ray:
        from ray.exceptions import RayError  # noqa: PLC0415 - optional dependency
        from ray.util.queue import Empty, Queue  # noqa: PLC0415
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: PLC0415

        # the progress queue lives on the driver's node: it must not go down with a worker node
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        events = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
        data = ray.put(search_only(dataset))
        remote = ray.remote(num_cpus=1, max_retries=RETRIES)(_search_task)
        pending = {remote.remote(search, plan.to_dict(), str(out), strategy, seed, data, events): (strategy, seed)
                   for strategy, seed in tasks}

        def drain() -> None:
            while True:
                try:
                    name, payload = events.get_nowait()
                except (Empty, RayError):  # a lost queue costs the progress display only
                    return
                if on_round is not None:
                    on_round(name, payload)

        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=0.25)
                drain()
                for ref in done:
                    strategy, seed = pending.pop(ref)
                    finished(_result(ray, ref, strategy, seed))
            drain()
        except BaseException:
            for ref in pending:  # an error or Ctrl-C: stop the other searches; each keeps its completed rounds
                ray.cancel(ref, force=True)
            raise
        finally:
            ray.kill(events.actor)


def _result(ray, ref, strategy: str, seed: int) -> dict:
    """A task's outcome; its error as the library's own exception (one line), not Ray's wrapper."""
    from ray.exceptions import RayError, RayTaskError  # noqa: PLC0415

    try:
        return ray.get(ref)
    except RayTaskError as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, (ValueError, OSError)):
            raise cause from None
        raise
    except RayError as err:  # a worker or node died more often than Ray retries
        raise ExecutorError(f"the search {strategy}-s{seed} failed on the Ray cluster after {RETRIES} retries: "
                            f"{' '.join(str(err).split())[:300]}; the same command resumes it") from None
