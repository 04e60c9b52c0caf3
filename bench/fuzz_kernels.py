"""Fuzz the compiled kernels against the PyTorch reference: 100,000 random programs by default.

Every op code (the extended set), every clamp mode, 1..max_steps steps, and per program 512
points: every pair of special inputs (0, negatives, values at and beyond each clamp bound, the
Exp cut-off) plus random points with ties. Classification of each point as in lossgen/kernels/verify.py:
within tolerance of the float32 reference, or ill-conditioned but inside the float32 rounding
envelope of the float64 result, or a mismatch. Exits 1 on any mismatch.

    python bench/fuzz_kernels.py [--programs 100000] [--device cuda] [--max-steps 13]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

from bench_env import environment, results_path
from lossgen import kernels
from lossgen.kernels.verify import fuzz


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=100_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=7)
    parser.add_argument("--points", type=int, default=512)
    args = parser.parse_args()
    start = time.perf_counter()
    results = fuzz(kernels.evaluate, args.programs, seed=args.seed, max_steps=args.max_steps,
                   points=args.points, device=args.device)
    seconds = time.perf_counter() - start
    print(f"{args.programs:,} programs on {kernels.backend(args.device)}, max {args.max_steps} steps, "
          f"{args.points} points each, {seconds:.0f} s")
    print(f"{'clamp':<10} {'points':>12} {'within tol':>12} {'ill-cond.':>10} {'mismatches':>11}")
    total = 0
    for clamp, r in results.items():
        print(f"{clamp:<10} {r.points:>12,} {r.exact:>12,} {r.ill_conditioned:>10,} {r.mismatches:>11,}")
        total += r.mismatches
        for example in r.examples:
            print("  mismatch:", example)
    out = results_path(f"fuzz-{args.device}.json")
    out.write_text(json.dumps({"environment": environment(args.device), "args": vars(args), "seconds": seconds,
                               "results": {c: asdict(r) for c, r in results.items()}}, indent=2))
    print(f"wrote {out}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
