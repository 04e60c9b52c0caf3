"""Phase III's race (the `lossgen` preset's selection; DESIGN.md "Presets"): successive halving
on validation decides which candidates, with which smoothing epsilon, train to convergence.

Racers. Every candidate of every group races; one whose program uses a smoothing epsilon (its
live steps include Log, Reciprocal or Sqrt, the only ops the kernels smooth) races once per
value of the epsilon grid (`EffectivenessConfig.eps_grid`, 1 ... 1e-6), as separate racers; any
other loss races once, with the epsilon it has (a program: none). A name may appear in several
groups (a loss found by several search runs): it races once and counts in each of its groups.

The race. All racers form ONE population, started from the same initialisation (seed 0 of the
Phase III seeds, `config.seeds[0]`) and trained epoch by epoch over the same batch order. After
every epoch each racer's validation metric is read; a racer whose training loss or predictions
stop being finite has diverged and leaves every group at once. At each rung but the last
(cumulative epochs, e.g. 5 and 15 of 5, 15, 45) every group keeps, ranked by best-so-far
validation, the best third of its racers (rounded up), and also the best racer of each of its
`survivors` best candidates, so that a group never falls below `survivors` candidates while it
has them. A racer trains on while some group keeps it. At the last rung every group keeps its
`survivors` best candidates, each by its best racer: at most one epsilon per candidate.

A group that cannot lose anything more (at most `survivors` racers left, all of different
candidates) is decided: its racers stop training unless another group still races them. A
group of at most `survivors` candidates without epsilon is decided before the first epoch.

Epsilon of a survivor. With one group: the epsilon of the racer that won its place. With
several, one candidate could win its places with different epsilons (an epsilon a group dropped
early can recover in a group that kept it), so every surviving candidate takes ONE epsilon: that
of its best racer among those still racing at the end, compared at the epochs all of them ran.

The test split is never read here. Ties are broken by racer order (group order, then the order
of the candidates in the group, then the grid order), so a race is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch

from lossgen.data.dataset import Dataset
from lossgen.models import create_population
from lossgen.phases.effectiveness import EffectivenessConfig
from lossgen.training.losses import USES_EPSILON, LossKind, LossSpec
from lossgen.training.metrics import metric_for_task
from lossgen.training.trainer import train_epoch


def races_epsilon(spec: LossSpec) -> bool:
    """Whether `spec` races once per epsilon of the grid (MaxR, SumR, LogMin, and programs that
    use an epsilon op: `Program.uses_epsilon`)."""
    if spec.kind == LossKind.PROGRAM:
        return spec.program.uses_epsilon
    return spec.kind in USES_EPSILON


@dataclass
class Racer:
    """One (loss, epsilon) of the race."""

    spec: LossSpec  # with the epsilon it races with (None: a program without epsilon ops)
    groups: tuple[str, ...]  # the groups it counts in
    history: list[float] = field(default_factory=list)  # validation utility per epoch (higher is better)
    diverged: bool = False
    left: dict[str, int] = field(default_factory=dict)  # group -> epochs trained when the group dropped it
    won: list[str] = field(default_factory=list)  # the groups where it won a place

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def epochs(self) -> int:
        return len(self.history)

    def best(self, epochs: int | None = None) -> float:
        """Best validation utility over its first `epochs` epochs (all: None); -inf before any."""
        h = self.history if epochs is None else self.history[:epochs]
        return max(h, default=-math.inf)


@dataclass
class RaceResult:
    survivors: dict[str, list[LossSpec]]  # group -> its survivors, best first, with their epsilon
    racers: list[Racer]
    rungs: tuple[int, ...]
    survivors_per_group: int
    task: str
    epochs_trained: int  # racer-epochs

    def eps(self) -> dict[str, float | None]:
        """Survivor name -> its chosen epsilon (None: a program without epsilon ops)."""
        return {s.name: s.eps for specs in self.survivors.values() for s in specs}

    def table(self) -> list[dict]:
        """Every racer, for reports: name, eps, epochs trained, best validation (as reported:
        AUC, or RMSE; None before any finite epoch), diverged, and per group whether it
        survived or after how many epochs the group dropped it."""
        higher = metric_for_task(self.task).higher_is_better
        rows = []
        for r in self.racers:
            best = r.best()
            rows.append({"name": r.name, "eps": r.spec.eps if r.spec.uses_epsilon else None, "epochs": r.epochs,
                         "validation": (best if higher else -best) if math.isfinite(best) else None,
                         "diverged": r.diverged,
                         "groups": {g: "survived" if g in r.won else r.left.get(g) for g in r.groups}})
        return rows


def _racers(groups: Mapping[str, Sequence[LossSpec]], eps_grid: Sequence[float]) -> list[Racer]:
    seen: dict[str, LossSpec] = {}
    member: dict[str, list[str]] = {}
    for group, specs in groups.items():
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"group {group!r} lists a loss twice: {', '.join(names)}")
        for spec in specs:
            known = seen.setdefault(spec.name, spec)
            if (known.kind, known.program, known.clamp) != (spec.kind, spec.program, spec.clamp):
                raise ValueError(f"two different losses are named {spec.name!r}")
            member.setdefault(spec.name, []).append(group)
    if not eps_grid and any(races_epsilon(s) for s in seen.values()):
        raise ValueError("the race needs an epsilon grid for losses that use an epsilon")
    racers = []
    for name, spec in seen.items():
        variants = [spec.with_eps(float(e)) for e in eps_grid] if races_epsilon(spec) else [spec]
        racers.extend(Racer(v, tuple(member[name])) for v in variants)
    return racers


class _Race:
    def __init__(self, groups: Mapping[str, Sequence[LossSpec]], racers: list[Racer], survivors: int):
        self.survivors = survivors
        self.racers = racers
        # group -> indices of its racers still in it, in racer order
        self.alive = {g: [k for k, r in enumerate(racers) if g in r.groups] for g in groups}

    def _ranked(self, group: str) -> list[int]:
        return sorted(self.alive[group], key=lambda k: (-self.racers[k].best(), k))

    def _best_per_candidate(self, group: str) -> list[int]:
        """The best racer of each candidate of the group, best candidate first."""
        out, names = [], set()
        for k in self._ranked(group):
            if self.racers[k].name not in names:
                names.add(self.racers[k].name)
                out.append(k)
        return out

    def decided(self, group: str) -> bool:
        ks = self.alive[group]
        return len(ks) <= self.survivors and len({self.racers[k].name for k in ks}) == len(ks)

    def cut(self, group: str, final: bool) -> None:
        """Keep the best third (and the best racer of the best `survivors` candidates); at the
        last rung, the best racer of the best `survivors` candidates only."""
        leaders = self._best_per_candidate(group)[:self.survivors]
        keep = set(leaders)
        if not final:
            ranked = self._ranked(group)
            keep.update(ranked[:math.ceil(len(ranked) / 3)])
        for k in self.alive[group]:
            if k not in keep:
                self.racers[k].left[group] = self.racers[k].epochs
        self.alive[group] = [k for k in self.alive[group] if k in keep]

    def drop(self, k: int) -> None:
        """A diverged racer leaves every group."""
        self.racers[k].diverged = True
        for group, ks in self.alive.items():
            if k in ks:
                self.racers[k].left[group] = self.racers[k].epochs
                ks.remove(k)

    def training(self) -> list[int]:
        """The racers some undecided group still races, in racer order."""
        racing = {k for g, ks in self.alive.items() if not self.decided(g) for k in ks}
        return sorted(racing)


# Memory for one race population: at most this many bytes of recommender parameters (a population
# is copied when racers leave it, so about twice this is in use). Above it, a rung trains its
# racers in several populations, each from the initialisation (racers are independent: one
# seed, one batch order), which costs the epochs of the earlier rungs again but not the memory.
RACE_MEMORY_BYTES = 2 * 1024**3


def population_limit(dataset: Dataset, config: EffectivenessConfig, budget: int = RACE_MEMORY_BYTES) -> int:
    """Racers per population: the MF and MLP parameters are dominated by the user and item
    embeddings and biases, (users + items) x (dim + 1) floats per racer (the MLP's own layers add
    a few percent, covered by a margin)."""
    per_racer = (dataset.n_users + dataset.n_items) * (config.dim + 1) * 4 * 1.25
    return max(1, int(budget // per_racer))


@dataclass
class _Segment:
    """Racers `ks` trained together as one population, `at` epochs from their initialisation."""

    ks: list[int]
    model: object
    order: torch.Generator
    at: int = 0

    @staticmethod
    def start(dataset: Dataset, config: EffectivenessConfig, seed: int, ks: list[int]) -> "_Segment":
        model = create_population(config.model, dataset.n_users, dataset.n_items, [seed] * len(ks), config.dim,
                                  config.init_std)
        return _Segment(list(ks), model, torch.Generator().manual_seed(seed))  # the one batch order of the race

    def keep(self, ks: list[int]) -> None:
        if ks != self.ks:
            self.model = self.model.select([slot for slot, k in enumerate(self.ks) if k in set(ks)])
            self.ks = list(ks)

    def epoch(self, racers: list[Racer], state: "_Race", dataset: Dataset, config: EffectivenessConfig,
              metric) -> int:
        """Train one epoch; record it for the racers that had not reached it yet (an epoch trained
        again from the initialisation gives what it gave before); drop the diverged ones.
        Returns the racer-epochs trained."""
        train, val = dataset.train, dataset.validation
        losses = train_epoch(self.model, [racers[k].spec for k in self.ks], train.users, train.items, train.labels,
                             config.train, self.order)
        scores = self.model.predict(val.users, val.items)
        finite = torch.isfinite(scores).all(1) & torch.isfinite(losses)
        utility = torch.full((len(self.ks),), math.nan, dtype=torch.float64)
        if bool(finite.any()):
            utility[finite] = metric.utility(scores[finite], val.labels).double()
        trained = len(self.ks)
        self.at += 1
        for slot, k in enumerate(self.ks):
            if racers[k].epochs >= self.at:
                continue
            u = float(utility[slot])
            racers[k].history.append(u if math.isfinite(u) else -math.inf)
            if not math.isfinite(u):
                state.drop(k)
        self.keep([k for k in self.ks if not racers[k].diverged])
        return trained


def race(dataset: Dataset, groups: Mapping[str, Sequence[LossSpec]], rungs: Sequence[int], survivors: int,
         config: EffectivenessConfig = EffectivenessConfig(),
         progress: Callable[[int, int], None] | None = None) -> RaceResult:
    """Race the losses of every group (group name -> its losses; a name in several groups races
    once) and return each group's `survivors` best, with their epsilon (see the module doc).
    `config`: the model, task, training settings, epsilon grid and seed (its first) of Phase III.
    `progress(epoch, racers still training)` after every epoch."""
    rungs = tuple(int(r) for r in rungs)
    if not rungs or any(r < 1 for r in rungs) or list(rungs) != sorted(set(rungs)):
        raise ValueError(f"rungs must be increasing epoch counts >= 1, got {', '.join(map(str, rungs))}")
    if survivors < 1:
        raise ValueError(f"survivors must be at least 1, got {survivors}")
    if not config.seeds:
        raise ValueError("at least one seed is needed")
    racers = _racers(groups, config.eps_grid)
    state = _Race(groups, racers, survivors)
    metric = metric_for_task(config.task)

    seed = config.seeds[0]
    limit = population_limit(dataset, config)
    held: _Segment | None = None  # the one population that continues from rung to rung when it fits
    trained = 0

    def run(segment: _Segment, rung: int) -> None:
        nonlocal trained
        while segment.ks and segment.at < rung:
            trained += segment.epoch(racers, state, dataset, config, metric)
            if progress is not None and segment.at < rung:  # a rung's last epoch: after its cut, below
                progress(segment.at, len(segment.ks))

    for r, rung in enumerate(rungs):
        active = state.training()
        if not active:
            break
        if held is not None and set(active) <= set(held.ks):  # continue it, without the racers dropped
            held.keep(active)
            run(held, rung)
        else:  # from the initialisation, one population of at most `limit` racers at a time
            chunks = [active[i:i + limit] for i in range(0, len(active), limit)]
            held = None
            for chunk in chunks:
                segment = _Segment.start(dataset, config, seed, chunk)
                run(segment, rung)
                held = segment if len(chunks) == 1 else None
                del segment
        for group in groups:
            if not state.decided(group):
                state.cut(group, final=r == len(rungs) - 1)
        if progress is not None:
            progress(rung, len(state.training()))
    # every group is decided now (by its last cut, or before it: it had nothing more to lose)
    chosen: dict[str, list[int]] = {g: state._best_per_candidate(g) for g in groups}
    for g, ks in chosen.items():
        for k in ks:
            racers[k].won.append(g)
    eps_of: dict[str, float | None] = {}
    for name in {racers[k].name for ks in chosen.values() for k in ks}:
        finalists = [k for k, rr in enumerate(racers) if rr.name == name and not rr.diverged
                     and any(k in ks for ks in state.alive.values())]
        common = min(racers[k].epochs for k in finalists)
        best = min(finalists, key=lambda k: (-racers[k].best(common), k))
        eps_of[name] = racers[best].spec.eps
    result = {g: [racers[k].spec.with_eps(eps_of[racers[k].name]) for k in ks] for g, ks in chosen.items()}
    return RaceResult(result, racers, rungs, survivors, config.task, trained)
