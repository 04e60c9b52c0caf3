"""Figure 5b of the paper: validation AUC over rounds with and without reward filtering.

Both arms run the full Phase I pipeline (`lossgen.phases.search`) with the same strategy, data,
recommender and seed for `--rounds` rounds each, once per seed 0..`--seeds`-1:
  with filtering:    a candidate's trained copy is accepted only if its reward (change of the
                     validation AUC) >= -eta, and the recommender moves to the best accepted copy
                     (default);
  without filtering: `filtering=False`: the recommender moves to a uniformly drawn evaluated copy
                     whatever its reward (docs/pipeline.md, "Reward filtering").
Same seed, same initial recommender and first batch order; the arms diverge once they move to
different copies. The paper reports (Figure 5b, qualitatively) that with filtering the validation
AUC climbs steadily, while without it the AUC fluctuates and stays lower.

    python bench/filtering.py --data-dir ../shared/data              # ML-100K, MF, rl, 100 rounds, 3 seeds
    python bench/filtering.py --data-dir ../shared/data --rounds 400 --seeds 20   # the stored plot, ~15 min
    python bench/filtering.py --rounds 40 --seeds 2 --strategy evolution

Prints the mean validation AUC at selected rounds and per-arm summaries (final, max, mean over
rounds, rounds where the AUC fell, moves). Writes bench/results/search_filtering.json (per-seed,
per-round curves of both arms) and bench/results/search_filtering.png (`--plot`): validation AUC
vs round, the mean over seeds with a min-max band per arm.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
from pathlib import Path

from bench_env import environment, results_path
from lossgen.data import load
from lossgen.phases.search import LossSearch, RoundReport
from lossgen.phases.settings import SearchConfig, SearchLimits, run_config
from lossgen.runs import RunStore

ARMS = {"filtering": True, "no_filtering": False}
LABELS = {"filtering": "with filtering", "no_filtering": "without filtering"}
PAPER = "Figure 5b (qualitative): with reward filtering the validation AUC climbs steadily; " \
        "without it the AUC fluctuates and stays lower"


def arm(dataset, spec: str, strategy: str, rounds: int, seed: int, filtering: bool) -> dict:
    """One search of `rounds` rounds; the recommender's validation AUC before and after each round."""
    config = SearchConfig.from_preset("paper", strategy=strategy, seed=seed, filtering=filtering)
    curve: list[dict] = []

    def progress(report: RoundReport) -> None:
        curve.append({"round": report.round, "validation": report.validation, "evaluated": report.evaluated,
                      "accepted": report.accepted, "zero_gradient": report.zero_gradient,
                      "duplicates": report.duplicates, "moved": report.moved_to is not None,
                      "elapsed": report.elapsed})

    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore.open_or_create(Path(tmp) / "run", run_config(config.resolved(dataset), dataset, spec))
        result = LossSearch(dataset, store, config).run(SearchLimits(max_rounds=rounds), progress)
        initial = store.get_meta("initial")["validation"]
        store.close()
    values = [initial] + [r["validation"] for r in curve]
    return {"seed": seed, "filtering": filtering, "initial": initial, "curve": curve,
            "rounds": result.rounds, "seconds": result.elapsed, "totals": result.totals,
            "moves": sum(r["moved"] for r in curve),
            "falls": sum(b < a for a, b in zip(values, values[1:])),
            "final": values[-1], "max": max(values), "mean": statistics.fmean(values[1:])}


def columns(curve: list[dict]) -> dict[str, list]:
    """A per-round curve as one list per field (validation rounded to 6 decimals, elapsed to ms)."""
    digits = {"validation": 6, "elapsed": 3}
    keys = curve[0].keys() if curve else ()
    return {key: [round(r[key], digits[key]) if key in digits else r[key] for r in curve] for key in keys}


_SCALARS = r"(?:-?[0-9.eE+-]+|true|false|null)"


def dumps(obj) -> str:
    """JSON indented like the other bench results, with lists of numbers kept on one line."""
    text = json.dumps(obj, indent=2)
    return re.sub(rf"\[\s*({_SCALARS}(?:,\s*{_SCALARS})*)\s*\]",
                  lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)


def mean_curve(runs: list[dict]) -> list[float]:
    n = min(len(r["curve"]) for r in runs)
    return [statistics.fmean(r["curve"][i]["validation"] for r in runs) for i in range(n)]


def summarize(runs: list[dict]) -> dict:
    return {key: statistics.fmean(r[key] for r in runs) for key in ("final", "max", "mean", "falls", "moves")} | {
        "evaluated": statistics.fmean(r["totals"]["evaluated"] for r in runs),
        "final_min": min(r["final"] for r in runs), "final_max": max(r["final"] for r in runs)}


def selected_rounds(n: int) -> list[int]:
    if n >= 100:
        picks = [0, 10, 25, 50, 75] + [round(n * f) for f in (0.25, 0.5, 0.75)]
    else:
        picks = [round(n * f) for f in (0, 0.1, 0.25, 0.5, 0.75)]
    return sorted({p for p in picks if p < n} | {n - 1})


def plot(runs: dict[str, list[dict]], initial: float, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # the object-oriented API, as lossgen/reports/plots.py

    fig = Figure(figsize=(6.4, 4.0), dpi=100, layout="constrained")
    ax = fig.subplots()
    for name, color in (("filtering", "tab:blue"), ("no_filtering", "tab:red")):
        group = runs[name]
        n = min(len(r["curve"]) for r in group)
        xs = list(range(-1, n))
        per_seed = [[r["initial"]] + [p["validation"] for p in r["curve"][:n]] for r in group]
        mean = [statistics.fmean(col) for col in zip(*per_seed)]
        ax.fill_between(xs, [min(col) for col in zip(*per_seed)], [max(col) for col in zip(*per_seed)],
                        color=color, alpha=0.2, linewidth=0)
        ax.plot(xs, mean, color=color, label=f"{LABELS[name]} (mean of {len(group)} seeds, band min-max)")
    ax.axhline(initial, color="gray", linestyle=":", linewidth=1, label="initial recommender")
    ax.set_xlabel("round (-1: before the search)")
    ax.set_ylabel("validation AUC of the recommender")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.savefig(path, format="png", metadata={"Software": None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--strategy", default="rl")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..n-1, both arms per seed")
    parser.add_argument("--plot", type=Path, default=None,
                        help="PNG path (default bench/results/search_filtering.png)")
    args = parser.parse_args()
    if args.rounds < 1 or args.seeds < 1:
        parser.error("--rounds and --seeds must be at least 1")
    dataset = load(args.dataset, args.data_dir)
    runs: dict[str, list[dict]] = {name: [] for name in ARMS}
    for seed in range(args.seeds):
        for name, filtering in ARMS.items():
            run = arm(dataset, args.dataset, args.strategy, args.rounds, seed, filtering)
            runs[name].append(run)
            print(f"seed {seed} {LABELS[name]:18} {run['rounds']} rounds in {run['seconds']:.1f} s: "
                  f"{run['totals']['evaluated']} evaluated, {run['moves']} moves, "
                  f"validation AUC {run['initial']:.4f} -> {run['final']:.4f}", flush=True)

    curves = {name: mean_curve(group) for name, group in runs.items()}
    n = min(len(c) for c in curves.values())
    print(f"\n{args.strategy} on {args.dataset} (MF), {args.rounds} rounds per arm, seeds 0..{args.seeds - 1}: "
          f"mean validation AUC of the recommender after the round")
    print(f"{'round':>7}{'filtering':>12}{'no filter':>12}{'diff':>10}")
    initial = statistics.fmean(r["initial"] for r in runs["filtering"])
    print(f"{'initial':>7}{initial:>12.4f}{initial:>12.4f}{0:>+10.4f}")
    for i in selected_rounds(n):
        a, b = curves["filtering"][i], curves["no_filtering"][i]
        print(f"{i:>7}{a:>12.4f}{b:>12.4f}{a - b:>+10.4f}")
    summary = {name: summarize(group) for name, group in runs.items()}
    f, u = summary["filtering"], summary["no_filtering"]
    print(f"{'':24}{'filtering':>12}{'no filter':>12}")
    for key, label, fmt in (("final", "final AUC", ".4f"), ("max", "max AUC", ".4f"),
                            ("mean", "mean AUC over rounds", ".4f"), ("falls", "rounds AUC fell", ".1f"),
                            ("moves", "rounds recommender moved", ".1f"), ("evaluated", "candidates evaluated", ".1f")):
        print(f"{label:24}{f[key]:>12{fmt}}{u[key]:>12{fmt}}")
    print(f"paper: {PAPER}")

    out = results_path("search_filtering.json")
    png = args.plot or results_path("search_filtering.png")
    stored = {name: [{**r, "curve": columns(r["curve"])} for r in group] for name, group in runs.items()}
    out.write_text(dumps({"environment": environment(), "args": {**vars(args), "plot": str(png)},
                          "initial": initial, "summary": summary,
                          "mean_curves": {name: [round(v, 6) for v in c] for name, c in curves.items()},
                          "runs": stored, "paper": PAPER}))
    plot(runs, initial, f"Validation AUC with / without reward filtering ({args.strategy}, {args.dataset}, MF)", png)
    print(f"wrote {out} and {png}")


if __name__ == "__main__":
    main()
