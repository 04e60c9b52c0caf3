"""The shared Phase III of a comparison: every run's best candidates and the baselines trained
in ONE population, so all of them see the same seeds, batch orders and test split.

A loss found by several runs (same fingerprint) is trained once. Results are kept in
OUT/phase3/phase3.json under a key made of everything that determines them (the losses, the
baselines, the Phase III settings, the data); a resumed comparison whose key is unchanged reuses
them, any change retrains. The file is written last and atomically: it is the commit point.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from lossgen.reports import effectiveness as report
from lossgen.util.atomic import write_text_atomic
from lossgen.training.losses import LossKind, from_program, parse_losses
from lossgen.phases.effectiveness import EffectivenessConfig, run_effectiveness
from lossgen.phases.runs import result_metric
from lossgen.ir.programs import Program


def loss_name(fingerprint: str) -> str:
    return f"loss-{fingerprint[:10]}"


def distinct_losses(chosen: dict[str, list[dict]]) -> list[dict]:
    """The distinct candidates (by fingerprint) of every run's choice, in run order."""
    seen: dict[str, dict] = {}
    for rows in chosen.values():
        for r in rows:
            seen.setdefault(r["fingerprint"], {"name": loss_name(r["fingerprint"]), "fingerprint": r["fingerprint"],
                                               "program": r["program"], "formula": r["formula"]})
    return list(seen.values())


def phase3_key(losses: list[dict], baselines: str, config: EffectivenessConfig, clamp: str, data_key: str) -> str:
    settings = asdict(config)
    if settings["warmup"] == 0:  # added later: a key from before it (no warmup) stays the same
        del settings["warmup"]
    blob = json.dumps({"losses": sorted((l["fingerprint"], l["program"]) for l in losses), "baselines": baselines,
                       "config": settings, "clamp": clamp, "data": data_key}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def shared_phase3(out: Path, dataset, chosen: dict[str, list[dict]], baselines: str, config: EffectivenessConfig,
                  clamp: str, progress=None, executor=None) -> dict:
    """Phase III results {key, metric, reference, results[...]} (trained now or reused)."""
    losses = distinct_losses(chosen)
    key = phase3_key(losses, baselines, config, clamp, dataset.key)
    path = Path(out) / "phase3" / "phase3.json"
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            saved = None  # unreadable: train again
        if saved is not None and saved.get("key") == key:
            return saved
    specs = [from_program(Program(l["program"]), clamp, name=l["name"]) for l in losses]
    specs += parse_losses(baselines) if baselines.strip() else []
    if not specs:
        raise ValueError("Phase III has nothing to train: no candidate passed Phase II and no baselines are given")
    result = run_effectiveness(dataset, specs, config, progress, executor)
    metric = result_metric(result)
    by_name = {l["name"]: l for l in losses}
    results = []
    for r in result.losses:
        loss = by_name.get(r.spec.name)
        results.append({"name": r.spec.name, "kind": "candidate" if r.spec.kind == LossKind.PROGRAM else "baseline",
                        "fingerprint": loss["fingerprint"] if loss else None,
                        "formula": loss["formula"] if loss else r.spec.label(), "validation": r.validation,
                        "test": r.test[metric], "test_mean": r.mean(metric), "test_std": r.std(metric),
                        "epochs": r.epochs, "vs_reference": r.vs_reference})
    saved = {"key": key, "metric": metric, "reference": result.reference, "seeds": list(config.seeds),
             "max_epochs": config.max_epochs, "baselines": baselines, "runs": result.runs,
             "epochs_trained": result.epochs_trained, "results": results}
    report.write_all(result, path.parent, {"dataset": dataset.name, "model": config.model})
    write_text_atomic(path, json.dumps(saved, indent=2) + "\n")
    return saved
