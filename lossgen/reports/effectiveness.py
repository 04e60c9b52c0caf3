"""Tables and files for effectiveness-test results: markdown, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from lossgen.util.atomic import ensure_dir, write_text_atomic
from lossgen.ir.formula import to_infix
from lossgen.training.losses import LossKind
from lossgen.reports.seeds import paired_over_seeds
from lossgen.training.metrics import TASK_METRICS, metric_for_task
from lossgen.phases.effectiveness import EffectivenessResult


def vs_reference_over_seeds(result: EffectivenessResult) -> dict[str, dict]:
    """Each loss against the reference baseline, paired by seed, on the task's first metric."""
    if result.reference is None:
        return {}
    metric = TASK_METRICS[result.task][0]
    ref = next(r for r in result.losses if r.spec.name == result.reference)
    higher = metric_for_task(result.task).higher_is_better
    return {r.spec.name: paired_over_seeds(r.test[metric], ref.test[metric], higher)
            for r in result.losses if r.spec.name != result.reference}


def rows(result: EffectivenessResult) -> list[dict]:
    """One flat record per loss: selected epsilon, validation, test mean/std per metric, test."""
    out = []
    seeds = vs_reference_over_seeds(result)
    for r in result.losses:
        row = {
            "loss": r.spec.name,
            "formula": to_infix(r.spec.program) if r.spec.kind == LossKind.PROGRAM else "",
            "eps": r.spec.eps if r.spec.uses_epsilon else "",
            "validation": r.validation,
            "epochs": sum(r.epochs) / len(r.epochs),
        }
        for m in TASK_METRICS[result.task]:
            row[f"{m}_mean"], row[f"{m}_std"] = r.mean(m), r.std(m)
        if r.vs_reference is not None:
            row["diff_vs_ref"] = r.vs_reference["difference"]
            row["ci95_low"], row["ci95_high"] = r.vs_reference["ci95"]
            row["p_value"] = r.vs_reference["p_value"]
        if r.spec.name in seeds:
            paired = seeds[r.spec.name]
            row["seeds_diff"], row["seeds_std"] = paired["difference"], paired["std"]
            row["seeds_better"], row["seeds_n"], row["seeds_p"] = paired["better"], paired["n"], paired["p_value"]
        out.append(row)
    return out


def markdown(result: EffectivenessResult) -> str:
    metrics = TASK_METRICS[result.task]
    head = (["loss", "eps", "validation"] + [f"test {m}" for m in metrics]
            + [f"vs {result.reference} (test examples)", "p", f"vs {result.reference} (seeds)", "p (seeds)", "epochs"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows(result):
        cells = [row["loss"], f"{row['eps']:g}" if row["eps"] != "" else "", f"{row['validation']:.4f}"]
        cells += [f"{row[f'{m}_mean']:.4f} ± {row[f'{m}_std']:.4f}" for m in metrics]
        if "p_value" in row:
            cells += [f"{row['diff_vs_ref']:+.4f} [{row['ci95_low']:+.4f}, {row['ci95_high']:+.4f}]", f"{row['p_value']:.3f}"]
        else:
            cells += ["reference" if row["loss"] == result.reference else "", ""]
        if "seeds_p" in row:
            cells += [f"{row['seeds_diff']:+.4f} ± {row['seeds_std']:.4f} ({row['seeds_better']}/{row['seeds_n']} better)",
                      f"{row['seeds_p']:.3g}"]
        else:
            cells += ["", ""]
        cells.append(f"{row['epochs']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    if result.reference is not None:
        n = len(result.losses[0].epochs)
        lines.append(f"\nSeeds: {n}. A seed sets a run's initialisation and its data order, so runs of one seed are "
                     f"paired; (seeds): mean per-seed difference ± its std, seeds in favour, exact sign-flip "
                     f"p-value (none below {min(1.0, 2 / 2**n):.3g} with {n} seeds). (test examples): paired "
                     f"bootstrap over test examples of the seed-averaged predictions.")
    return "\n".join(lines) + "\n"


def to_csv(result: EffectivenessResult) -> str:
    records = rows(result)
    fields = list(dict.fromkeys(k for r in records for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def to_json(result: EffectivenessResult, extra: dict | None = None) -> str:
    body = {
        "task": result.task,
        "reference_baseline": result.reference,
        "runs": result.runs,
        "epochs_trained": result.epochs_trained,
        "vs_reference_over_seeds": vs_reference_over_seeds(result),
        "losses": [
            {"name": r.spec.name, "kind": r.spec.kind.name, "eps": r.spec.eps if r.spec.uses_epsilon else None,
             "formula": to_infix(r.spec.program) if r.spec.kind == LossKind.PROGRAM else None,
             "validation": r.validation, "test": r.test, "epochs": r.epochs, "vs_reference": r.vs_reference}
            for r in result.losses
        ],
        **(extra or {}),
    }
    return json.dumps(body, indent=2)


def write_all(result: EffectivenessResult, out: Path, extra: dict | None = None) -> list[Path]:
    ensure_dir(out)  # WriteError (an OSError) names what prevents it
    files = {"effectiveness.md": markdown(result), "effectiveness.csv": to_csv(result),
             "effectiveness.json": to_json(result, extra)}
    for name, text in files.items():
        write_text_atomic(out / name, text)
    return [out / name for name in files]
