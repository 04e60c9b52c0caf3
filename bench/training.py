"""Training throughput: candidate-epochs per second on ML-100K (one epoch of SGD over the whole
train split plus the validation AUC, per candidate), in one run, for MF and the MLP:

  population  lossgen's fused population trainers (MF at K = 1, 10, 64; MLP at K = 1, 10, 64),
              mixed losses; the MLP also with its PyTorch step (fused=False, the population
              before the fused op) at K = 10, 64, timed over 100 steps and extrapolated
  baseline    a plain PyTorch per-candidate loop written the usual way: nn.Module, autograd,
              torch.optim.SGD with dense weight decay (bench/torch_mf.py, bench/torch_mlp.py)

    python bench/training.py [--data-dir ../shared/data] [--quick]

Writes bench/results/training.json (with the CPU model, torch threads, OMP_NUM_THREADS and the
load average before and after) and prints the tables. Targets on the 2-core dev machine: MF >= 50
candidate-epochs/s at K = 64 and >= 20x the baseline; MLP >= 50/s at K = 64. Other jobs on the
machine lower every figure: read them with the load average printed beside them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch

from bench_env import environment, results_path
from lossgen.data import load
from lossgen.ir.formula import parse
from lossgen.training.losses import from_program, named
from lossgen.training.metrics import auc
from lossgen.models.mf import LossTable, MFPopulation
from lossgen.models.mlp import MLPPopulation
from torch_mf import TorchBiasedMF, train_torch
from torch_mlp import TorchMLP
from lossgen.training.trainer import TrainConfig, train_epoch

LOSSES = [named("BCE"), named("MSE"), named("MaxR", 1e-3), from_program(parse("max(y_hat, y) * (1 / (y_hat + 1))"))]


def fastest_epoch(model, losses, data, repeats: int, own_orders: bool = False) -> float:
    """Seconds of the fastest of `repeats` epochs (training plus validation AUC). `own_orders`:
    each candidate its own data order (Phase III, one generator per seed), else one shared."""
    config, tr, val = TrainConfig(), data.train, data.validation
    gen = [torch.Generator().manual_seed(k % 3) for k in range(model.size)] if own_orders else \
        torch.Generator().manual_seed(0)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        train_epoch(model, losses, tr.users, tr.items, tr.labels, config, gen)
        auc(model.predict(val.users, val.items), val.labels)
        best = min(best, time.perf_counter() - start)
    return best


def population_rate(data, k: int, repeats: int, own_orders: bool = False) -> float:
    specs = [LOSSES[i % len(LOSSES)] for i in range(k)]
    model = MFPopulation.init(data.n_users, data.n_items, list(range(k)))
    return k / fastest_epoch(model, LossTable.build(specs), data, repeats, own_orders)


def mlp_rate(data, k: int, repeats: int) -> float:
    """MLP population (fused): whole epochs (after a few warm-up steps) plus the validation AUC."""
    specs = [LOSSES[i % len(LOSSES)] for i in range(k)]
    model = MLPPopulation.init(data.n_users, data.n_items, list(range(k)))
    config, tr = TrainConfig(), data.train
    for idx in torch.arange(5 * config.batch_size).split(config.batch_size):  # buffers, caches
        model.step(specs, tr.users[idx], tr.items[idx], tr.labels[idx], config.lr, config.l2)
    return k / fastest_epoch(model, specs, data, repeats)


def mlp_step_rate(data, k: int, steps: int) -> float:
    """MLP population with its PyTorch step (fused=False, what it ran before the fused op): `steps`
    mini-batches (after a few warm-up steps), extrapolated to the epoch, plus one validation AUC.
    It is slow enough that whole epochs would take minutes on a loaded machine."""
    specs = [LOSSES[i % len(LOSSES)] for i in range(k)]
    model = MLPPopulation.init(data.n_users, data.n_items, list(range(k)), fused=False)
    config, tr, val = TrainConfig(), data.train, data.validation
    order = torch.randperm(len(tr), generator=torch.Generator().manual_seed(0))
    batches = order[: (steps + 5) * config.batch_size].split(config.batch_size)
    for idx in batches[:5]:
        model.step(specs, tr.users[idx], tr.items[idx], tr.labels[idx], config.lr, config.l2)
    start = time.perf_counter()
    for idx in batches[5:]:
        model.step(specs, tr.users[idx], tr.items[idx], tr.labels[idx], config.lr, config.l2)
    per_step = (time.perf_counter() - start) / steps
    start = time.perf_counter()
    auc(model.predict(val.users, val.items), val.labels)
    epoch = per_step * math.ceil(len(tr) / config.batch_size) + time.perf_counter() - start
    return k / epoch


def baseline_rate(data, candidates: int, model_name: str = "mf") -> float:
    """Plain PyTorch, one candidate after the other: `candidates` epochs plus validation AUCs."""
    config, tr, val = TrainConfig(), data.train, data.validation
    start = time.perf_counter()
    for k in range(candidates):
        order = torch.randperm(len(tr), generator=torch.Generator().manual_seed(k))
        args = (LOSSES[k % len(LOSSES)], tr.users[order], tr.items[order], tr.labels[order], config.batch_size,
                config.lr, config.l2)
        if model_name == "mf":
            model = TorchBiasedMF(data.n_users, data.n_items, seed=k)
            train_torch(model, *args)
        else:
            model = TorchMLP(data.n_users, data.n_items, seed=k)
            train_torch(model, *args)
            model.eval()
        with torch.no_grad():
            auc(torch.sigmoid(model(val.users, val.items)), val.labels)
    return candidates / (time.perf_counter() - start)


def print_table(title: str, rows: list[dict]) -> None:
    print(title)
    print(f"{'trainer':<30} {'K':>4} {'cand-epochs/s':>14} {'x baseline':>11}")
    for r in rows:
        print(f"{r['trainer']:<30} {r['K']:>4} {r['rate']:>14.1f} {r['vs_baseline']:>11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", choices=("all", "mf", "mlp"), default="all", help="which recommender(s) to time")
    args = parser.parse_args()
    data = load("ml-100k", args.data_dir)
    load_before = os.getloadavg()
    repeats = 2 if args.quick else 3
    mf, mlp = [], []
    if args.model in ("all", "mf"):
        mf.append({"model": "mf", "trainer": "baseline (per candidate)", "K": 1,
                   "rate": baseline_rate(data, 2 if args.quick else 4)})
        for k in (1, 10, 64):
            mf.append({"model": "mf", "trainer": "population (fused)", "K": k,
                       "rate": population_rate(data, k, repeats)})
        mf.append({"model": "mf", "trainer": "population, own orders", "K": 64,
                   "rate": population_rate(data, 64, repeats, True)})
    if args.model in ("all", "mlp"):
        mlp.append({"model": "mlp", "trainer": "baseline (per candidate)", "K": 1,
                    "rate": baseline_rate(data, 1 if args.quick else 2, "mlp")})
        for k in (1, 10, 64):
            mlp.append({"model": "mlp", "trainer": "population (fused)", "K": k, "rate": mlp_rate(data, k, repeats)})
        for k in (10, 64):
            mlp.append({"model": "mlp", "trainer": "population, PyTorch step*", "K": k,
                        "rate": mlp_step_rate(data, k, 30 if args.quick else 100)})
    load_after = os.getloadavg()
    for rows in (mf, mlp):
        for r in rows:
            r["vs_baseline"] = r["rate"] / rows[0]["rate"]
    env = environment()
    env.update(omp_num_threads=os.environ.get("OMP_NUM_THREADS"), load_average_before=load_before,
               load_average_after=load_after)
    print(f"{env['cpu_model']}, {env['cpu_count']} CPUs, torch threads {env['torch_threads']}, "
          f"OMP_NUM_THREADS={env['omp_num_threads'] or 'unset'}; load average (1 min) {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after")
    print(f"ML-100K ({len(data.train):,} train examples): candidate-epochs/s incl. validation AUC")
    if mf:
        mf64, own64 = mf[3], mf[4]
        print()
        print_table("MF", mf)
        print(f"\ntargets: MF >= 50 candidate-epochs/s at K=64: {mf64['rate']:.1f} "
              f"{'OK' if mf64['rate'] >= 50 else 'MISSED'}; >= 20x baseline: {mf64['vs_baseline']:.1f}x "
              f"{'OK' if mf64['vs_baseline'] >= 20 else 'MISSED'}")
        print(f"MF, each run its own data order (Phase III) at K=64: {own64['rate'] / mf64['rate']:.2f}x the "
              "shared-order rate")
    if mlp:
        mlp10, mlp64, before10, before64 = mlp[2], mlp[3], mlp[4], mlp[5]
        print()
        print_table("MLP", mlp)
        print("* the PyTorch step (fused=False, the MLP population before the fused op): a few steps, "
              "extrapolated to the epoch")
        print(f"\ntarget: MLP >= 50 candidate-epochs/s at K=64: {mlp64['rate']:.1f} "
              f"{'OK' if mlp64['rate'] >= 50 else 'MISSED'}")
        print(f"MLP fused vs plain PyTorch: {mlp10['vs_baseline']:.1f}x at K=10, {mlp64['vs_baseline']:.1f}x at "
              f"K=64; vs its PyTorch step: {mlp10['rate'] / before10['rate']:.1f}x at K=10, "
              f"{mlp64['rate'] / before64['rate']:.1f}x at K=64")
    out = results_path("training.json" if args.model == "all" else f"training-{args.model}.json")
    out.write_text(json.dumps({"environment": env, "results": mf + mlp}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
