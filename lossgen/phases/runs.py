"""Phases II and III applied to the candidates a search run recorded.

`check_run` gives every recorded candidate its Phase II positive rate (on the run's clamp mode).
`evaluate_run` takes the best distinct candidates that passed, by search reward, trains them
next to the handcrafted baselines in one Phase III, and records the results with the
candidates and in the run's meta (`phase3`). The tables under `<run>/phase3/` are written by
`lossgen.reports.effectiveness` (no phase writes presentation files).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lossgen.data.dataset import Dataset
from lossgen.ir.programs import Program
from lossgen.phases.check import positive_rates
from lossgen.phases.effectiveness import EffectivenessConfig, EffectivenessResult, run_effectiveness
from lossgen.phases.settings import DEFAULT_BASELINES, CheckSettings, Phase3Settings
from lossgen.runs import RunError, RunStore
from lossgen.training.losses import LossKind, from_program, parse_losses


@dataclass(frozen=True)
class CheckSummary:
    checked: int  # candidates given a rate
    distinct: int  # distinct evaluated losses
    passed: int  # of those, how many pass
    threshold: float


def check_run(store: RunStore, threshold: float = CheckSettings.threshold,
              pairs: int = CheckSettings.pairs) -> CheckSummary:
    """Phase II on every recorded candidate; rates are stored, the summary in meta `phase2`."""
    CheckSettings(threshold, pairs).check()
    records = store.candidates()
    if not records:
        raise RunError(f"run {store.path} has no candidates yet: run the search first")
    rates = positive_rates([Program(r.program) for r in records], store.config.get("clamp", "paper"), pairs).tolist()
    store.set_phase2({r.id: rate for r, rate in zip(records, rates)})
    distinct = store.distinct_evaluated()
    passed = sum(r.phase2_rate >= threshold for r in distinct)
    store.set_meta("phase2", {"threshold": threshold, "pairs": pairs, "distinct": len(distinct), "passed": passed})
    return CheckSummary(len(records), len(distinct), passed, threshold)


def phase2_current(store: RunStore, threshold: float) -> bool:
    """Phase II already rated every candidate of the run with this pass mark (rates do not change)."""
    meta = store.get_meta("phase2")
    return (meta is not None and meta.get("threshold") == threshold
            and store.unrated() == 0)


def evaluate_run(store: RunStore, dataset: Dataset, top: int = Phase3Settings.top,
                 baselines: str = DEFAULT_BASELINES, config: EffectivenessConfig | None = None, progress=None,
                 budget: int | None = None, executor=None) -> EffectivenessResult:
    """Phase III for the run's best candidates next to `baselines`; reads the test split once.
    `executor`: see `run_effectiveness` (with ray: sharded over Ray actors, same results)."""
    run = store.config
    config = config or EffectivenessConfig()
    config = replace(config, task=run.get("task", config.task), model=run.get("model", config.model),
                     dim=run.get("dim", config.dim))
    chosen = store.best_passing(top, budget)
    if not chosen:
        raise RunError(f"no candidate of run {store.path} passed Phase II; nothing to evaluate")
    clamp = run.get("clamp", "paper")
    specs = [from_program(Program(r.program), clamp, name=r.id) for r in chosen]
    specs += parse_losses(baselines) if baselines.strip() else []
    result = run_effectiveness(dataset, specs, config, progress, executor)
    formula = {r.id: r.formula for r in chosen}
    summary = []
    metric = result_metric(result)
    for r in result.losses:
        entry = {"name": r.spec.name, "candidate": r.spec.name if r.spec.kind == LossKind.PROGRAM else None,
                 "formula": formula.get(r.spec.name, r.spec.label()), "validation": r.validation,
                 "test": r.test, "test_mean": r.mean(metric), "test_std": r.std(metric), "epochs": r.epochs,
                 "vs_reference": r.vs_reference}
        summary.append(entry)
    store.set_phase3({e["candidate"]: e for e in summary if e["candidate"] is not None},  # one transaction
                     {"metric": metric, "reference": result.reference, "results": summary,
                      "seeds": list(config.seeds), "max_epochs": config.max_epochs, "top": top,
                      "baselines": baselines, "budget": budget})
    return result


def result_metric(result: EffectivenessResult) -> str:
    return "auc" if result.task == "classification" else "rmse"
