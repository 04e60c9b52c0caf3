"""Time to discovery: search time until the first found loss whose Phase III validation AUC beats
the best baseline's, per strategy and seed, against the paper's 2 days to a week of GPU search.

It runs (or resumes) a `lossgen compare` with the default (`lossgen`) preset and a search time
limit per run, then reads the comparison directory: a run's winners are the losses of its Phase III
(the race's survivors for that run) whose mean validation metric over seeds beats the reference
baseline's (the baseline with the best validation metric; selection on validation only, the test
split is not used here). A winner's discovery time is the run's accumulated search time at the end
of the round in which the run first proposed that function (same fingerprint); the run's time to
discovery is the earliest of them. Phase III's cost (race and training to convergence, shared by
every run of the comparison) is printed beside it.

    python bench/discovery.py --data-dir ../shared/data --out /tmp/discovery            # 3 strategies x 1 seed, 2 min each
    python bench/discovery.py --out docs/results/compare-ml100k-mf-lossgen --analyse-only  # an existing comparison

Writes bench/results/discovery.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bench_env import environment, results_path
from lossgen.compare.plan import PLAN_FILE, ComparePlan, run_dir, run_name, shared_search
from lossgen.compare.runner import run_compare
from lossgen.phases.settings import Phase3Settings, SearchConfig
from lossgen.runs import RunStore

PAPER = "2 days to a week of search on a GPU (the paper, section 5)"
GOAL_S = 600.0  # the discovery issue's goal: a winner within 10 minutes of search per run


def plan_from_args(args) -> ComparePlan:
    return ComparePlan(strategies=tuple(args.strategies.split(",")), seeds=tuple(range(args.seeds)),
                       budget=10**9, dataset=args.dataset, data_dir=args.data_dir,
                       search=shared_search(SearchConfig()),
                       limits={"time_limit": args.time_limit, "patience": 10**9}, phase3_seeds=args.phase3_seeds,
                       max_epochs=args.max_epochs, selection="race", survivors=Phase3Settings.survivors)


def first_proposed(store: RunStore) -> dict[str, float]:
    """fingerprint -> accumulated search time (s) at the end of the round that first proposed it."""
    elapsed = {r.round: r.elapsed for r in store.rounds()}
    out: dict[str, float] = {}
    for c in store.candidates():
        if c.fingerprint is not None and c.fingerprint not in out and elapsed.get(c.round) is not None:
            out[c.fingerprint] = elapsed[c.round]
    return out


def analyse(out: Path) -> dict:
    """Per run: its winners and the time to the first of them (None: no winner)."""
    plan = ComparePlan.from_dict(json.loads((out / PLAN_FILE).read_text())["plan"])
    phase3 = json.loads((out / "phase3" / "phase3.json").read_text())
    higher = phase3["metric"] != "rmse"
    sign = 1 if higher else -1
    reference = next(e for e in phase3["results"] if e["name"] == phase3["reference"])
    by_fp = {e["fingerprint"]: e for e in phase3["results"] if e["fingerprint"]}
    groups = (phase3.get("race") or {}).get("groups", {})
    runs = {}
    for strategy, seed in plan.runs():
        name = run_name(strategy, seed)
        store = RunStore.open_readonly(run_dir(out, strategy, seed))
        try:
            found = first_proposed(store)
            searched = store.rounds()[-1].elapsed if store.rounds() else None
        finally:
            store.close()
        mine = groups.get(name, [fp for fp in by_fp if fp in found])
        winners = [by_fp[fp] for fp in mine if fp in by_fp
                   and sign * by_fp[fp]["validation"] > sign * reference["validation"]]
        times = sorted(found[e["fingerprint"]] for e in winners)
        best = max(winners, key=lambda e: sign * e["validation"], default=None)
        runs[name] = {"strategy": strategy, "seed": seed, "search_s": searched, "winners": len(winners),
                      "first_winner_s": times[0] if times else None,
                      "best": None if best is None else {"formula": best["formula"], "validation": best["validation"],
                                                          "test": best["test_mean"]}}
    return {"reference": {"name": reference["name"], "validation": reference["validation"],
                          "test": reference["test_mean"]},
            "phase3": {"racer_epochs": (phase3.get("race") or {}).get("epochs_trained"),
                       "run_epochs": phase3.get("epochs_trained")},
            "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the comparison directory (created or resumed)")
    parser.add_argument("--analyse-only", action="store_true", help="read an existing comparison, run nothing")
    parser.add_argument("--strategies", default="rl,evolution,random")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=120.0, help="search seconds per run")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--max-epochs", type=int, default=1000, help="Phase III epoch cap")
    parser.add_argument("--phase3-seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    wall = None
    if not args.analyse_only:
        start = time.perf_counter()
        run_compare(plan_from_args(args), args.out, jobs=args.jobs)
        wall = time.perf_counter() - start
    result = analyse(args.out)
    ref = result["reference"]
    print(f"best baseline on validation: {ref['name']} (validation {ref['validation']:.4f}, test {ref['test']:.4f})")
    print(f"{'strategy':<11}{'runs':>5}{'with a winner':>15}   {'first winner (search s)':<32}best winner: val / test")
    by_strategy: dict[str, list[dict]] = {}
    for r in result["runs"].values():
        by_strategy.setdefault(r["strategy"], []).append(r)
    summary = {}
    for strategy, rows in by_strategy.items():
        times = [r["first_winner_s"] for r in rows if r["first_winner_s"] is not None]
        shown = (f"median {statistics.median(times):.0f} (min {min(times):.0f}, max {max(times):.0f})"
                 if times else "none")
        best = max((r["best"] for r in rows if r["best"]), key=lambda b: b["validation"], default=None)
        print(f"{strategy:<11}{len(rows):>5}{len(times):>15}   {shown:<32}"
              + (f"{best['validation']:.4f} / {best['test']:.4f}" if best else "-"))
        summary[strategy] = {"runs": len(rows), "with_winner": len(times), "first_winner_s": times,
                             "within_goal": sum(t <= GOAL_S for t in times)}
    p3 = result["phase3"]
    print(f"Phase III (shared by all runs): race {p3['racer_epochs']} racer-epochs, then {p3['run_epochs']} "
          f"run-epochs to convergence" + (f"; whole comparison {wall:.0f} s wall" if wall is not None else ""))
    print(f"goal: a winner within {GOAL_S:.0f} s of search per run; anchor: {PAPER}")
    path = results_path("discovery.json")
    path.write_text(json.dumps({"environment": environment(), "args": {**vars(args), "out": str(args.out)},
                                "wall_s": wall, "summary": summary, "goal_s": GOAL_S, "paper": PAPER, **result},
                               indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
