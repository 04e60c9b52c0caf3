"""Which of the MLP's unspecified details move its test AUC: an ablation behind the MLP Table 5 row.

lossgen's MLP reaches 0.793-0.800 test AUC on ML-100K with every loss, 0.018-0.050 above the
paper's Table 5 (0.747-0.775), a nearly uniform offset. The paper fixes the layer sizes, batch
norm, dropout 0.2 and ReLU, but not the initialisation, where batch norm and dropout sit relative
to ReLU, or whether dropout also applies to the embeddings. Each variant below changes one of them
from lossgen's choice and trains the paper's protocol (SGD lr 0.01, batch 128, dense weight decay
1e-4, the paper's early stop: validation AUC worse 10 epochs in a row or best more than 50 epochs
ago, or with --early-stop official the authors' code's rule; the parameters of the best validation
epoch are scored on test, once per run):

  lossgen      Linear -> BatchNorm -> ReLU -> Dropout, embeddings N(0, 0.01^2), nn.Linear's init
  emb-init-1   embeddings N(0, 1) (nn.Embedding's default)
  linear-0.01  linear weights and biases N(0, 0.01^2), as the embeddings (a common init of
               research recommender frameworks, e.g. the one the authors' group publishes)
  relu-bn      Linear -> ReLU -> BatchNorm -> Dropout
  no-bn        Linear -> ReLU -> Dropout
  dropout-emb  dropout 0.2 on the concatenated embeddings too
  authors-code what the authors' released code does beyond the paper's text: embeddings N(0, 1)
               (nn.Embedding's default; the code sets no init), 1e-4 * (sum of squares of every
               parameter) added to the loss on top of SGD's weight_decay 1e-4 (for plain SGD
               exactly a weight decay of 3e-4 on every parameter, every step), and every gradient
               clipped to +-50 by value; the layers are Linear -> BatchNorm -> ReLU -> Dropout

The models are bench/torch_mlp.TorchMLP with each variant's options (plain PyTorch), one run per
(variant, loss, seed) on one thread: slow (about 1.5 s per epoch) but free of any lossgen kernel,
so the `lossgen` row also checks the fused MLP's Table 5 numbers independently.

    python bench/mlp_ablation.py [--variants lossgen,emb-init-1] [--losses BCE,MaxR] [--seeds 1]

Writes bench/results/mlp_ablation.json (or --out NAME) and prints test AUC per variant and loss.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
from torch import nn

from bench_env import environment, results_path
from lossgen.data import load
from lossgen.models.mf import INIT_STD
from lossgen.phases.effectiveness import EffectivenessConfig, Run, should_stop
from lossgen.training.losses import named
from lossgen.training.metrics import auc
from torch_mf import train_torch
from torch_mlp import TorchMLP

VARIANTS = ("lossgen", "emb-init-1", "linear-0.01", "relu-bn", "no-bn", "dropout-emb", "authors-code")
L2 = {"authors-code": 3e-4}  # the weight decay per variant (default 1e-4)
CLIP = {"authors-code": 50.0}  # gradient clipping by value per variant (default none)
PAPER_MLP = {"MSE": 0.7655, "BCE": 0.7725, "Hinge": 0.7472, "Focal": 0.7629, "MaxR": 0.7747, "SumR": 0.7743,
             "LogMin": 0.7752}
EPS = {"MaxR": 0.01, "SumR": 0.01, "LogMin": 0.001}  # the epsilons the MLP Table 5 row chose on validation


# each variant as bench/torch_mlp.TorchMLP's options (lossgen: the defaults)
OPTIONS = {"lossgen": {}, "emb-init-1": {"emb_std": 1.0}, "linear-0.01": {"linear_std": INIT_STD},
           "relu-bn": {"order": "relu-bn"}, "no-bn": {"order": "relu"}, "dropout-emb": {"input_dropout": True},
           "authors-code": {"emb_std": 1.0}}


def scores(model: nn.Module, split) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(split.users, split.items)


def run(data, test, variant: str, loss: str, seed: int, max_epochs: int, rule: str = "paper") -> dict:
    torch.manual_seed(seed)  # torch's dropout masks
    model = TorchMLP(data.n_users, data.n_items, seed=seed, **OPTIONS[variant])
    spec = named(loss, EPS.get(loss, 1e-6))
    order = torch.Generator().manual_seed(1000 + seed)
    train = data.train
    # lossgen's Phase III bookkeeping and early-stop rule (best_epoch 0-based, as there)
    rules = EffectivenessConfig(max_epochs=max_epochs).with_early_stop(rule)
    record, best_state = Run(spec, seed), None
    while not record.stopped:
        perm = torch.randperm(len(train), generator=order)
        train_torch(model, spec, train.users[perm], train.items[perm], train.labels[perm], 128, 0.01,
                    L2.get(variant, 1e-4), CLIP.get(variant))
        value = float(auc(scores(model, data.validation), data.validation.labels))
        record.history.append(value)
        if value > record.best_utility:
            record.best_utility, record.best_epoch, best_state = value, record.epochs, copy.deepcopy(model.state_dict())
        record.epochs += 1
        record.stopped = should_stop(record, rules)
    model.load_state_dict(best_state)
    return {"variant": variant, "loss": loss, "seed": seed, "validation": record.best_utility,
            "best_epoch": record.best_epoch + 1, "epochs": record.epochs,
            "test_auc": float(auc(scores(model, test), test.labels))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--losses", default="BCE,MaxR,LogMin")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--early-stop", choices=("paper", "official"), default="paper")
    parser.add_argument("--out", default="mlp_ablation.json", help="file name under bench/results")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    losses = [name for name in args.losses.split(",") if name]
    torch.set_num_threads(1)
    env = environment()
    data = load("ml-100k", args.data_dir)
    test = data.open_test()  # read once; each run scores its best-validation parameters on it
    rows, start = [], time.perf_counter()
    for variant in variants:
        for loss in losses:
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                r = run(data, test, variant, loss, seed, args.max_epochs, args.early_stop)
                r["seconds"] = round(time.perf_counter() - t0, 1)
                rows.append(r)
                print(f"{variant:12s} {loss:7s} seed {seed}: validation {r['validation']:.4f} test {r['test_auc']:.4f} "
                      f"(best epoch {r['best_epoch']}, stopped {r['epochs']}, {r['seconds']} s)", flush=True)
    print(f"\ntest AUC, mean over {args.seeds} seed(s); paper (MLP, Table 5) in the last row")
    print(f"{'variant':12s} " + " ".join(f"{loss:>8s}" for loss in losses) + "      mean")
    for variant in variants:
        means = [sum(r["test_auc"] for r in rows if r["variant"] == variant and r["loss"] == loss) / args.seeds
                 for loss in losses]
        print(f"{variant:12s} " + " ".join(f"{m:8.4f}" for m in means) + f"  {sum(means) / len(means):8.4f}")
    paper = [PAPER_MLP.get(loss, float("nan")) for loss in losses]
    print(f"{'paper':12s} " + " ".join(f"{m:8.4f}" for m in paper) + f"  {sum(paper) / len(paper):8.4f}")
    out = results_path(args.out)
    out.write_text(json.dumps({"environment": env, "seconds": round(time.perf_counter() - start, 1),
                               "max_epochs": args.max_epochs, "early_stop": args.early_stop, "rows": rows,
                               "paper": PAPER_MLP}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
