"""Phases II and III applied to the candidates a search run recorded.

`check_run` gives every recorded candidate its Phase II positive rate (on the run's clamp mode).
`evaluate_run` chooses the candidates Phase III trains, by `selection`:
- `race` (the `lossgen` preset): every distinct candidate that passed races in one group
  (lossgen.phases.racing: successive halving on validation, each epsilon-using program once per
  epsilon of the grid), and the `survivors` best train with the epsilon the race chose;
- `top` (the `paper` preset): the `top` best distinct candidates that passed, by search reward.
They train next to the handcrafted baselines in one Phase III, and the results are recorded with
the candidates and in the run's meta (`phase3`: with `race`, also the race's table of every
racer and the chosen epsilons). The tables under `<run>/phase3/` are written by
`lossgen.reports.effectiveness` (no phase writes presentation files).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lossgen.data.dataset import Dataset
from lossgen.ir.printers import with_epsilon
from lossgen.ir.formula import to_infix
from lossgen.ir.programs import Program
from lossgen.phases.check import check_candidates, strict_measure
from lossgen.phases.effectiveness import EffectivenessConfig, EffectivenessResult, run_effectiveness
from lossgen.phases.racing import race
from lossgen.phases.settings import DEFAULT_BASELINES, SELECTIONS, CheckSettings, Phase3Settings
from lossgen.runs import RunError, RunStore
from lossgen.training.losses import LossKind, from_program, parse_losses


RACE_GROUP = "run"  # the one group of a run's race


@dataclass(frozen=True)
class CheckSummary:
    checked: int  # candidates given a rate
    distinct: int  # distinct evaluated losses
    passed: int  # of those, how many pass
    threshold: float


def check_run(store: RunStore, threshold: float = CheckSettings.threshold,
              pairs: int = CheckSettings.pairs, strict: bool | None = None) -> CheckSummary:
    """Phase II on every recorded candidate, each with the smoothing epsilon it was trained with;
    rates (and the strict measures) are stored, the summary in meta `phase2`. `strict`: the strict
    rule too (None: what the run's search used, `strict` of its config; the paper's rule for runs
    from before presets)."""
    strict = bool(store.config.get("strict", False)) if strict is None else strict
    CheckSettings(threshold, pairs, strict).check()
    records = store.candidates()
    if not records:
        raise RunError(f"run {store.path} has no candidates yet: run the search first")
    result = check_candidates([Program(r.program) for r in records], [r.eps for r in records],
                              store.config.get("clamp", "paper"), threshold, pairs, strict=strict)
    measures = {r.id: (strict_measure(s, g) if strict else None)
                for r, s, g in zip(records, result.strict_rates, result.max_gradients)}
    store.set_phase2({r.id: rate for r, rate in zip(records, result.rates)}, measures)
    distinct = store.distinct_evaluated()
    passed = sum(r.passes(threshold) for r in distinct)
    store.set_meta("phase2", {"threshold": threshold, "pairs": pairs, "strict": strict, "distinct": len(distinct),
                              "passed": passed})
    return CheckSummary(len(records), len(distinct), passed, threshold)


def phase2_current(store: RunStore, threshold: float, strict: bool | None = None) -> bool:
    """Phase II already rated every candidate of the run with this pass mark and rule (rates do not change)."""
    meta = store.get_meta("phase2")
    strict = bool(store.config.get("strict", False)) if strict is None else strict
    return (meta is not None and meta.get("threshold") == threshold and bool(meta.get("strict", False)) == strict
            and store.unrated() == 0)


def evaluate_run(store: RunStore, dataset: Dataset, top: int = Phase3Settings.top,
                 baselines: str = DEFAULT_BASELINES, config: EffectivenessConfig | None = None, progress=None,
                 budget: int | None = None, executor=None, selection: str = Phase3Settings.selection,
                 survivors: int = Phase3Settings.survivors, rungs: tuple[int, ...] = Phase3Settings.rungs,
                 race_progress=None) -> EffectivenessResult:
    """Phase III for the run's candidates (chosen by `selection`, see the module doc) next to
    `baselines`; reads the test split once, after the race. `progress`: Phase III's epochs;
    `race_progress`: the race's (both `(epoch, runs still training)`).
    `executor`: see `run_effectiveness` (with ray: sharded over Ray actors, same results; the
    race runs here)."""
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; choose {' or '.join(SELECTIONS)}")
    run = store.config
    config = config or EffectivenessConfig()
    config = replace(config, task=run.get("task", config.task), model=run.get("model", config.model),
                     dim=run.get("dim", config.dim))
    chosen = store.best_passing(top if selection == "top" else None, budget)
    if not chosen:
        raise RunError(f"no candidate of run {store.path} passed Phase II; nothing to evaluate")
    clamp = run.get("clamp", "paper")
    # Phase I's epsilon (None: the paper's smoothing); the race or the top path's grid chooses Phase III's
    specs = [from_program(Program(r.program), clamp, name=r.id, eps=r.eps) for r in chosen]
    raced = None
    if selection == "race":
        raced = race(dataset, {RACE_GROUP: specs}, rungs, survivors, config, race_progress)
        specs = list(raced.survivors[RACE_GROUP])
        if not specs:
            raise RunError(f"every candidate of run {store.path} diverged in Phase III's race; nothing to evaluate")
    fixed = [s.name for s in specs] if raced is not None else []
    specs += parse_losses(baselines) if baselines.strip() else []
    result = run_effectiveness(dataset, specs, config, progress, executor, fixed_eps=fixed)
    formula = {r.id: to_infix(Program(r.program)) for r in chosen}  # bare: the entry adds the trained epsilon
    summary = []
    metric = result_metric(result)
    for r in result.losses:
        program = r.spec.kind == LossKind.PROGRAM
        eps = r.spec.eps if program else None
        entry = {"name": r.spec.name, "candidate": r.spec.name if program else None,
                 "formula": with_epsilon(formula[r.spec.name], eps) if program else r.spec.label(),
                 "eps": eps, "validation": r.validation, "test": r.test, "test_mean": r.mean(metric),
                 "test_std": r.std(metric), "epochs": r.epochs, "vs_reference": r.vs_reference}
        summary.append(entry)
    meta = {"metric": metric, "reference": result.reference, "results": summary, "seeds": list(config.seeds),
            "max_epochs": config.max_epochs, "top": top, "baselines": baselines, "budget": budget,
            "selection": selection}
    if raced is not None:
        meta.update(survivors=survivors, rungs=list(raced.rungs), race=raced.table(),
                    race_epochs=raced.epochs_trained, eps=raced.eps())
    store.set_phase3({e["candidate"]: e for e in summary if e["candidate"] is not None}, meta)  # one transaction
    return result


def result_metric(result: EffectivenessResult) -> str:
    return "auc" if result.task == "classification" else "rmse"
