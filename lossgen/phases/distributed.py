"""A search round's population split across Ray actors (the actor-per-worker pattern).

`RayEvaluator` is an `Evaluator` whose `evaluate` trains the round's candidates on several Ray
actors instead of in this process. Each actor holds the dataset once (it arrives through the
object store when the actor starts, not with every round); a round sends each actor the current
recommender, a contiguous slice of the candidates and the state of the batch-order generator.
Every actor trains copies of the same member 0 over the same batch order, so candidate k computes
exactly what it computes in one big population (the candidates of a population are independent:
the trainers never mix them); the driver concatenates the utilities and training losses in
candidate order, takes the generator state after the epoch (the same from every actor), and
fetches only the copy it moves to (`ShardedPopulation.select`).

Actors compute, the driver commits: the run store is written by the search's own process only, one
transaction per round, so an actor (or its node) lost mid-round costs that round's evaluation,
which the driver re-runs from the same state (`ROUND_RETRIES`); the trajectory is unchanged.

Ray is imported inside the functions only: the package works without it.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch

from lossgen.data.dataset import Dataset
from lossgen.phases.evaluator import Evaluation, Evaluator
from lossgen.phases.executor import ExecutorError, ExecutorSettings, cluster_cpus, require_ray
from lossgen.training.losses import LossSpec
from lossgen.training.trainer import TrainConfig

ROUND_RETRIES = 3  # a round whose actor died is evaluated again (a restarted actor reloads the dataset)


def shards(n: int, parts: int) -> list[range]:
    """0..n-1 cut into at most `parts` contiguous, nearly equal slices of at least two candidates
    (unless n is 1): a batched matrix product over one candidate takes another kernel than over
    several (torch's bmm of batch 1 is an mm) and its last bits can differ (the MLP's layers), so
    a population of one is never made from a larger round."""
    parts = max(1, min(parts, n // 2))
    size, extra = divmod(n, parts)
    out, start = [], 0
    for p in range(parts):
        stop = start + size + (1 if p < extra else 0)
        out.append(range(start, stop))
        start = stop
    return out


class _EvalWorker:
    """One Ray actor: the dataset, loaded once (again after a restart), and the copies it trained
    last round. The dataset's reference comes wrapped in a list so that Ray hands it over
    unresolved: the actor fetches it from the object store only when it has no copy yet."""

    def __init__(self, task: str, train: TrainConfig):
        torch.set_num_threads(1)
        self.task, self.train = task, train
        self.evaluator, self.last = None, None

    def evaluate(self, data: list, model, specs: Sequence[LossSpec], order_state: torch.Tensor):
        if self.evaluator is None:
            import ray  # noqa: PLC0415 - on a Ray worker

            self.evaluator = Evaluator(ray.get(data[0]), self.task, self.train)
        order = torch.Generator()
        order.set_state(order_state)
        scored = self.evaluator.evaluate(model, specs, order)
        self.last = scored.population
        return scored.utilities, scored.train_losses, order.get_state()

    def select(self, index: int):
        return self.last.select([index])


class ShardedPopulation:
    """The trained copies of a round, held by the actors; `select([k])` fetches copy k."""

    def __init__(self, ray, actors, parts: list[range]):
        self._ray, self._actors, self._parts = ray, actors, parts

    def select(self, index: Sequence[int]):
        (k,) = list(index)
        for actor, part in zip(self._actors, self._parts):
            if k in part:
                return self._ray.get(actor.select.remote(k - part.start))
        raise IndexError(k)


class RayEvaluator(Evaluator):
    """`Evaluator` that splits each round's population across `workers` Ray actors (default: one
    per CPU of the cluster). Needs a connected Ray (`lossgen.phases.executor.ray_session`)."""

    def __init__(self, dataset: Dataset, task: str, train: TrainConfig, executor: ExecutorSettings):
        super().__init__(dataset, task, train)
        self.task, self.executor = task, executor
        self._actors: list | None = None
        self._data = None

    def _start(self):
        ray = require_ray()
        if not ray.is_initialized():
            raise ExecutorError("the ray executor needs a connected Ray (lossgen.phases.executor.ray_session)")
        if self._actors is None:
            # never more actors than CPUs: an actor holds its CPU while it lives, and one that
            # cannot be placed would keep the round waiting for ever
            workers = min(self.executor.workers or cluster_cpus(ray), cluster_cpus(ray))
            self._data = ray.put(search_only(self.dataset))  # kept: a restarted actor reads it again
            cls = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=2)(_EvalWorker)
            self._actors = [cls.remote(self.task, self.train) for _ in range(workers)]
        return ray

    def evaluate(self, model, specs: Sequence[LossSpec], order: torch.Generator) -> Evaluation:
        from ray.exceptions import RayActorError, RayTaskError  # noqa: PLC0415 - optional dependency

        ray = self._start()
        base = model.select([0])  # only member 0 travels
        parts = shards(len(specs), len(self._actors))
        state = order.get_state()
        for attempt in range(ROUND_RETRIES + 1):
            try:
                refs = [actor.evaluate.remote([self._data], base, list(specs[p.start:p.stop]), state)
                        for actor, p in zip(self._actors, parts)]
                results = ray.get(refs)
                break
            except RayTaskError as err:
                if isinstance(getattr(err, "cause", None), (ValueError, OSError)):
                    raise err.cause from None
                raise
            except RayActorError:
                if attempt == ROUND_RETRIES:
                    raise ExecutorError(f"a Ray actor of the search died {ROUND_RETRIES + 1} times in one round; "
                                        f"the completed rounds are saved, the same command resumes") from None
        order.set_state(results[0][2])  # every actor drew the same batch order
        utilities = torch.cat([r[0] for r in results])
        losses = torch.cat([r[1] for r in results])
        return Evaluation(ShardedPopulation(ray, self._actors[:len(parts)], parts), utilities, losses)

    def close(self) -> None:
        if self._actors:
            ray = require_ray()
            for actor in self._actors:
                ray.kill(actor)
        self._actors, self._data = None, None


def _no_test():
    raise RuntimeError("Phase I never reads the test split")


def search_only(dataset: Dataset) -> Dataset:
    """The dataset as Phase I workers get it: train and validation, without its test split
    (Phase I never reads it; it stays with the driver)."""
    return dataclasses.replace(dataset, _read_test=_no_test, test_reads=0)


# ---------------------------------------------------------------- Phase III sharded over actors

def _train_shard(data: list, runs, config, train):
    """One Ray task of a sharded Phase III: its share of the (loss, epsilon, seed) runs trained to
    convergence; returns the runs (histories, best epochs) and their best-epoch parameters. A task,
    not an actor: it holds no CPU once done (more shards than CPUs just queue), and Ray retries it
    when its worker or node dies."""
    import ray  # noqa: PLC0415 - on a Ray worker

    torch.set_num_threads(1)
    best = train(ray.get(data[0]), runs, config)
    return runs, best


class _ShardedBest:
    """The best-epoch parameters of every run, one population per shard; `select(ks).predict(...)`
    gives the rows of runs `ks` in that order, as one population's `select(...).predict(...)` would."""

    def __init__(self, populations: list, parts: list[range], index: list[int] | None = None):
        self._populations, self._parts, self._index = populations, parts, index

    def select(self, index):
        return _ShardedBest(self._populations, self._parts, list(index))

    def predict(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        where: dict[int, list[tuple[int, int]]] = {}
        for j, k in enumerate(self._index):
            shard = next(s for s, p in enumerate(self._parts) if k in p)
            where.setdefault(shard, []).append((j, k - self._parts[shard].start))
        out = None
        for shard, rows in where.items():
            scores = self._populations[shard].select([k for _, k in rows]).predict(users, items)
            if out is None:
                out = torch.empty((len(self._index), scores.shape[1]), dtype=scores.dtype)
            out[[j for j, _ in rows]] = scores
        return out


def group_shards(groups: list[str], workers: int) -> list[range]:
    """Contiguous slices of the runs (whose loss names are `groups`, grouped) along loss boundaries,
    at most `workers`, as even in runs as the boundaries allow."""
    starts = [k for k in range(len(groups)) if k == 0 or groups[k] != groups[k - 1]]
    parts = max(1, min(workers, len(starts)))
    ends = [*starts[1:], len(groups)]
    cuts = [0]
    for start, end in zip(starts[1:], ends[1:]):  # cut before a group when that is nearer the slice's share
        share = (len(groups) - cuts[-1]) / (parts - len(cuts) + 1)
        if len(cuts) < parts and (end - cuts[-1]) - share > share - (start - cuts[-1]):
            cuts.append(start)
    cuts.append(len(groups))
    return [range(a, b) for a, b in zip(cuts, cuts[1:])]


def train_sharded(dataset: Dataset, runs: list, config, executor: ExecutorSettings, train, progress=None):
    """`train` (Phase III's `train_to_convergence`, passed in: this module sits beside it) with the
    runs split by loss over Ray tasks; fills in `runs` (their histories, best epochs) and returns
    the best-epoch parameters as a `select(...).predict(...)`."""
    from ray.exceptions import RayError, RayTaskError  # noqa: PLC0415 - optional dependency

    ray = require_ray()
    if not ray.is_initialized():
        raise ExecutorError("the ray executor needs a connected Ray (lossgen.phases.executor.ray_session)")
    workers = executor.workers or cluster_cpus(ray)
    parts = group_shards([r.spec.name for r in runs], workers)
    data = ray.put(search_only(dataset))
    task = ray.remote(num_cpus=1, max_retries=3)(_train_shard)
    try:
        trained = ray.get([task.remote([data], runs[p.start:p.stop], config, train) for p in parts])
    except RayTaskError as err:
        if isinstance(getattr(err, "cause", None), (ValueError, OSError)):
            raise err.cause from None
        raise
    except RayError as err:  # retried and lost again: Phase III commits nothing until it has finished
        raise ExecutorError(f"Phase III failed on the Ray cluster ({' '.join(str(err).split())[:200]}); nothing of "
                            f"Phase III was saved: run the same command again") from None
    for p, (shard, _) in zip(parts, trained):
        runs[p.start:p.stop] = shard
    if progress is not None:
        progress(max(r.epochs for r in runs), 0)
    return _ShardedBest([best for _, best in trained], parts)
