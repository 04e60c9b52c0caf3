"""Wall time of lossgen's Ray executor with 1 and 2 workers (docs/distributed.md).

Two measurements, each on a private local Ray started with `num_cpus` = the worker count (so Ray
runs at most that many tasks or actors at once), printed as a ratio in one run:

1. the same comparison (`run_compare`: strategies x seeds searches as Ray tasks, then Phase II and
   the shared Phase III sharded over actors), in a fresh directory per worker count, next to the
   local executor (`--jobs 1`);
2. one search round of a large population (`--population` candidates trained one epoch on a
   larger synthetic set) split across Ray actors (`RayEvaluator`), next to the local evaluator;
   the actors are started and warmed up by one round first, so the figure is a round, not Ray's
   start-up.

    python bench/distributed.py                  # ~5 minutes on 2 cores
    python bench/distributed.py --budget 40 --population 32   # a quick look

Writes bench/results/distributed.json (times, ratios, environment, load average).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402

from bench_env import environment, results_path  # noqa: E402
from lossgen.compare.plan import ComparePlan, shared_search  # noqa: E402
from lossgen.compare.runner import run_compare  # noqa: E402
from lossgen.data import load  # noqa: E402
from lossgen.ir.formula import parse  # noqa: E402
from lossgen.models import create_population  # noqa: E402
from lossgen.phases.distributed import RayEvaluator  # noqa: E402
from lossgen.phases.evaluator import Evaluator  # noqa: E402
from lossgen.phases.executor import ExecutorSettings  # noqa: E402
from lossgen.phases.settings import SearchConfig  # noqa: E402
from lossgen.search import create  # noqa: E402
from lossgen.training.losses import from_program  # noqa: E402
from lossgen.training.trainer import TrainConfig  # noqa: E402

COMPARE_DATA = "synthetic:users=300,items=400,seed=3"
ROUND_DATA = "synthetic:users=3000,items=2000,density=0.03,seed=5"


def start_ray(cpus: int):
    import ray

    ray.init(num_cpus=cpus, object_store_memory=100 * 1024**2, include_dashboard=False, log_to_driver=False)
    return ray


def time_compare(args, executor: ExecutorSettings | None, cpus: int) -> float:
    plan = ComparePlan(strategies=("rl", "random"), seeds=(0, 1), budget=args.budget, dataset=COMPARE_DATA,
                       search=shared_search(SearchConfig(strategy_config={"op_set": "paper", "max_steps": 7})),
                       limits={"patience": 200}, top=2, phase3_seeds=2, max_epochs=args.max_epochs,
                       baselines="BCE,MSE,Hinge,Focal")
    with tempfile.TemporaryDirectory() as tmp:
        ray = start_ray(cpus) if executor is not None else None
        try:
            start = time.perf_counter()
            run_compare(plan, Path(tmp) / "out", jobs=1, executor=executor)
            return time.perf_counter() - start
        finally:
            if ray is not None:
                ray.shutdown()


def round_specs(n: int, clamp: str = "paper"):
    strategy = create("random", {"op_set": "paper", "max_steps": 7}, seed=0)
    specs = [from_program(parse("max(y_hat, y) * (1 / (y_hat + 1))"), clamp, name="base")]
    while len(specs) < n:
        for c in strategy.ask(n):
            specs.append(from_program(c.program, clamp, name=c.id))
    return specs[:n]


def time_round(args, workers: int | None) -> float:
    data = load(ROUND_DATA)
    model = create_population("mf", data.n_users, data.n_items, [0], 64)
    specs = round_specs(args.population)
    if workers is None:
        evaluator = Evaluator(data, "classification", TrainConfig())
    else:
        start_ray(workers)
        evaluator = RayEvaluator(data, "classification", TrainConfig(), ExecutorSettings("ray", workers=workers))
    try:
        evaluator.evaluate(model, specs, torch.Generator().manual_seed(0))  # warm-up (actors start, data shipped)
        best = float("inf")
        for rep in range(args.repeats):
            start = time.perf_counter()
            evaluator.evaluate(model, specs, torch.Generator().manual_seed(rep))
            best = min(best, time.perf_counter() - start)
        return best
    finally:
        if workers is not None:
            import ray

            evaluator.close()
            ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=120, help="evaluations per search of the comparison")
    parser.add_argument("--max-epochs", type=int, default=20, help="Phase III epoch cap of the comparison")
    parser.add_argument("--population", type=int, default=128, help="candidates of the large round")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (the best is kept)")
    args = parser.parse_args()
    os.environ.setdefault("LOSSGEN_CACHE_DIR", tempfile.mkdtemp(prefix="lossgen-bench-cache-"))
    load_before = os.getloadavg()
    result = {"environment": environment(), "load_average_before": load_before, "settings": vars(args)}

    compare = {"local": time_compare(args, None, 0)}
    for cpus in (1, 2):
        compare[f"ray_{cpus}"] = time_compare(args, ExecutorSettings("ray"), cpus)
    rounds = {"local": time_round(args, None)}
    for workers in (1, 2):
        rounds[f"ray_{workers}"] = time_round(args, workers)
    result.update(compare_seconds=compare, round_seconds=rounds, load_average_after=os.getloadavg(),
                  compare_speedup_1_to_2=compare["ray_1"] / compare["ray_2"],
                  round_speedup_1_to_2=rounds["ray_1"] / rounds["ray_2"])
    path = results_path("distributed.json")
    path.write_text(json.dumps(result, indent=2) + "\n")

    env = result["environment"]
    print(f"{env['cpu_model']}, {env['cpu_count']} CPUs, load average before {load_before[0]:.2f}")
    print(f"{'':34} {'local':>8} {'ray 1':>8} {'ray 2':>8} {'1 / 2':>6}")
    print(f"{'comparison (2 strategies x 2 seeds)':34} {compare['local']:8.1f} {compare['ray_1']:8.1f} "
          f"{compare['ray_2']:8.1f} {result['compare_speedup_1_to_2']:6.2f}")
    print(f"{f'one round, {args.population} candidates':34} {rounds['local']:8.2f} {rounds['ray_1']:8.2f} "
          f"{rounds['ray_2']:8.2f} {result['round_speedup_1_to_2']:6.2f}")
    print(f"seconds; wrote {path}")


if __name__ == "__main__":
    main()
