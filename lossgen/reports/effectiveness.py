"""Tables and files for effectiveness-test results: markdown, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from lossgen.util.atomic import ensure_dir, write_text_atomic
from lossgen.ir.formula import to_infix
from lossgen.training.losses import LossKind
from lossgen.training.metrics import TASK_METRICS
from lossgen.phases.effectiveness import EffectivenessResult


def rows(result: EffectivenessResult) -> list[dict]:
    """One flat record per loss: selected epsilon, validation, test mean/std per metric, test."""
    out = []
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
        out.append(row)
    return out


def markdown(result: EffectivenessResult) -> str:
    metrics = TASK_METRICS[result.task]
    head = ["loss", "eps", "validation"] + [f"test {m}" for m in metrics] + [f"vs {result.reference}", "p", "epochs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows(result):
        cells = [row["loss"], f"{row['eps']:g}" if row["eps"] != "" else "", f"{row['validation']:.4f}"]
        cells += [f"{row[f'{m}_mean']:.4f} ± {row[f'{m}_std']:.4f}" for m in metrics]
        if "p_value" in row:
            cells += [f"{row['diff_vs_ref']:+.4f} [{row['ci95_low']:+.4f}, {row['ci95_high']:+.4f}]", f"{row['p_value']:.3f}"]
        else:
            cells += ["reference" if row["loss"] == result.reference else "", ""]
        cells.append(f"{row['epochs']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
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
