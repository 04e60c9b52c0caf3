"""The comparison's report: compare.md, compare.csv (one row per run), compare.json (everything)
and PNG plots, all written atomically into the comparison directory.

    anytime_evaluations.png  best-so-far reward vs full evaluations (log axis), mean and mean ± std band over seeds
    anytime_time.png         the same vs search seconds
    proxy_fidelity.png       one-epoch search reward vs Phase III test metric, per candidate
    validation.png           the recommender's validation metric over rounds, per strategy
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from lossgen.util.atomic import write_bytes_atomic
from lossgen.compare.plan import ComparePlan, run_name
from lossgen.compare.summary import MEASURES
from lossgen.reports.markdown import code as _code, table as _table
from lossgen.reports.plots import figure as _figure, png as _png

CSV_FIELDS = ("strategy", "seed", "reached_budget", "rounds", "sampled", "zero_gradient", "duplicates", "evaluated",
              "accepted", "elapsed", "best_reward", "distinct", "passing", "best_loss", "best_loss_formula",
              "best_test", "vs_baseline")
PLOTS = ("anytime_evaluations.png", "anytime_time.png", "proxy_fidelity.png", "validation.png")
COUNT_MEASURES = {"sampled", "zero_gradient", "duplicates", "evaluated", "passing"}


def _fmt(value, digits: int = 4, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _spread(d: dict, key: str, seeds: int) -> str:
    """mean ± std [min, max] of a describe() dict, and how many seeds it covers when not all
    (a run with no candidate passing Phase II has no best loss)."""
    if not d["n"]:
        return "–"
    digits = 0 if key in COUNT_MEASURES else 1 if key == "elapsed" else 4
    signed = key in ("best_reward", "vs_baseline")
    lo, hi = _fmt(d["min"], digits, signed), _fmt(d["max"], digits, signed)
    partial = f" ({d['n']} of {seeds} seeds)" if d["n"] < seeds else ""
    return f"{_fmt(d['mean'], digits, signed)} ± {_fmt(d['std'], digits)} [{lo}, {hi}]{partial}"


def _p(c: dict) -> str:
    if c["wilcoxon_p"] is None:
        return "–"
    return f"{c['wilcoxon_p']:.3g} (min {c['min_p']:.3g})"  # 0.0625 stays 0.0625


def _interval(c: dict) -> str:
    if c["mean_difference"] is None:
        return "–"
    lo, hi = c["interval"]
    return f"{c['mean_difference']:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def markdown(plan: ComparePlan, measures: dict[str, dict], summary: dict, phase3: dict, command: str | None) -> str:
    metric = summary["metric"].upper()
    s = plan.search
    lines = [f"# Strategy comparison: {', '.join(plan.strategies)} on {plan.dataset} ({s.get('model')}, {s.get('task')})", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    baselines = f"the baselines {plan.baselines}" if plan.baselines.strip() else "no baselines"
    lower = " (lower is better)" if metric == "RMSE" else ""
    if plan.selection == "race":
        chosen = (f"every distinct candidate of a run passing Phase II (rate >= {plan.threshold:g}) races on "
                  f"validation (successive halving at epochs {', '.join(map(str, plan.rungs))}, each epsilon of the "
                  f"grid a racer), the {plan.survivors} best of every run train to convergence")
    else:
        chosen = (f"the top {plan.top} distinct candidates of every run by search reward passing Phase II "
                  f"(rate >= {plan.threshold:g})")
    preset = s.get("preset", "paper")
    lines += [f"{len(plan.seeds)} seeds ({', '.join(map(str, plan.seeds))}) per strategy; preset {preset}; budget "
              f"{plan.budget} full candidate evaluations per run"
              + (f", search time limit {plan.limits['time_limit']:g} s" if plan.limits.get("time_limit") else "")
              + f"; Phase III: {chosen}, next to {baselines}, Phase III seeds: {plan.phase3_seeds}, "
              f"one shared population. Cells: mean ± std [min, max] over seeds."
              + (" Test RMSE: lower is better." if lower else ""), ""]
    head = ["measure"] + list(plan.strategies)
    rows = [[label.format(metric=metric)] + [_spread(summary["per_strategy"][st][key], key, len(plan.seeds)) for st in plan.strategies]
            for key, label in MEASURES.items()]
    rows.append(["runs that spent the whole budget"] +
                [f"{summary['per_strategy'][st]['reached_budget']} of {len(plan.seeds)}" for st in plan.strategies])
    lines += _table(head, rows) + [""]
    if summary["reference_test"] is not None:
        lines += [f"Best baseline (chosen on validation): {summary['reference']}, test {metric} "
                  f"{summary['reference_test']:.4f}.", ""]

    lines += ["## Paired tests between strategies", "",
              "Paired by seed (same data split and initial recommender). Difference = a - b; interval: bootstrap 95% "
              "over seeds (10,000 resamples); p: exact two-sided Wilcoxon signed-rank test (zero differences "
              "dropped). With n seeds no exact p can fall below 2/2^n (shown as min).", ""]
    label = {"best_reward": "best validation reward", "best_test": f"test {metric} of best loss{lower}"}
    rows = [[f"{c['a']} - {c['b']}", label[c["measure"]], str(c["n"]), _interval(c), f"{c['wins']}/{c['ties']}/{c['losses']}", _p(c)]
            for c in summary["paired"]]
    lines += _table(["pair", "measure", "n", "difference [95% interval]", "seeds a better/equal/worse", "Wilcoxon p"],
                    rows) + [""]

    if summary["reference"] is not None:
        lines += ["## Best loss against the best baseline", "",
                  f"Per seed: the run's best loss (best Phase III validation among its candidates) minus "
                  f"{summary['reference']} on test {metric}{lower}. The baseline is trained once in the shared Phase III, "
                  f"so this is a one-sample test of the differences (the interval leaves out the baseline's own "
                  f"seed-to-seed variation); Phase III's paired bootstrap over test examples for each run's best loss "
                  f"is in the run table.", ""]
        rows = [[st, str(c["n"]), _interval(c), f"{c['wins']}/{c['ties']}/{c['losses']}", _p(c)]
                for st, c in summary["vs_baseline"].items()]
        lines += _table(["strategy", "n", "difference [95% interval]", "seeds better/equal/worse", "Wilcoxon p"],
                        rows) + [""]
    elif plan.baselines.strip():
        lines += [f"None of the baselines {plan.baselines} is a handcrafted baseline (BCE, MSE, Hinge, Focal): "
                  "no best-baseline comparison.", ""]
    lines += ["## Proxy fidelity", "",
              "Spearman's rank correlation between a candidate's one-epoch search reward and its Phase III result "
              f"(validation and test {metric}{', negated' if metric == 'RMSE' else ''}), over the candidates that "
              "reached Phase III, one point per (run, candidate). 1 would mean the search's reward ranks losses "
              "exactly as full training does.", ""]
    rows = [[g, str(v["n"]), _fmt(v["validation"], 3, True), _fmt(v["test"], 3, True)]
            for g, v in summary["fidelity"]["spearman"].items()]
    lines += _table(["candidates", "n", "rho (validation)", "rho (test)"], rows) + [""]

    lines += ["## Runs", ""]
    rows = []
    for st, seed in plan.runs():
        m = measures[run_name(st, seed)]
        best = m.get("best_loss")
        ref = best["phase3"]["vs_reference"] if best else None
        boot = f"{ref['difference']:+.4f} [{ref['ci95'][0]:+.4f}, {ref['ci95'][1]:+.4f}]" if ref else "–"
        rows.append([st, str(seed), f"{m['evaluated']}{'' if m['reached_budget'] else ' (stopped early)'}",
                     f"{m['sampled']:,}", f"{m['elapsed']:.1f}", _fmt(m["best_reward"], 4, True), str(m["passing"]),
                     _code(best["formula"]) if best else "–", _fmt(m["best_test"]), boot])
    versus = f"vs {summary['reference']} (bootstrap 95%)" if summary["reference"] else "vs baseline"
    lines += _table(["strategy", "seed", "evaluated", "sampled", "seconds", "best reward", "pass II",
                     "best loss", f"test {metric}", versus], rows) + [""]

    lines += [f"## Phase III ({phase3['runs']} training runs, {phase3['epochs_trained']:,} run-epochs)", ""]
    rows = [[e["name"], _code(e["formula"]) if e["kind"] == "candidate" else "", e.get("named") or "",
             _fmt(e["validation"]), f"{_fmt(e['test_mean'])} ± {_fmt(e['test_std'])}"]
            for e in sorted(phase3["results"], key=lambda e: -e["validation"] if metric != "RMSE" else e["validation"])]
    lines += _table(["loss", "formula", "named loss", f"validation {metric}", f"test {metric}"], rows) + [""]
    lines += ["Named loss: the handcrafted or paper loss whose derivative the program's equals (`=`, a constant "
              "apart; `= 2 x MSE`: proportional) or is within 5% of (`≈`) on 0/1 labels "
              "(lossgen.training.equivalence).", ""]
    lines += ["## Plots", ""] + [f"![{p[:-4]}]({p})" for p in PLOTS] + [""]
    return "\n".join(lines)


def to_csv(plan: ComparePlan, measures: dict[str, dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for st, seed in plan.runs():
        m = measures[run_name(st, seed)]
        best = m.get("best_loss")
        writer.writerow({**{k: m.get(k) for k in CSV_FIELDS}, "strategy": st, "seed": seed,
                         "best_loss": best["id"] if best else None, "best_loss_formula": best["formula"] if best else None})
    return buffer.getvalue()


def plot_anytime(plan: ComparePlan, summary: dict, axis: str) -> bytes:
    fig, ax = _figure()
    curves = summary["curves"]
    x = np.array(curves["evaluations" if axis == "by_evaluation" else "seconds"])
    for st in plan.strategies:
        band = curves["strategies"][st][axis]
        mean, lo, hi = (np.array([np.nan if v is None else v for v in band[k]], dtype=float) for k in ("mean", "lo", "hi"))
        line, = ax.plot(x, mean, label=st, drawstyle="steps-post")
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0, step="post")
    if axis == "by_evaluation":
        ax.set_xscale("log")  # the early evaluations decide most: rewards from a fresh recommender are large
    ax.set_xlabel("full candidate evaluations" if axis == "by_evaluation" else "search time (s)")
    ax.set_ylabel("best reward so far")
    ax.set_title(f"Anytime performance (mean ± std over {len(plan.seeds)} seeds)")
    ax.legend()
    return _png(fig)


def plot_fidelity(plan: ComparePlan, summary: dict) -> bytes:
    fig, ax = _figure()
    for st in plan.strategies:
        pts = [p for p in summary["fidelity"]["points"] if p["strategy"] == st]
        ax.scatter([p["reward"] for p in pts], [p["test"] for p in pts], label=st, alpha=0.7)
    ax.set_xlabel("one-epoch search reward")
    ax.set_ylabel(f"Phase III test {summary['metric'].upper()}")
    rho = summary["fidelity"]["spearman"]["all"]["test"]
    ax.set_title(f"Proxy fidelity (Spearman rho = {_fmt(rho, 3, True)})")
    ax.legend()
    return _png(fig)


def plot_validation(plan: ComparePlan, measures: dict[str, dict], metric: str) -> bytes:
    fig, ax = _figure()
    colors = {}
    for st, seed in plan.runs():
        pts = measures[run_name(st, seed)]["validation_by_round"]
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colors.get(st), alpha=0.7,
                        label=None if st in colors else st, drawstyle="steps-post")
        colors[st] = line.get_color()
    ax.set_xlabel("round")
    ax.set_ylabel(f"validation {metric.upper()} of the recommender")
    ax.set_title("The recommender during the search (one line per run)")
    ax.legend()
    return _png(fig)


def write_report(out: Path, plan: ComparePlan, measures: dict[str, dict], summary: dict, phase3: dict,
                 command: str | None = None) -> list[Path]:
    out = Path(out)
    files = {
        "compare.md": markdown(plan, measures, summary, phase3, command).encode(),
        "compare.csv": to_csv(plan, measures).encode(),
        "compare.json": (json.dumps({"plan": plan.to_dict(), "command": command, "summary": summary,
                                     "runs": measures, "phase3": phase3}, indent=1) + "\n").encode(),
        "anytime_evaluations.png": plot_anytime(plan, summary, "by_evaluation"),
        "anytime_time.png": plot_anytime(plan, summary, "by_time"),
        "proxy_fidelity.png": plot_fidelity(plan, summary),
        "validation.png": plot_validation(plan, measures, summary["metric"]),
    }
    paths = []
    for name, data in files.items():
        write_bytes_atomic(out / name, data)
        paths.append(out / name)
    return paths
