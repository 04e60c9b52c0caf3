"""From per-run measures and the shared Phase III to the comparison's numbers.

Per strategy, over seeds: mean, spread (sample std, min, max) of every measure. Between every
two strategies, paired by seed: the mean difference with a bootstrap 95% interval (resampling
seeds) and the exact Wilcoxon signed-rank p-value. Against the best baseline: the same test on
(best loss - reference baseline) per seed, next to Phase III's own paired bootstrap over test
examples. Proxy fidelity: Spearman's rank correlation between a candidate's one-epoch search
reward and its Phase III validation and test utility (AUC, or -RMSE), over the candidates that
reached Phase III, one point per (run, candidate).

A run's best loss is the candidate with the best Phase III VALIDATION metric among those it
sent; the test value is then read off, never used to choose.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from lossgen.compare import stats
from lossgen.compare.plan import ComparePlan, run_name

# measure key -> label (the test rows are added with the metric's name)
MEASURES = {
    "best_reward": "best validation reward",
    "sampled": "candidates sampled",
    "zero_gradient": "skipped by the proxy test (zero gradient)",
    "duplicates": "duplicates",
    "evaluated": "evaluated",
    "elapsed": "search time (s)",
    "passing": "distinct losses passing Phase II",
    "best_test": "test {metric} of the best loss",
    "vs_baseline": "best loss - best baseline (test {metric})",
}
PAIRED = ("best_reward", "best_test")
CURVE_POINTS = 200
CURVE_EVALUATION_POINTS = 1000


def reference_entry(phase3: dict) -> dict | None:
    """The Phase III result of the best baseline (None without baselines)."""
    return next((e for e in phase3["results"] if e["name"] == phase3["reference"]), None)


def join_phase3(measures: dict[str, dict], phase3: dict) -> None:
    """Add each run's Phase III results and its best loss (chosen on validation) in place."""
    higher = phase3["metric"] != "rmse"
    by_fp = {e["fingerprint"]: e for e in phase3["results"] if e["fingerprint"]}
    reference = reference_entry(phase3)
    for m in measures.values():
        for c in m["chosen"]:
            e = by_fp.get(c["fingerprint"])
            c["phase3"] = None if e is None else {"name": e["name"], "validation": e["validation"],
                                                  "test": e["test_mean"], "vs_reference": e["vs_reference"]}
        scored = [c for c in m["chosen"] if c["phase3"] is not None]
        best = max(scored, key=lambda c: c["phase3"]["validation"] * (1 if higher else -1), default=None)
        m["best_loss"] = best
        m["best_test"] = best["phase3"]["test"] if best else None
        m["vs_baseline"] = (best["phase3"]["test"] - reference["test_mean"]) if best and reference else None


def summarize(plan: ComparePlan, measures: dict[str, dict], phase3: dict) -> dict:
    metric = phase3["metric"]
    join_phase3(measures, phase3)
    by_strategy = {s: [measures[run_name(s, seed)] for seed in plan.seeds] for s in plan.strategies}
    per_strategy = {s: {key: stats.describe([m[key] for m in runs]) for key in MEASURES}
                    for s, runs in by_strategy.items()}
    for s, runs in by_strategy.items():
        per_strategy[s]["reached_budget"] = sum(m["reached_budget"] for m in runs)
    lower_better = metric == "rmse"  # the test metric; rewards are utilities (higher is better)
    paired = []
    for a, b in combinations(plan.strategies, 2):
        for key in PAIRED:
            values = [{seed: measures[run_name(s, seed)][key] for seed in plan.seeds} for s in (a, b)]
            higher = not (lower_better and key == "best_test")
            paired.append({"a": a, "b": b, "measure": key, **stats.paired_comparison(*values, higher_is_better=higher)})
    reference = reference_entry(phase3)
    vs_baseline = {}
    for s in plan.strategies:
        best = {seed: measures[run_name(s, seed)]["best_test"] for seed in plan.seeds}
        ref = {seed: reference["test_mean"] for seed in plan.seeds} if reference else {}
        vs_baseline[s] = stats.paired_comparison(best, ref, higher_is_better=not lower_better)
    return {
        "metric": metric,
        "reference": phase3["reference"],
        "reference_test": reference["test_mean"] if reference else None,
        "per_strategy": per_strategy,
        "paired": paired,
        "vs_baseline": vs_baseline,
        "fidelity": proxy_fidelity(plan, measures, metric),
        "curves": anytime_curves(plan, measures),
    }


def proxy_fidelity(plan: ComparePlan, measures: dict[str, dict], metric: str) -> dict:
    sign = -1.0 if metric == "rmse" else 1.0  # correlate with utility: higher is better on both axes
    points = [{"strategy": s, "seed": seed, "id": c["id"], "formula": c["formula"], "reward": c["reward"],
               "validation": c["phase3"]["validation"], "test": c["phase3"]["test"]}
              for s in plan.strategies for seed in plan.seeds
              for c in measures[run_name(s, seed)]["chosen"] if c["phase3"] is not None]

    def rho(subset: list[dict], field: str):
        return stats.spearman([p["reward"] for p in subset], [sign * p[field] for p in subset])

    groups = {"all": points, **{s: [p for p in points if p["strategy"] == s] for s in plan.strategies}}
    return {"points": points,
            "spearman": {g: {"n": len(ps), "validation": rho(ps, "validation"), "test": rho(ps, "test")}
                         for g, ps in groups.items()}}


def anytime_curves(plan: ComparePlan, measures: dict[str, dict]) -> dict:
    """Best-so-far reward per strategy (mean and band over seeds) against evaluations and time."""
    # evaluations up to the most any run made (a budget may be far above it: a time-limited
    # comparison), at most CURVE_EVALUATION_POINTS of them
    reached = max(1, min(plan.budget, max((int(m["evaluated"]) for m in measures.values()), default=1)))
    evaluations = np.unique(np.linspace(1, reached, min(reached, CURVE_EVALUATION_POINTS)).round())
    longest = max((m["elapsed"] for m in measures.values()), default=0.0)
    seconds = np.linspace(0.0, max(longest, 1e-9), CURVE_POINTS)
    out = {"evaluations": evaluations.tolist(), "seconds": seconds.tolist(), "strategies": {}}
    for s in plan.strategies:
        runs = [measures[run_name(s, seed)] for seed in plan.seeds]
        curves = {}
        for axis, grid in (("by_evaluation", evaluations), ("by_time", seconds)):
            rows = [stats.best_so_far([p[0] for p in m[axis]], [p[1] for p in m[axis]], grid) for m in runs]
            curves[axis] = {k: _json_array(v) for k, v in stats.band(np.array(rows)).items()}
        out["strategies"][s] = curves
    return out


def _json_array(values) -> list:
    return [None if (isinstance(v, float) and not np.isfinite(v)) else v for v in np.asarray(values).tolist()]
