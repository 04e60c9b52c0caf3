"""Wasted proposals: distinct functions per 10,000 proposals of each strategy, under the `paper`
preset (before: strategies re-propose what they have seen, rewards from a moving recommender)
and the `lossgen` preset (after: novelty, rewards from the fixed reference state).

Each arm is a real Phase I run (`lossgen.phases.search`) stopped after `--proposals` sampled
candidates. Distinct functions are counted with one definition for both presets: the fingerprint
of d f / d y_hat on the probe grid under the symmetric clamp at every epsilon of the lossgen
preset's grid (`lossgen.phases.proxy.probe_fingerprints`), so a count does not depend on the
preset's own clamp. Also printed: the share of proposals that were duplicates of an earlier
proposal by that definition, the run's own duplicate count, and the distinct functions that pass
the strict Phase II.

    python bench/proposals.py --data-dir ../shared/data          # ML-100K, MF, 10,000 proposals per arm

Writes bench/results/proposals.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench_env import environment, results_path
from lossgen.data import load
from lossgen.ir.programs import Program
from lossgen.phases.check import check_candidates
from lossgen.phases.proxy import probe_fingerprints
from lossgen.phases.search import LossSearch
from lossgen.phases.settings import DEFAULT_EPS_GRID, SearchConfig, SearchLimits, run_config
from lossgen.runs import RunStore

COMMON_CLAMP = "symmetric"


def arm(dataset, spec: str, preset: str, strategy: str, proposals: int, seed: int) -> dict:
    config = SearchConfig.from_preset(preset, strategy=strategy, seed=seed,
                                      strategy_config={"op_set": "paper", "max_steps": 7,
                                                       **({"novelty": True} if preset == "lossgen" else {})})
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore.open_or_create(Path(tmp) / "run", run_config(config.resolved(dataset), dataset, spec))
        start = time.perf_counter()
        result = LossSearch(dataset, store, config).run(SearchLimits(max_sampled=proposals))
        seconds = time.perf_counter() - start
        rows = store.candidates()[:proposals]
        store.close()
    programs = [Program(r.program) for r in rows]
    common = probe_fingerprints(programs, COMMON_CLAMP, DEFAULT_EPS_GRID)
    first = {}
    for k, fp in enumerate(common):
        first.setdefault(fp, k)
    distinct = sorted(first.values())
    passing: set[int] = set()
    for eps in DEFAULT_EPS_GRID:  # a function passes when it passes at some epsilon of the grid
        checked = check_candidates([programs[k] for k in distinct], [eps] * len(distinct), COMMON_CLAMP, strict=True)
        passing |= {k for k, ok in zip(distinct, checked.passed) if ok}
    scale = 10_000 / len(rows)
    return {"preset": preset, "strategy": strategy, "proposals": len(rows), "seconds": seconds,
            "distinct_per_10k": len(first) * scale, "duplicate_share": 1 - len(first) / len(rows),
            "run_duplicates": result.totals["duplicates"], "strict_passing_distinct_per_10k": len(passing) * scale}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--strategies", default="rl,evolution,random")
    parser.add_argument("--proposals", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    dataset = load(args.dataset, args.data_dir)
    rows = [arm(dataset, args.dataset, preset, strategy, args.proposals, args.seed)
            for strategy in args.strategies.split(",") for preset in ("paper", "lossgen")]
    print(f"{args.dataset} (MF), {args.proposals:,} proposals per arm, seed {args.seed}; distinct functions by "
          f"the fingerprint under the {COMMON_CLAMP} clamp at e in {DEFAULT_EPS_GRID}")
    print(f"{'strategy':<11}{'preset':<9}{'distinct/10k':>13}{'duplicates':>12}{'pass strict/10k':>17}{'seconds':>9}")
    for r in rows:
        print(f"{r['strategy']:<11}{r['preset']:<9}{r['distinct_per_10k']:>13,.0f}{r['duplicate_share']:>12.1%}"
              f"{r['strict_passing_distinct_per_10k']:>17,.0f}{r['seconds']:>9.1f}")
    out = results_path("proposals.json")
    out.write_text(json.dumps({"environment": environment(), "args": vars(args), "arms": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
