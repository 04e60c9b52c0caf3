"""Phases II and III applied to the candidates a search run recorded.

`check_run` gives every recorded candidate its Phase II positive rate (on the run's clamp mode).
`evaluate_run` takes the best distinct candidates that passed, by search reward, trains them
next to the handcrafted baselines in one Phase III, and records the results with the
candidates and in the run's meta (`phase3`), plus `phase3/effectiveness.{md,csv,json}`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from lossgen import report
from lossgen.data.dataset import Dataset
from lossgen.losses import LossKind, from_program, parse_losses
from lossgen.phases.check import DEFAULT_PAIRS, DEFAULT_THRESHOLD, positive_rates
from lossgen.phases.effectiveness import EffectivenessConfig, EffectivenessResult, run_effectiveness
from lossgen.programs import Program
from lossgen.store import RunError, RunStore

EVALUATED = ("passed", "off")
EVALUATED_ROWS = "WHERE proxy IN ('passed', 'off')"  # the store query for them (skips the many duplicates)


@dataclass(frozen=True)
class CheckSummary:
    checked: int  # candidates given a rate
    distinct: int  # distinct evaluated losses
    passed: int  # of those, how many pass
    threshold: float


def check_run(store: RunStore, threshold: float = DEFAULT_THRESHOLD, pairs: int = DEFAULT_PAIRS) -> CheckSummary:
    """Phase II on every recorded candidate; rates are stored, the summary in meta `phase2`."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    rows = store.candidates()
    if not rows:
        raise RunError(f"run {store.path} has no candidates yet: run the search first")
    rates = positive_rates([Program(r["program"]) for r in rows], store.config.get("clamp", "paper"), pairs).tolist()
    store.set_phase2({r["id"]: rate for r, rate in zip(rows, rates)})
    distinct = distinct_evaluated(store.candidates(EVALUATED_ROWS))
    passed = sum(r["phase2_rate"] >= threshold for r in distinct)
    store.set_meta("phase2", {"threshold": threshold, "pairs": pairs, "distinct": len(distinct), "passed": passed})
    return CheckSummary(len(rows), len(distinct), passed, threshold)


def distinct_evaluated(rows: list[dict]) -> list[dict]:
    """Evaluated candidates, the first of each fingerprint, in evaluation order."""
    seen, out = set(), []
    for r in sorted((r for r in rows if r["proxy"] in EVALUATED), key=lambda r: r["evaluation"]):
        if r["fingerprint"] not in seen:
            seen.add(r["fingerprint"])
            out.append(r)
    return out


def phase3_candidates(store: RunStore, top: int, budget: int | None = None) -> list[dict]:
    """The `top` best distinct candidates that passed Phase II, by search reward (ties: the
    earlier evaluation). `budget` counts only the first `budget` evaluations (equal budgets
    when runs overshoot by part of a round)."""
    phase2 = store.get_meta("phase2")
    if phase2 is None:
        raise RunError(f"run {store.path} has no Phase II results: run `lossgen check` on it first")
    rows = distinct_evaluated(store.candidates(EVALUATED_ROWS))
    if budget is not None:
        rows = [r for r in rows if r["evaluation"] <= budget]
    passing = [r for r in rows if r["phase2_rate"] is not None and r["phase2_rate"] >= phase2["threshold"]
               and r.get("note") is None]
    passing.sort(key=lambda r: (-r["reward"], r["evaluation"]))
    return passing[:top]


def evaluate_run(store: RunStore, dataset: Dataset, top: int = 3, baselines: str = "BCE,MSE,Hinge,Focal",
                 config: EffectivenessConfig | None = None, progress=None, budget: int | None = None) -> EffectivenessResult:
    """Phase III for the run's best candidates next to `baselines`; reads the test split once."""
    run = store.config
    config = config or EffectivenessConfig()
    config = replace(config, task=run.get("task", config.task), model=run.get("model", config.model),
                     dim=run.get("dim", config.dim))
    chosen = phase3_candidates(store, top, budget)
    if not chosen:
        raise RunError(f"no candidate of run {store.path} passed Phase II; nothing to evaluate")
    clamp = run.get("clamp", "paper")
    specs = [from_program(Program(r["program"]), clamp, name=r["id"]) for r in chosen]
    specs += parse_losses(baselines) if baselines.strip() else []
    result = run_effectiveness(dataset, specs, config, progress)
    formula = {r["id"]: r["formula"] for r in chosen}
    summary = []
    metric = result_metric(result)
    for r in result.losses:
        entry = {"name": r.spec.name, "candidate": r.spec.name if r.spec.kind == LossKind.PROGRAM else None,
                 "formula": formula.get(r.spec.name, r.spec.label()), "validation": r.validation,
                 "test": r.test, "test_mean": r.mean(metric), "test_std": r.std(metric), "epochs": r.epochs,
                 "vs_reference": r.vs_reference}
        summary.append(entry)
    store.set_phase3({e["candidate"]: e for e in summary if e["candidate"] is not None})
    store.set_meta("phase3", {"metric": metric, "reference": result.reference, "results": summary,
                              "seeds": list(config.seeds), "max_epochs": config.max_epochs, "top": top,
                              "baselines": baselines, "budget": budget})
    report.write_all(result, Path(store.path) / "phase3", {"dataset": run.get("dataset"), "model": config.model})
    return result


def result_metric(result: EffectivenessResult) -> str:
    return "auc" if result.task == "classification" else "rmse"
