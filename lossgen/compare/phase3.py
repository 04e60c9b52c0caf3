"""The shared Phase III of a comparison: every run's chosen candidates and the baselines trained
in ONE population, so all of them see the same seeds, batch orders and test split.

Which candidates of a run Phase III trains (`selection`):
- `top` (the paper's): the run's `top` best distinct passing candidates by search reward, as
  `chosen` gives them; a loss found by several runs (same fingerprint) is trained once.
- `race` (the `lossgen` preset's): `chosen` holds every distinct passing candidate of each run.
  Each run is one group of ONE race (lossgen.phases.racing), trained side by side. A loss found by
  several runs races once (one set of racers, one per epsilon where it uses one) and counts in
  each of its runs' groups: every group ranks it with the same numbers, against its own run's
  other candidates only, and keeps or drops it for itself. So a run keeps exactly what it would
  keep racing alone, except that a loss it shares may take the epsilon another run's group found
  better (one epsilon per loss, see racing's module doc). The survivors of every run (a loss kept
  by several runs once) then train to convergence with their race-chosen epsilon, next to the
  baselines. Each run's survivors are listed, by fingerprint, under `race.groups` of the results:
  a run's Phase III candidates are those, not every loss of the run that reached Phase III (a
  shared loss may survive in another run's group only); `lossgen.compare.runner` narrows each
  run's `chosen` to them before the summary joins results to runs by fingerprint.

Results are kept in OUT/phase3/phase3.json under a key made of everything that determines them
(the losses, the baselines, the Phase III settings, the data; with `race` also the race settings
and every run's group); a resumed comparison whose key is unchanged reuses them, any change
retrains. The file is written last and atomically: it is the commit point.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from lossgen.reports import effectiveness as report
from lossgen.util.atomic import write_text_atomic
from lossgen.training.equivalence import named_label
from lossgen.training.losses import LossKind, from_program, parse_losses
from lossgen.models.mf import INIT_STD
from lossgen.phases.effectiveness import EffectivenessConfig, run_effectiveness
from lossgen.phases.racing import race
from lossgen.phases.runs import result_metric
from lossgen.phases.settings import SELECTIONS, Phase3Settings
from lossgen.ir.printers import with_epsilon
from lossgen.ir.formula import to_infix
from lossgen.ir.programs import Program


def loss_name(fingerprint: str) -> str:
    return f"loss-{fingerprint[:10]}"


def distinct_losses(chosen: dict[str, list[dict]]) -> list[dict]:
    """The distinct candidates (by fingerprint) of every run's choice, in run order."""
    seen: dict[str, dict] = {}
    for rows in chosen.values():
        for r in rows:
            # the bare formula: Phase III adds the epsilon it trains with
            seen.setdefault(r["fingerprint"], {"name": loss_name(r["fingerprint"]), "fingerprint": r["fingerprint"],
                                               "program": r["program"], "formula": to_infix(Program(r["program"])),
                                               "eps": r.get("eps")})
    return list(seen.values())


def phase3_key(losses: list[dict], baselines: str, config: EffectivenessConfig, clamp: str, data_key: str,
               race: dict | None = None) -> str:
    """`race`: the race's settings and groups (None with the `top` selection, whose key is the
    same as before races existed)."""
    settings = asdict(config)
    if settings["warmup"] == 0:  # added later: a key from before it (no warmup) stays the same
        del settings["warmup"]
    if settings["init_std"] == INIT_STD:  # likewise
        del settings["init_std"]
    content = {"losses": sorted((l["fingerprint"], l["program"]) for l in losses), "baselines": baselines,
               "config": settings, "clamp": clamp, "data": data_key}
    if race is not None:
        content["race"] = race
    blob = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def shared_phase3(out: Path, dataset, chosen: dict[str, list[dict]], baselines: str, config: EffectivenessConfig,
                  clamp: str, progress=None, executor=None, selection: str = "top",
                  survivors: int = Phase3Settings.survivors, rungs: tuple[int, ...] = Phase3Settings.rungs,
                  race_progress=None) -> dict:
    """Phase III results {key, metric, reference, selection, results[...] (and `race` with the
    race selection)}, trained now or reused. `chosen`: run name -> its candidates (rows with
    fingerprint, program, formula); with `top`, those Phase III trains; with `race`, those that
    race in the run's group."""
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; choose {' or '.join(SELECTIONS)}")
    losses = distinct_losses(chosen)
    race_settings = None
    if selection == "race":
        race_settings = {"survivors": survivors, "rungs": list(rungs),
                         "groups": {run: [r["fingerprint"] for r in rows] for run, rows in chosen.items()}}
    key = phase3_key(losses, baselines, config, clamp, dataset.key, race_settings)
    path = Path(out) / "phase3" / "phase3.json"
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            saved = None  # unreadable: train again
        if saved is not None and saved.get("key") == key:
            return saved
    # Phase I's epsilon (None: the paper's smoothing); the race or the top path's grid chooses Phase III's
    specs = [from_program(Program(l["program"]), clamp, name=l["name"], eps=l.get("eps")) for l in losses]
    by_name = {l["name"]: l for l in losses}
    fixed, race_record = [], None
    if selection == "race":
        spec_of = {s.name: s for s in specs}
        groups = {run: [spec_of[loss_name(r["fingerprint"])] for r in rows] for run, rows in chosen.items()}
        raced = race(dataset, groups, rungs, survivors, config, race_progress)
        kept = {s.name: s for group in raced.survivors.values() for s in group}
        specs = [kept[s.name] for s in specs if s.name in kept]  # in the order of `losses`
        fixed = [s.name for s in specs]
        race_record = {"survivors": survivors, "rungs": list(raced.rungs),
                       "groups": {run: [by_name[s.name]["fingerprint"] for s in group]
                                  for run, group in raced.survivors.items()},
                       "epochs_trained": raced.epochs_trained,
                       "racers": [{"fingerprint": by_name[row["name"]]["fingerprint"], **row} for row in raced.table()]}
    specs += parse_losses(baselines) if baselines.strip() else []
    if not specs:
        raise ValueError("Phase III has nothing to train: no candidate passed Phase II and no baselines are given")
    result = run_effectiveness(dataset, specs, config, progress, executor, fixed_eps=fixed)
    metric = result_metric(result)
    results = []
    for r in result.losses:
        loss = by_name.get(r.spec.name)
        eps = r.spec.eps if loss else None
        results.append({"name": r.spec.name, "kind": "candidate" if r.spec.kind == LossKind.PROGRAM else "baseline",
                        "fingerprint": loss["fingerprint"] if loss else None,
                        "formula": with_epsilon(loss["formula"], eps) if loss else r.spec.label(), "eps": eps,
                        "named": named_label(r.spec.program, r.spec.clamp, r.spec.eps) if loss else None, "validation": r.validation,
                        "test": r.test[metric], "test_mean": r.mean(metric),
                        "test_std": r.std(metric), "epochs": r.epochs, "vs_reference": r.vs_reference})
    saved = {"key": key, "metric": metric, "reference": result.reference, "seeds": list(config.seeds),
             "max_epochs": config.max_epochs, "baselines": baselines, "runs": result.runs,
             "epochs_trained": result.epochs_trained, "selection": selection, "results": results}
    if race_record is not None:
        saved["race"] = race_record
    report.write_all(result, path.parent, {"dataset": dataset.name, "model": config.model})
    write_text_atomic(path, json.dumps(saved, indent=2) + "\n")
    return saved


def run_survivors(phase3: dict) -> dict[str, list[str]] | None:
    """Run name -> the fingerprints of its candidates Phase III trained, with the race selection
    (None with `top`, or results saved before races: every chosen candidate of a run is its own)."""
    race_record = phase3.get("race") if phase3.get("selection") == "race" else None
    return None if race_record is None else race_record["groups"]
