"""Table 7 of the paper: candidates sampled in a fixed wall time with and without the proxy test.

Both arms run the full Phase I pipeline (`lossgen.phases.search`) with the same strategy, data,
recommender and seed for `--seconds` of search time each:
  with proxy:    fingerprint duplicates + zero-gradient and gradient-duplicate tests (default);
  without proxy: `proxy=False, dedupe=False`: every sampled candidate trains for one epoch.
The ratio of candidates sampled is printed beside the paper's (93,792 vs 3,200 in 24 h, ~29x).

    python bench/search.py --data-dir ../shared/data              # ML-100K, MF, rl, 120 s per arm
    python bench/search.py --seconds 30 --strategy evolution

Writes bench/results/search_table7.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench_env import environment, results_path
from lossgen.data import load
from lossgen.phases.search import LossSearch
from lossgen.phases.settings import SearchConfig, SearchLimits, run_config
from lossgen.runs import RunStore

PAPER = {"with proxy": 93_792, "without proxy": 3_200, "hours": 24}


def arm(dataset, spec: str, strategy: str, seconds: float, seed: int, proxy: bool) -> dict:
    config = SearchConfig.from_preset("paper", strategy=strategy, seed=seed, proxy=proxy, dedupe=proxy)
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore.open_or_create(Path(tmp) / "run", run_config(config.resolved(dataset), dataset, spec))
        result = LossSearch(dataset, store, config).run(SearchLimits(time_limit=seconds))
        store.close()
    t = result.totals
    return {"proxy": proxy, "seconds": result.elapsed, "rounds": result.rounds, **t,
            "sampled_per_s": t["sampled"] / result.elapsed, "evaluated_per_s": t["evaluated"] / result.elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--strategy", default="rl")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    dataset = load(args.dataset, args.data_dir)
    with_proxy = arm(dataset, args.dataset, args.strategy, args.seconds, args.seed, True)
    without = arm(dataset, args.dataset, args.strategy, args.seconds, args.seed, False)
    ratio = with_proxy["sampled"] / max(without["sampled"], 1)
    paper_ratio = PAPER["with proxy"] / PAPER["without proxy"]
    print(f"{args.strategy} on {args.dataset} (MF), {args.seconds:g} s of search per arm")
    print(f"{'':16}{'sampled':>10}{'evaluated':>11}{'sampled/s':>11}   paper (24 h)")
    print(f"{'with proxy':16}{with_proxy['sampled']:>10,}{with_proxy['evaluated']:>11,}"
          f"{with_proxy['sampled_per_s']:>11.1f}   {PAPER['with proxy']:,}")
    print(f"{'without proxy':16}{without['sampled']:>10,}{without['evaluated']:>11,}"
          f"{without['sampled_per_s']:>11.1f}   {PAPER['without proxy']:,}")
    print(f"ratio sampled with / without: {ratio:.1f}x (paper {paper_ratio:.1f}x)")
    out = results_path("search_table7.json")
    out.write_text(json.dumps({"environment": environment(), "args": vars(args), "with_proxy": with_proxy,
                               "without_proxy": without, "ratio": ratio, "paper": PAPER,
                               "paper_ratio": paper_ratio}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
