"""Phase III, the effectiveness test (DESIGN.md "The three phases"; paper §4.3, Tables 4-5).

Every loss trains a freshly initialised recommender to convergence, for several seeds; losses
with a smoothing epsilon (MaxR, SumR, LogMin, a program that carries one) try every epsilon of
the grid 1, 1e-1, ..., 1e-6, except those named in `fixed_eps` (a program whose epsilon Phase
III's race, lossgen.phases.racing, already chose), which keep theirs.
All (loss, epsilon, seed) runs form ONE population trained side by side (same batch order per
epoch for all). Each run stops on the paper's rule: its validation metric got worse for
`patience` consecutive epochs, or its best epoch is more than `stale` epochs ago (or the epoch
cap); it keeps the parameters of its best validation epoch.

Selection happens on validation only: the epsilon of a loss is the one with the best mean
(over seeds) best-validation metric, and the reference baseline is the baseline loss with the
best mean validation metric. Only then is the test split read, once, and every selected run is
scored on it. Each loss is compared with the reference baseline by a paired bootstrap over test
examples (both losses' seed-averaged predictions on the same resampled examples): the 95%
interval of the metric difference and a two-sided bootstrap p-value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Collection, Sequence

import torch

from lossgen.data.dataset import Dataset, Split
from lossgen.phases.distributed import train_sharded
from lossgen.phases.executor import ExecutorSettings
from lossgen.training.losses import BASELINES, LossSpec
from lossgen.training.metrics import TASK_METRICS, Metrics, metric_for_task
from lossgen.models import create_population
from lossgen.models.mf import INIT_STD
from lossgen.training.trainer import TrainConfig, train_epoch

EPSILON_GRID = (1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


# Early stopping (DESIGN.md "Phase III"): (warmup, patience, stale). `paper`: the rules apply from
# the first epoch, stop after 10 consecutive worse epochs or when the best is more than 50 epochs
# old. `official`: the authors' released code, which applies its rules only after 100 evaluations
# and uses 100 for the staleness rule.
EARLY_STOP = {"paper": (0, 10, 50), "official": (100, 10, 100)}


@dataclass(frozen=True)
class EffectivenessConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    eps_grid: tuple[float, ...] = EPSILON_GRID
    max_epochs: int = 300
    patience: int = EARLY_STOP["paper"][1]  # stop after this many consecutive worse epochs
    stale: int = EARLY_STOP["paper"][2]  # stop when the best epoch is more than this many epochs ago
    task: str = "classification"
    model: str = "mf"
    dim: int = 64
    train: TrainConfig = TrainConfig()
    bootstrap: int = 2000
    warmup: int = EARLY_STOP["paper"][0]  # epochs before the patience and staleness rules apply
    # std of the initial embeddings (lossgen: 0.01; the authors' code leaves nn.Embedding's N(0, 1))
    init_std: float = INIT_STD

    def with_early_stop(self, mode: str) -> "EffectivenessConfig":
        """This config with the early-stopping rules of `mode` (a key of EARLY_STOP)."""
        if mode not in EARLY_STOP:
            raise ValueError(f"unknown early stop {mode!r}; choose {' or '.join(EARLY_STOP)}")
        warmup, patience, stale = EARLY_STOP[mode]
        return replace(self, warmup=warmup, patience=patience, stale=stale)

    @property
    def early_stop(self) -> str:
        """The name of these rules (`paper`, `official`, or `custom`)."""
        rules = (self.warmup, self.patience, self.stale)
        return next((name for name, value in EARLY_STOP.items() if value == rules), "custom")


@dataclass
class Run:
    """One (loss, epsilon, seed) training run."""

    spec: LossSpec
    seed: int
    best_utility: float = -math.inf  # validation metric, higher is better
    best_epoch: int = -1
    epochs: int = 0
    history: list[float] = field(default_factory=list)
    stopped: bool = False


@dataclass
class LossResult:
    spec: LossSpec  # with the selected epsilon
    validation: float  # mean best validation metric over seeds (as reported: AUC or RMSE)
    test: dict[str, list[float]]  # metric -> one value per seed
    epochs: list[int]
    vs_reference: dict | None = None  # paired bootstrap against the reference baseline

    def mean(self, metric: str) -> float:
        values = self.test[metric]
        return sum(values) / len(values)

    def std(self, metric: str) -> float:
        values = self.test[metric]
        if len(values) < 2:
            return 0.0
        m = self.mean(metric)
        return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


@dataclass
class EffectivenessResult:
    task: str
    losses: list[LossResult]
    reference: str | None  # name of the reference baseline
    runs: int
    epochs_trained: int


def _expand(losses: Sequence[LossSpec], config: EffectivenessConfig, fixed_eps: Collection[str] = ()) -> list[Run]:
    runs = []
    for spec in losses:
        grid = spec.uses_epsilon and spec.name not in fixed_eps
        variants = [spec.with_eps(e) for e in config.eps_grid] if grid else [spec]
        for variant in variants:
            runs.extend(Run(variant, seed) for seed in config.seeds)
    return runs


def should_stop(run: Run, config: EffectivenessConfig) -> bool:
    """Phase III's early stop for a run after its latest epoch (`config`'s rules and epoch cap);
    bench/mlp_ablation.py applies the same rule to its plain-PyTorch runs."""
    if run.epochs >= config.max_epochs:
        return True
    if run.epochs < config.warmup:
        return False
    h = run.history
    worse_streak = len(h) > config.patience and all(h[-i] < h[-i - 1] for i in range(1, config.patience + 1))
    return worse_streak or (run.epochs - 1 - run.best_epoch) > config.stale or run.epochs >= config.max_epochs


def train_to_convergence(dataset: Dataset, runs: list[Run], config: EffectivenessConfig,
                         progress: Callable[[int, int], None] | None = None):
    """Train all runs as one population until each stops; returns their best-epoch parameters."""
    metric = metric_for_task(config.task)
    train, val = dataset.train, dataset.validation
    model = create_population(config.model, dataset.n_users, dataset.n_items, [r.seed for r in runs], config.dim,
                              config.init_std)
    best = model.select(range(len(runs)))
    losses = [r.spec for r in runs]
    # A seed sets a run's initialisation and its data order: runs of one seed (different losses,
    # epsilons) share an order, so losses stay paired by seed; runs of other seeds differ.
    seed_order = {seed: torch.Generator().manual_seed(seed) for seed in sorted({r.seed for r in runs})}
    orders = [seed_order[r.seed] for r in runs]
    active = list(range(len(runs)))
    epoch = 0
    while active:
        train_epoch(model, losses, train.users, train.items, train.labels, config.train, orders)
        utility = metric.utility(model.predict(val.users, val.items), val.labels).tolist()
        improved, still = [], []
        for slot, k in enumerate(active):
            run = runs[k]
            run.history.append(utility[slot])
            run.epochs += 1
            if utility[slot] > run.best_utility:
                run.best_utility, run.best_epoch = utility[slot], run.epochs - 1
                improved.append((slot, k))
            run.stopped = should_stop(run, config)
            if not run.stopped:
                still.append(slot)
        for slot, k in improved:  # keep the best epoch's parameters
            best.copy_candidate(k, model, slot)
        epoch += 1
        if progress is not None:
            progress(epoch, len(still))
        if len(still) < len(active):  # shrink the population to the runs still training
            model = model.select(still)
            losses = [losses[s] for s in still]
            orders = [orders[s] for s in still]
            active = [active[s] for s in still]
    return best


def _paired_bootstrap(scores_a: torch.Tensor, scores_b: torch.Tensor, labels: torch.Tensor, task: str,
                      replicates: int, seed: int) -> dict:
    """Metric(a) - metric(b) on the same resampled test examples: mean, 95% interval, p-value."""
    metric = metric_for_task(task)
    gen = torch.Generator().manual_seed(seed)
    n = labels.shape[0]
    observed = float(metric(scores_a, labels) - metric(scores_b, labels))
    diffs = []
    for chunk in range(0, replicates, 250):
        m = min(250, replicates - chunk)
        idx = torch.randint(0, n, (m, n), generator=gen)
        lab = labels[idx]
        # resamples with a single class have no AUC; draw until both classes occur is overkill at
        # our sizes (thousands of examples), so such rows are simply dropped
        ok = (lab.min(1).values != lab.max(1).values) if task == "classification" else torch.ones(m, dtype=torch.bool)
        diffs.append((metric(scores_a[idx[ok]], lab[ok]) - metric(scores_b[idx[ok]], lab[ok])))
    d = torch.cat(diffs).double()
    lo, hi = torch.quantile(d, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    p = min(1.0, 2 * min(float((d <= 0).double().mean()), float((d >= 0).double().mean())))
    return {"difference": observed, "ci95": [lo, hi], "p_value": p, "replicates": int(d.numel())}


def run_effectiveness(dataset: Dataset, losses: Sequence[LossSpec], config: EffectivenessConfig = EffectivenessConfig(),
                      progress: Callable[[int, int], None] | None = None,
                      executor: ExecutorSettings | None = None,
                      fixed_eps: Collection[str] = ()) -> EffectivenessResult:
    """`fixed_eps`: names of losses that train with their own epsilon only (no grid).
    `executor`: with `ray`, the runs are split by loss over Ray actors
    (lossgen.phases.distributed.train_sharded; Ray must be connected, see `ray_session`) and
    only the selection, the test predictions' metrics and the bootstraps happen here. Each run
    trains as it would in the whole population (the same seed, the same batch order per epoch,
    its own early stop), so the table is the same."""
    if not losses:
        raise ValueError("no losses to evaluate")
    if not config.seeds:
        raise ValueError("at least one seed is needed")
    names = [s.name for s in losses]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate loss names: {names}")
    unknown = sorted(set(fixed_eps) - set(names))
    if unknown:
        raise ValueError(f"fixed_eps names losses that are not evaluated: {', '.join(unknown)}")
    metric = metric_for_task(config.task)
    runs = _expand(losses, config, fixed_eps)
    if executor is not None and executor.is_ray:
        best = train_sharded(dataset, runs, config, executor, train_to_convergence, progress)
    else:
        best = train_to_convergence(dataset, runs, config, progress)

    # Selection on validation only.
    selected: dict[str, list[int]] = {}
    validation: dict[str, float] = {}
    for spec in losses:
        by_variant: dict[float, list[int]] = {}
        for k, run in enumerate(runs):
            if run.spec.name == spec.name:
                by_variant.setdefault(run.spec.eps, []).append(k)
        scored = {eps: sum(runs[k].best_utility for k in ks) / len(ks) for eps, ks in by_variant.items()}
        eps = max(scored, key=lambda e: (scored[e], e))  # ties: the larger epsilon
        selected[spec.name] = by_variant[eps]
        validation[spec.name] = scored[eps] if metric.higher_is_better else -scored[eps]
    baselines = [n for n in names if n in BASELINES]
    sign = 1 if metric.higher_is_better else -1
    reference = max(baselines, key=lambda n: sign * validation[n]) if baselines else None

    # The test split: read once, after every choice is made.
    test: Split = dataset.open_test()
    chosen = [k for name in names for k in selected[name]]
    scores = best.select(chosen).predict(test.users, test.items)
    values = Metrics.compute(scores, test.labels, config.task)
    row_of = {k: i for i, k in enumerate(chosen)}

    results = []
    for spec in losses:
        ks = selected[spec.name]
        rows = [row_of[k] for k in ks]
        results.append(LossResult(
            spec=runs[ks[0]].spec,
            validation=validation[spec.name],
            test={m: [float(values[m][r]) for r in rows] for m in TASK_METRICS[config.task]},
            epochs=[runs[k].epochs for k in ks],
        ))
    if reference is not None:
        ref_rows = [row_of[k] for k in selected[reference]]
        ref_scores = scores[ref_rows].mean(0)
        for i, result in enumerate(results):
            if result.spec.name == reference:
                continue
            own = scores[[row_of[k] for k in selected[result.spec.name]]].mean(0)
            result.vs_reference = _paired_bootstrap(own, ref_scores, test.labels, config.task,
                                                    config.bootstrap, seed=i)
    return EffectivenessResult(config.task, results, reference, len(runs), sum(r.epochs for r in runs))
