"""Search throughput: candidate programs proposed per second by each strategy.

One round is ask(n) -> reward -> tell(candidates, rewards) with the cheap toy reward
(`bench.toy_reward.GradientSignReward`, one compiled kernel call per round). The rate
counts ask + tell time only, the strategy's own cost; the reward's time is reported beside it.
Each configuration runs rounds for at least `--seconds` after a warm-up, three times; the table
shows the median. rl makes one REINFORCE update per tell (at least 10 rewards each), evolution
starts from its ramped half-and-half population and then breeds.

    python bench/sampling.py               # n = 10 and n = 256, all strategies
    python bench/sampling.py --quick       # shorter runs
    python bench/sampling.py --rl-threads 2  # also rl with 2 intra-op threads (default 1)

Writes bench/results/sampling.json (with CPU model, threads, torch version, git commit) and
prints a table. Target on the 2-core dev machine: >= 5,000 programs/s for rl at n = 256 and
for evolution.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from bench_env import environment, results_path
from lossgen.search import create
from toy_reward import GradientSignReward

STRATEGIES = ("rl", "evolution", "random")
TARGET = 5000.0


def measure(name: str, n: int, seconds: float, warmup_rounds: int, seed: int = 0, config=None) -> dict:
    reward = GradientSignReward()
    strategy = create(name, config, seed=seed)
    for _ in range(warmup_rounds):
        cands = strategy.ask(n)
        strategy.tell(cands, reward([c.program for c in cands]))
    ask_s = tell_s = reward_s = 0.0
    rounds = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or rounds < 3:
        t0 = time.perf_counter()
        cands = strategy.ask(n)
        t1 = time.perf_counter()
        rewards = reward([c.program for c in cands])
        t2 = time.perf_counter()
        strategy.tell(cands, rewards)
        t3 = time.perf_counter()
        ask_s += t1 - t0
        reward_s += t2 - t1
        tell_s += t3 - t2
        rounds += 1
    programs = rounds * n
    return {
        "strategy": name if not config else f"{name} {config}",
        "n": n,
        "rounds": rounds,
        "programs": programs,
        "programs_per_s": programs / (ask_s + tell_s),
        "ask_ms_per_round": 1e3 * ask_s / rounds,
        "tell_ms_per_round": 1e3 * tell_s / rounds,
        "reward_ms_per_round": 1e3 * reward_s / rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 256])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="0.5 s per repeat")
    parser.add_argument("--output", default="sampling.json")
    parser.add_argument("--rl-threads", type=int, nargs="*", default=[],
                        help="also time rl with these intra-op thread counts (default config: 1)")
    args = parser.parse_args()
    seconds = 0.5 if args.quick else args.seconds

    configs = [(name, None) for name in args.strategies]
    if "rl" in args.strategies:
        configs += [("rl", {"threads": t}) for t in args.rl_threads]
    rows = []
    for name, config in configs:
        for n in args.sizes:
            warmup = max(1, 100 // n)
            runs = [measure(name, n, seconds, warmup, seed=r, config=config) for r in range(args.repeats)]
            best = sorted(runs, key=lambda r: r["programs_per_s"])[len(runs) // 2]
            row = dict(best)
            row["programs_per_s_runs"] = [r["programs_per_s"] for r in runs]
            row["programs_per_s"] = statistics.median(row["programs_per_s_runs"])
            rows.append(row)
            print(f"  {row['strategy']:<10} n={n:<4} {row['programs_per_s']:>10,.0f} programs/s", flush=True)

    result = {
        "benchmark": "sampling",
        "environment": environment(),
        "reward": "GradientSignReward(points=8, clamp='symmetric'): 16 probe pairs",
        "rate": "programs / (ask + tell seconds), median of repeats; reward time excluded",
        "target_programs_per_s": TARGET,
        "results": rows,
    }
    path = results_path(args.output)
    path.write_text(json.dumps(result, indent=2) + "\n")

    print()
    print(f"{'strategy':<22} {'n':>4} {'programs/s':>11} {'ask ms':>8} {'tell ms':>8} {'reward ms':>9}")
    for r in rows:
        print(f"{r['strategy']:<22} {r['n']:>4} {r['programs_per_s']:>11,.0f} {r['ask_ms_per_round']:>8.2f} "
              f"{r['tell_ms_per_round']:>8.2f} {r['reward_ms_per_round']:>9.2f}")
    env = result["environment"]
    print(f"\n{env['cpu_model']}, {env['cpu_count']} CPUs, torch {env['torch_version']} "
          f"({env['torch_threads']} threads), commit {env['git_commit'][:10]}; wrote {path}")


if __name__ == "__main__":
    main()
