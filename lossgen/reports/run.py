"""`lossgen report`: a markdown summary, a CSV and PNG plots of a search run directory.

The run is read, never written: run.db is opened read-only (a SQLite `mode=ro` URI) inside one
read transaction, so a report taken while the search is still running sees a consistent state
(whole rounds only). SQLite may leave its run.db-wal/-shm companions of the WAL database beside it
(a read-only connection cannot remove them); the next RunStore open uses them as usual. Files go to `<run>/report/` unless another directory is given, each written
atomically; nothing is written anywhere when the directory is not a lossgen run.

    metrics.png         train and validation metric of the current recommender per round (paper Fig. 5)
    sampled.png         accumulated sampled and evaluated candidates vs search minutes (paper Fig. 6)
    positive_rates.png  Phase II positive rates of the distinct evaluated candidates (once Phase II ran)
    rewards.png         reward per evaluation, with the best so far
    candidates.csv      every candidate row
    survivors.csv       the paper's Table 8 (after Phase III): every Phase II survivor, its race and
                        Phase III numbers, the named loss it equals, and its verdict
    report.md           the summary, the top candidates, Phase II/III results and the plot links

Only data from the run appears in the output (no clock, no host), so the same run gives the same
markdown and CSV.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Callable, Optional

from lossgen.reports.markdown import cell as _cell, code as _code, is_number as _is_number, num as _num, table as _table
from lossgen.reports.plots import figure as _figure, integer_ticks as _integer_ticks, png as _png
from lossgen.ir.programs import Program
from lossgen.runs import CandidateRecord, RunSnapshot, RunStore
from lossgen.runs.records import COLUMNS, all_passing
from lossgen.training.equivalence import named_label
from lossgen.util.atomic import check_writable_dir, write_bytes_atomic, write_text_atomic

METRIC_NAMES = {"auc": "AUC", "rmse": "RMSE"}
LOWER_IS_BETTER = {"rmse", "mae"}
RunData = RunSnapshot  # what a report reads: one consistent snapshot of a run


def load_run(run_dir: str | Path) -> RunSnapshot:
    """One read-only snapshot of a run directory (nothing is created or changed there). Raises
    RunError (a ValueError) for a directory that is not a lossgen run or cannot be read."""
    store = RunStore.open_readonly(run_dir)
    try:
        return store.snapshot()
    finally:
        store.close()


def metric_label(run: RunSnapshot) -> str:
    return METRIC_NAMES.get(run.metric, run.metric.upper())


# ---------------------------------------------------------------------------------------- selections

def evaluations(run: RunSnapshot) -> list[CandidateRecord]:
    """Evaluated candidates with a finite reward, in evaluation order."""
    return run.evaluated()


def distinct_evaluated(run: RunSnapshot) -> list[CandidateRecord]:
    """One candidate per fingerprint (its first evaluation, `lossgen.runs.distinct_evaluated`), best
    reward first (ties stay in evaluation order)."""
    return sorted((c for c in run.distinct_evaluated() if _is_number(c.reward)), key=lambda c: -c.reward)


def phase3_results(run: RunData) -> list[dict]:
    results = (run.phase3 or {}).get("results")
    return [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []


def phase3_test_mean(run: RunData, c: CandidateRecord) -> Optional[float]:
    """Phase III test mean of a candidate: from the run's Phase III results, else its own row."""
    for r in phase3_results(run):
        if r.get("candidate") == c.id and _is_number(r.get("test_mean")):
            return float(r["test_mean"])
    own = c.phase3
    if isinstance(own, dict) and _is_number(own.get("test_mean")):
        return float(own["test_mean"])
    return None


def totals(run: RunData) -> dict[str, int]:
    """Cumulative counts after the last round: the round's own totals, else the per-round sums."""
    keys = ("sampled", "evaluated", "zero_gradient", "duplicates")
    if not run.rounds:
        return dict.fromkeys(keys, 0)
    last = run.rounds[-1].get("totals")
    if isinstance(last, dict) and all(_is_number(last.get(k)) for k in keys):
        return {k: int(last[k]) for k in keys}
    return {k: int(sum(r.get(k) for r in run.rounds if _is_number(r.get(k)))) for k in keys}


def cumulative(run: RunData) -> list[tuple[float, int, int]]:
    """(elapsed seconds, sampled so far, evaluated so far) at the end of each round with a time."""
    points, sampled, evaluated = [], 0, 0
    for r in run.rounds:
        sampled += int(r.get("sampled")) if _is_number(r.get("sampled")) else 0
        evaluated += int(r.get("evaluated")) if _is_number(r.get("evaluated")) else 0
        t = r.get("totals") if isinstance(r.get("totals"), dict) else {}
        s = int(t["sampled"]) if _is_number(t.get("sampled")) else sampled
        e = int(t["evaluated"]) if _is_number(t.get("evaluated")) else evaluated
        if _is_number(r.get("elapsed")):
            points.append((float(r.get("elapsed")), s, e))
    return points


def elapsed(run: RunData) -> Optional[float]:
    for r in reversed(run.rounds):
        if _is_number(r.get("elapsed")):
            return float(r.get("elapsed"))
    return None


# ---------------------------------------------------------------------------------------- Table 8

WORKS, DOES_NOT, UNJUDGED = "works", "does not work", "trained, no baseline to judge by"
DROPPED, NOT_SELECTED = "dropped by the race", "not selected"
VERDICT_ORDER = (WORKS, DOES_NOT, UNJUDGED, DROPPED, NOT_SELECTED)


def race_summary(run: RunData) -> dict[str, dict]:
    """Per candidate that raced in Phase III: its best racer's validation and epsilon, the most
    epochs any of its racers trained, and its fate (survived, dropped, diverged)."""
    race = (run.phase3 or {}).get("race")
    out: dict[str, dict] = {}
    if not isinstance(race, list):
        return out
    sign = -1.0 if run.metric in LOWER_IS_BETTER else 1.0
    for row in race:
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            continue
        entry = out.setdefault(row["name"], {"validation": None, "eps": None, "epochs": 0, "survived": False,
                                             "diverged": True})
        value = row.get("validation")
        if _is_number(value) and (entry["validation"] is None or sign * value > sign * entry["validation"]):
            entry["validation"], entry["eps"] = float(value), row.get("eps")
        entry["epochs"] = max(entry["epochs"], int(row["epochs"]) if _is_number(row.get("epochs")) else 0)
        groups = row.get("groups") if isinstance(row.get("groups"), dict) else {}
        entry["survived"] |= "survived" in groups.values()
        entry["diverged"] &= bool(row.get("diverged"))
    return out


def phase2_survivors(run: RunData) -> list[dict]:
    """The paper's Table 8 for one run: every distinct candidate that passed Phase II, with its
    Phase III numbers and whether it works. The split is decided on validation only: a candidate
    trained to convergence `works` when its Phase III validation metric beats the reference
    baseline's (the baseline best on validation), else `does not work` (without baselines: not
    judged); a candidate the race dropped before convergence, or one the `top` selection did not
    take, has no converged validation (`dropped by the race`, `not selected`). Test numbers are
    shown, never used.
    Each row also names the handcrafted or paper loss the program equals (`=`, or a multiple of
    it) or is close to (`≈`, within 5%), judged by its derivative (`lossgen.training.equivalence`)."""
    if run.phase2 is None:
        return []
    budget = (run.phase3 or {}).get("budget")
    passing = all_passing(run.candidates, run.threshold, int(budget) if _is_number(budget) else None)
    entries = phase3_results(run)
    results = {r.get("candidate"): r for r in entries if r.get("candidate") is not None}
    reference_name = (run.phase3 or {}).get("reference")
    reference = next((r for r in entries if r.get("name") == reference_name), None)
    ref_val = reference.get("validation") if reference and _is_number(reference.get("validation")) else None
    sign = -1.0 if run.metric in LOWER_IS_BETTER else 1.0
    raced = race_summary(run)
    clamp = run.config.get("clamp", "paper")
    rows = []
    for c in passing:
        p3, r = results.get(c.id), raced.get(c.id)
        if p3 is not None and _is_number(p3.get("validation")):
            if ref_val is None:
                verdict = UNJUDGED
            else:
                verdict = WORKS if sign * float(p3["validation"]) > sign * float(ref_val) else DOES_NOT
        else:
            verdict = DROPPED if r is not None else NOT_SELECTED
        eps = p3.get("eps") if p3 is not None else (r["eps"] if r is not None else c.eps)
        rows.append({"candidate": c.id, "formula": p3.get("formula") if p3 is not None else c.formula,
                     "named": named_label(Program(c.program), clamp, eps), "phase2_rate": c.phase2_rate,
                     "reward": c.reward, "race": r, "validation": p3.get("validation") if p3 else None,
                     "test_mean": p3.get("test_mean") if p3 else None, "test_std": p3.get("test_std") if p3 else None,
                     "verdict": verdict})

    def key(row):
        value = row["validation"] if row["validation"] is not None else (row["race"] or {}).get("validation")
        return (VERDICT_ORDER.index(row["verdict"]), -sign * value if _is_number(value) else math.inf)
    return sorted(rows, key=key)


SURVIVOR_COLUMNS = ("verdict", "candidate", "formula", "named", "phase2_rate", "reward", "race_validation",
                    "race_eps", "race_epochs", "race_fate", "validation", "test_mean", "test_std")


def _race_fate(race: dict | None) -> str:
    if not race:
        return ""
    return "survived" if race.get("survived") else "diverged" if race.get("diverged") else "dropped"


def survivors_csv(run: RunData) -> str:
    """`phase2_survivors` as CSV, one row per candidate (empty cells where a number is missing)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SURVIVOR_COLUMNS)
    for r in phase2_survivors(run):
        race = r["race"] or {}
        values = {**r, "race_validation": race.get("validation"), "race_eps": race.get("eps"),
                  "race_epochs": race.get("epochs"), "race_fate": _race_fate(r["race"])}
        writer.writerow([_csv_cell(values.get(k)) for k in SURVIVOR_COLUMNS])
    return buffer.getvalue()


def _survivors_section(run: RunData) -> list[str]:
    rows = phase2_survivors(run)
    lines = ["## Table 8: every candidate that passed Phase II", ""]
    if not rows:
        return lines + ["No candidate passed Phase II.", ""]
    label = metric_label(run)
    reference = (run.phase3 or {}).get("reference")
    counts = {v: sum(1 for r in rows if r["verdict"] == v) for v in VERDICT_ORDER}
    lines.append(f"{len(rows)} distinct candidates passed Phase II: "
                 + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + ". "
                 + (f"A candidate works when its Phase III validation {label} beats {reference}'s, the baseline "
                    "best on validation; test numbers are shown, not used." if reference else
                    "No baseline was trained next to them, so nothing is judged."))
    lines.append("")
    head = ["verdict", "candidate", "formula", "named loss", "Phase II rate", "reward", f"race validation {label}",
            "race epochs", f"validation {label}", f"test {label}"]
    body = []
    for r in rows:
        race = r["race"] or {}
        fate = _race_fate(r["race"])
        body.append([r["verdict"], _code(r["candidate"]), _code(r["formula"]), _cell(r["named"] or ""),
                     _num(r["phase2_rate"], 3), _num(r["reward"]), _num(race.get("validation")),
                     f"{race.get('epochs', '')} ({fate})" if race else "", _num(r["validation"]),
                     f"{_num(r['test_mean'])} ± {_num(r['test_std'])}" if r["test_mean"] is not None else "–"])
    return lines + _table(head, body) + ["", "The same rows: [survivors.csv](survivors.csv)", ""]


# ---------------------------------------------------------------------------------------- plots

def plot_metrics(run: RunData) -> Optional[bytes]:
    """Figure 5: train and validation metric of the current recommender over rounds."""
    initial = run.meta.get("initial") if isinstance(run.meta.get("initial"), dict) else {}
    series = {}
    for key, label in (("train_metric", "train"), ("validation", "validation")):
        points = [(-1, float(initial[key]))] if _is_number(initial.get(key)) else []
        points += [(r.round, float(r.get(key))) for r in run.rounds if _is_number(r.get(key))]
        if points:
            series[label] = points
    if not series:
        return None
    fig, ax = _figure()
    for (label, points), marker in zip(series.items(), ("o", "s")):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, markersize=3, label=label)
    _integer_ticks(ax.xaxis)
    ax.set_xlabel("round (-1: before the search)" if initial else "round")
    ax.set_ylabel(metric_label(run))
    ax.set_title(f"{metric_label(run)} of the current recommender")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _png(fig)


def plot_sampled(run: RunData) -> Optional[bytes]:
    """Figure 6: accumulated sampled and evaluated candidates vs search wall time."""
    points = cumulative(run)
    if not points:
        return None
    minutes = [0.0] + [p[0] / 60.0 for p in points]
    fig, ax = _figure()
    ax.plot(minutes, [0] + [p[1] for p in points], marker="o", markersize=3, label="sampled")
    ax.plot(minutes, [0] + [p[2] for p in points], marker="s", markersize=3, label="evaluated")
    ax.set_xlabel("search time (minutes)")
    _integer_ticks(ax.yaxis)
    ax.set_ylabel("accumulated candidates")
    ax.set_title("Candidates over time")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _png(fig)


def plot_positive_rates(run: RunData) -> Optional[bytes]:
    """Histogram of Phase II positive rates over distinct evaluated candidates, with the pass mark."""
    rates = [float(c.phase2_rate) for c in distinct_evaluated(run) if _is_number(c.phase2_rate)]
    if run.phase2 is None or not rates:
        return None
    fig, ax = _figure()
    ax.hist(rates, bins=[i / 20 for i in range(21)], color="tab:blue", edgecolor="white")
    ax.axvline(run.threshold, color="tab:red", linestyle="--", label=f"threshold {run.threshold:g}")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("positive rate (share of pairs with the right gradient sign)")
    _integer_ticks(ax.yaxis)
    ax.set_ylabel("distinct candidates")
    ax.set_title("Phase II gradient-sign check")
    ax.legend()
    return _png(fig)


def plot_rewards(run: RunData) -> Optional[bytes]:
    """Reward of each evaluated candidate vs evaluation index, with the best so far."""
    chosen = evaluations(run)
    if not chosen:
        return None
    index = [int(c.evaluation) if _is_number(c.evaluation) else i + 1 for i, c in enumerate(chosen)]
    rewards = [float(c.reward) for c in chosen]
    best, running = [], -math.inf
    for value in rewards:
        running = max(running, value)
        best.append(running)
    fig, ax = _figure()
    ax.scatter(index, rewards, s=10, alpha=0.6, label="reward")
    ax.step(index, best, where="post", color="tab:red", label="best so far")
    _integer_ticks(ax.xaxis)
    ax.set_xlabel("evaluation")
    ax.set_ylabel("reward")
    ax.set_title("Rewards of evaluated candidates")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _png(fig)


PLOTS: dict[str, tuple[Callable[[RunData], Optional[bytes]], str]] = {
    "metrics.png": (plot_metrics, "train and validation metric per round"),
    "sampled.png": (plot_sampled, "accumulated sampled and evaluated candidates over time"),
    "positive_rates.png": (plot_positive_rates, "Phase II positive rates"),
    "rewards.png": (plot_rewards, "reward per evaluation"),
}


# ---------------------------------------------------------------------------------------- tables

def to_csv(run: RunData) -> str:
    """All candidates, one row each (program and Phase III results as JSON)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for c in run.candidates:
        writer.writerow([_csv_cell(v) for v in c.columns().values()])
    return buffer.getvalue()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def _flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [item for k in sorted(value) for item in _flatten(f"{prefix}.{k}" if prefix else str(k), value[k])]
    return [(prefix, value)]


def _setting(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (dict, list, bool)) or value is None else str(value)


def _change(before: float, after: float, metric: str) -> str:
    delta = after - before
    better = delta < 0 if metric in LOWER_IS_BETTER else delta > 0
    word = "better" if better else ("worse" if delta != 0 else "unchanged")
    return f"{before:.4f} → {after:.4f} ({delta:+.4f}, {word})"


def markdown(run: RunData, top: int = 10, written: Optional[dict[str, bool]] = None) -> str:
    """The report's markdown. `written` says which plot files exist (name -> drawn)."""
    written = written or {}
    config, label = run.config, metric_label(run)
    lines = [f"# lossgen run report: {run.path.resolve().name}", ""]

    lines += ["## Configuration", ""]
    essentials = [(k, config[k]) for k in ("dataset", "model", "task", "clamp", "strategy", "seed") if k in config]
    lines += _table(["setting", "value"], [[k, _cell(_setting(v))] for k, v in essentials] + [["metric", label]])
    for section in ("search", "train"):
        if isinstance(config.get(section), dict) and config[section]:
            pairs = ", ".join(f"`{_cell(k)}={_cell(_setting(v))}`" for k, v in _flatten("", config[section]))
            lines += ["", f"{section.capitalize()} settings: {pairs}"]
    lines.append("")

    lines += ["## Search", ""]
    initial = run.meta.get("initial") if isinstance(run.meta.get("initial"), dict) else {}
    if not run.rounds:
        lines.append("No round has completed yet: there is nothing to summarise or plot.")
        if _is_number(initial.get("validation")):
            lines.append(f"Initial validation {label}: {float(initial['validation']):.4f}.")
        lines.append("")
    else:
        count, seconds, t = len(run.rounds), elapsed(run), totals(run)
        first, last = run.rounds[0].round, run.rounds[-1].round
        accepted = sum(1 for c in run.candidates if c.accepted)
        lines.append(f"- Rounds completed: {count} (rounds {first}–{last})")
        if seconds is not None:
            lines.append(f"- Search time: {seconds:.1f} s ({seconds / 60:.1f} min)")
        lines.append(f"- Candidates: {t['sampled']} sampled, {t['evaluated']} evaluated, "
                     f"{t['zero_gradient']} zero-gradient, {t['duplicates']} duplicates")
        if seconds:
            lines.append(f"- Throughput: {t['sampled'] / seconds:.2f} sampled/s, {t['evaluated'] / seconds:.2f} evaluated/s")
        lines.append(f"- Accepted candidates (recommender moved): {accepted}")
        final = run.rounds[-1]
        for key, name in (("validation", "Validation"), ("train_metric", "Train")):
            if _is_number(final.get(key)):
                if _is_number(initial.get(key)):
                    lines.append(f"- {name} {label}: {_change(float(initial[key]), float(final.get(key)), run.metric)}")
                else:
                    lines.append(f"- {name} {label} after the last round: {float(final.get(key)):.4f}")
        best = [r.reward for r in evaluations(run)]
        if best:
            lines.append(f"- Best reward: {max(best):.4f}")
        lines.append("")

    distinct = distinct_evaluated(run)
    if run.rounds:
        lines += ["## Top candidates by reward", ""]
        if not distinct or top <= 0:
            lines += ["No candidate has been evaluated yet." if not distinct else "(none requested)", ""]
        else:
            has_p3 = run.phase3 is not None or any(isinstance(c.phase3, dict) for c in run.candidates)
            head = ["rank", "id", "formula", "reward", "round", "Phase II rate", "Phase II"]
            head += [f"Phase III test {label}"] if has_p3 else []
            rows = []
            for rank, c in enumerate(distinct[:top], 1):
                rate = c.phase2_rate
                verdict = ("pass" if rate >= run.threshold else "fail") if _is_number(rate) else "–"
                row = [str(rank), _code(c.id), _code(c.formula), _num(c.reward), str(c.round), _num(rate, 3), verdict]
                if has_p3:
                    row.append(_num(phase3_test_mean(run, c)))
                rows.append(row)
            lines += _table(head, rows)
            lines += ["", f"{len(distinct)} distinct evaluated candidates (distinct by fingerprint)."]
            lines.append("")

    lines += ["## Phase II: gradient-sign check", ""]
    if run.phase2 is None:
        lines += ["Phase II has not run yet, so positive_rates.png was not drawn.", ""]
    else:
        rated = [c for c in distinct if _is_number(c.phase2_rate)]
        passed = sum(1 for c in rated if c.phase2_rate >= run.threshold)
        pairs = run.phase2.get("pairs")
        lines.append(f"Threshold {run.threshold:g}" + (f", {pairs} pairs per candidate" if pairs is not None else "")
                     + f": {passed} of {len(rated)} distinct evaluated candidates pass.")
        lines.append("")

    if run.phase3 is not None:
        metric = str(run.phase3.get("metric") or run.metric)
        mlabel = METRIC_NAMES.get(metric, metric.upper())
        lines += ["## Phase III: effectiveness test", ""]
        results = phase3_results(run)
        if results:
            rows = []
            for r in results:
                epochs = r.get("epochs")
                mean_epochs = (sum(epochs) / len(epochs)) if isinstance(epochs, list) and epochs and all(
                    _is_number(e) for e in epochs) else None
                rows.append([_cell(r.get("name", "")), _code(r.get("candidate")), _code(r.get("formula")),
                             _num(r.get("validation")), f"{_num(r.get('test_mean'))} ± {_num(r.get('test_std'))}",
                             _num(mean_epochs, 0)])
            lines += _table(["loss", "candidate", "formula", f"validation {mlabel}", f"test {mlabel}", "epochs"], rows)
        else:
            lines.append("No Phase III results recorded.")
        if run.phase3.get("reference"):
            lines += ["", f"Reference baseline: {_cell(run.phase3['reference'])}."]
        lines.append("")

    if run.phase3 is not None:
        lines += _survivors_section(run)

    drawn = [name for name in PLOTS if written.get(name)]
    if drawn:
        lines += ["## Plots", ""]
        for name in drawn:
            lines += [f"![{PLOTS[name][1]}]({name})", ""]
    lines += ["All candidates: [candidates.csv](candidates.csv)", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- writing

def write_report(run_dir: str | Path, out_dir: str | Path | None = None, top: int = 10) -> list[Path]:
    """Write the plots, candidates.csv and report.md; returns the paths written, in that order."""
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.path / "report"
    check_writable_dir(out)  # WriteError (an OSError) before any drawing: a file in the way, read-only media
    written: dict[str, bool] = {}
    paths = []
    for name, (draw, _) in PLOTS.items():
        data = draw(run)
        written[name] = data is not None
        if data is not None:
            write_bytes_atomic(out / name, data)
            paths.append(out / name)
    write_text_atomic(out / "candidates.csv", to_csv(run))
    paths.append(out / "candidates.csv")
    if run.phase3 is not None:
        write_text_atomic(out / "survivors.csv", survivors_csv(run))
        paths.append(out / "survivors.csv")
    write_text_atomic(out / "report.md", markdown(run, top, written))
    paths.append(out / "report.md")
    return paths
