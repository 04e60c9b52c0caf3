"""Training throughput: candidate-epochs per second on ML-100K (one epoch of SGD over the whole
train split plus the validation AUC, per candidate), in one run:

  population  lossgen's fused MF population trainer at K = 1, 10, 64 (mixed losses)
  baseline    a plain PyTorch per-candidate loop written the usual way: nn.Module, autograd,
              torch.optim.SGD with dense weight decay (bench/torch_mf.py)

    python bench/training.py [--data-dir ../shared/data] [--quick]

Writes bench/results/training.json and prints the table. Targets on the 2-core dev machine:
MF >= 50 candidate-epochs/s at K = 64 and >= 20x the baseline; MLP >= 10/s.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bench_env import environment, results_path
from lossgen.data import load
from lossgen.ir.formula import parse
from lossgen.training.losses import from_program, named
from lossgen.training.metrics import auc
from lossgen.models.mf import LossTable, MFPopulation
from lossgen.models.mlp import MLPPopulation
from torch_mf import TorchBiasedMF, train_torch_mf
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
    """MLP population: whole epochs (after a few warm-up steps) plus the validation AUC."""
    specs = [LOSSES[i % len(LOSSES)] for i in range(k)]
    model = MLPPopulation.init(data.n_users, data.n_items, list(range(k)))
    config, tr = TrainConfig(), data.train
    for idx in torch.arange(5 * config.batch_size).split(config.batch_size):  # buffers, caches
        model.step(specs, tr.users[idx], tr.items[idx], tr.labels[idx], config.lr, config.l2)
    return k / fastest_epoch(model, specs, data, repeats)


def baseline_rate(data, candidates: int) -> float:
    config, tr, val = TrainConfig(), data.train, data.validation
    start = time.perf_counter()
    for k in range(candidates):
        model = TorchBiasedMF(data.n_users, data.n_items, seed=k)
        order = torch.randperm(len(tr), generator=torch.Generator().manual_seed(k))
        train_torch_mf(model, LOSSES[k % len(LOSSES)], tr.users[order], tr.items[order], tr.labels[order],
                       config.batch_size, config.lr, config.l2)
        with torch.no_grad():
            auc(torch.sigmoid(model(val.users, val.items)), val.labels)
    return candidates / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    data = load("ml-100k", args.data_dir)
    repeats = 2 if args.quick else 3
    rows = [{"trainer": "baseline (per candidate)", "K": 1, "rate": baseline_rate(data, 2 if args.quick else 4)}]
    for k in (1, 10, 64):
        rows.append({"trainer": "population (fused)", "K": k, "rate": population_rate(data, k, repeats)})
    mf64 = rows[-1]
    rows.append({"trainer": "population, own orders", "K": 64, "rate": population_rate(data, 64, repeats, True)})
    own64 = rows[-1]
    for k in (1, 10, 64):
        rows.append({"trainer": "MLP population", "K": k, "rate": mlp_rate(data, k, 1 if args.quick else 2)})
    base = rows[0]["rate"]
    print(f"ML-100K ({len(data.train):,} train examples): candidate-epochs/s incl. validation AUC "
          "(baseline and population: MF)")
    print(f"{'trainer':<26} {'K':>4} {'cand-epochs/s':>14} {'x baseline':>11}")
    for r in rows:
        r["vs_baseline"] = r["rate"] / base
        print(f"{r['trainer']:<26} {r['K']:>4} {r['rate']:>14.1f} {r['vs_baseline']:>11.1f}")
    k64, mlp = mf64, max(r["rate"] for r in rows if r["trainer"] == "MLP population")
    print(f"\ntargets: MF >= 50 candidate-epochs/s at K=64: {k64['rate']:.1f} {'OK' if k64['rate'] >= 50 else 'MISSED'}; "
          f">= 20x baseline: {k64['vs_baseline']:.1f}x {'OK' if k64['vs_baseline'] >= 20 else 'MISSED'}; "
          f"MLP >= 10/s: {mlp:.1f} {'OK' if mlp >= 10 else 'MISSED'}")
    print(f"each run its own data order (Phase III) at K=64: {own64['rate'] / k64['rate']:.2f}x the shared-order rate")
    out = results_path("training.json")
    out.write_text(json.dumps({"environment": environment(), "results": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
