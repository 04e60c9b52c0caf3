"""Checking the compiled kernels against the PyTorch reference (tests, the fuzz bench, the CLI).

Float32 math libraries differ by an ulp here and there (PyTorch's vectorized sqrt, tanh and log
are not glibc's or CUDA's), so no two float32 implementations agree bit for bit, and a program
can amplify one ulp without bound: 1 - tanh(x)^2 near saturation, y_hat * (1 / y_hat) - 1, or
sqrt(1e5)^2 landing 1 ulp inside or outside the official clamp (derivative 1 or 0). The rule:

1. A point matches when value and derivative agree with the float32 reference (autograd) within
   ``rtol`` / ``atol``.
2. Otherwise the point is *ill-conditioned* if the kernel still lies within the float32 rounding
   envelope of the exact result: the program is evaluated in float64, and again several times
   with every intermediate value and derivative perturbed by +-`ulps` float32 ulps (random signs);
   the envelope is the largest deviation seen, and the kernel must be within twice it (plus the
   tolerance) of the float64 result. Values exactly representable in float32 are not perturbed:
   exact float32 operations (y_hat * 1, ties of equal inputs) are exact in every library. Kinks (clamp bounds, Max/Min ties, zeros of sign-based ops)
   are covered by the same perturbations: a flip across them shows up in the envelope.

Everything else counts as a mismatch. `compare` returns counts for each class. Programs are
checked with the paper's smoothing (``eps=None``) and with per-candidate epsilons alike.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch

from lossgen.ir.opset import CLAMP_BOUNDS, N_INPUT_SLOTS, Op, parse_clamp
from lossgen.kernels.reference import _forward_mode, candidate_eps, reference_evaluate

_FLOAT32_ULP = 2.0**-23


@dataclass
class Comparison:
    points: int = 0
    exact: int = 0  # agree with the float32 reference within tolerance
    ill_conditioned: int = 0  # outside the tolerance, inside the float32 rounding envelope
    mismatches: int = 0
    examples: list = field(default_factory=list)  # a few mismatching points, for the report

    def add(self, other: "Comparison") -> None:
        self.points += other.points
        self.exact += other.exact
        self.ill_conditioned += other.ill_conditioned
        self.mismatches += other.mismatches
        self.examples.extend(other.examples[: max(0, 5 - len(self.examples))])


def perturb(x: torch.Tensor, gen: torch.Generator, ulps: float) -> torch.Tensor:
    """x times (1 +- ulps float32 ulps), the sign drawn per element, where x is not exactly a
    float32: an exact float32 operation (y_hat * 1, a tie of two equal inputs) stays exact."""
    signs = torch.randint(0, 2, x.shape, generator=gen, dtype=torch.float64) * 2 - 1
    inexact = x.float().double() != x
    return torch.where(inexact, x * (1 + ulps * _FLOAT32_ULP * signs), x)


def _float64_program(rows, y_hat, y, lo, hi, gen=None, ulps=2.0, eps=None):
    """One program in float64 (the reference's rules, `eps` its smoothing epsilon or None); with
    `gen`, every op's value and derivative is perturbed by a random +-`ulps` float32 ulps before
    clamping."""
    vals = [y_hat, y, torch.ones_like(y_hat)]
    ders = [torch.ones_like(y_hat), torch.zeros_like(y_hat), torch.zeros_like(y_hat)]
    for op, a, b in rows:
        op = Op(op)
        vb, db = (vals[b], ders[b]) if op.arity == 2 else (None, None)
        if gen is None:
            v, d = _forward_mode(op, vals[a], ders[a], vb, db, eps=eps)
        else:
            v, d = _forward_mode(op, vals[a], ders[a], vb, db, rounded=lambda x: perturb(x, gen, ulps), eps=eps)
            v, d = perturb(v, gen, ulps), perturb(d, gen, ulps)
        inside = (v >= lo) & (v <= hi)
        vals.append(torch.clamp(v, lo, hi))
        ders.append(torch.where(inside, d, 0.0))
    return vals[-1], ders[-1]


def rounding_envelope(rows, y_hat, y, clamp, trials=48, ulps=2.0, seed=0, eps=None):
    """Float64 value and derivative of one program, and their float32 rounding envelopes. `eps`:
    the candidate's smoothing epsilon (its float32 value) or None."""
    lo, hi = (float(torch.tensor(b, dtype=torch.float32)) for b in CLAMP_BOUNDS[parse_clamp(clamp)])
    y_hat, y = y_hat.double(), y.double()
    v64, g64 = _float64_program(rows, y_hat, y, lo, hi, eps=eps)
    gen = torch.Generator().manual_seed(seed)
    env_v, env_g = torch.zeros_like(v64), torch.zeros_like(g64)
    for _ in range(trials):
        pv, pg = _float64_program(rows, y_hat, y, lo, hi, gen, ulps, eps=eps)
        env_v = torch.maximum(env_v, (pv - v64).abs())
        env_g = torch.maximum(env_g, (pg - g64).abs())
    return v64, g64, env_v, env_g


def compare(programs, y_hat, y, clamp, values, grads, rtol=1e-5, atol=1e-6, eps=None) -> Comparison:
    """Classify every point of a kernel result ``(values, grads)`` as described in the module doc.
    `eps`: the smoothing the kernel was called with (None, a float, or float32 ``[K]``)."""
    values, grads = values.detach().cpu(), grads.detach().cpu()
    programs, y_hat, y = programs.cpu(), y_hat.detach().cpu(), y.detach().cpu()
    eps = eps.detach().cpu() if isinstance(eps, torch.Tensor) else eps
    ref_v, ref_g = reference_evaluate(programs, y_hat, y, clamp, eps)
    per_candidate = candidate_eps(eps, programs.shape[0])
    ok = torch.isclose(values, ref_v, rtol=rtol, atol=atol) & torch.isclose(grads, ref_g, rtol=rtol, atol=atol)
    result = Comparison(points=values.numel(), exact=int(ok.sum()))
    if result.exact == result.points:
        return result
    yh_k, y_k = y_hat.expand_as(values), y.expand_as(values)
    rows = programs.tolist()
    for k in (~ok).any(1).nonzero().flatten().tolist():
        cols = (~ok[k]).nonzero().flatten()
        v64, g64, env_v, env_g = rounding_envelope(rows[k], yh_k[k, cols], y_k[k, cols], clamp,
                                                   eps=per_candidate[k])
        tol_v = atol + rtol * v64.abs() + 2 * env_v
        tol_g = atol + rtol * g64.abs() + 2 * env_g
        within = ((values[k, cols].double() - v64).abs() <= tol_v) & ((grads[k, cols].double() - g64).abs() <= tol_g)
        result.ill_conditioned += int(within.sum())
        result.mismatches += int((~within).sum())
        for j in (~within).nonzero().flatten().tolist()[: max(0, 5 - len(result.examples))]:
            n = int(cols[j])
            result.examples.append(
                {
                    "program": rows[k],
                    "eps": per_candidate[k],
                    "y_hat": float(yh_k[k, n]),
                    "y": float(y_k[k, n]),
                    "value (kernel, reference, float64)": (float(values[k, n]), float(ref_v[k, n]), float(v64[j])),
                    "grad (kernel, reference, float64)": (float(grads[k, n]), float(ref_g[k, n]), float(g64[j])),
                }
            )
    return result


# ----------------------------------------------------------------------------- fuzzing

SPECIAL_INPUTS = (0.0, 1.0, -1.0, 0.5, 1e-6, -1e-6, 1e-7, 1e-5, 1e5, 1e6, -1e6, 2e6, -3.0, 13.8, 80.0, 81.0)
"""Zeros, negatives, values at and beyond every clamp bound and the Exp cut-off."""


def random_program(rng: random.Random, num_steps: int, ops) -> list[tuple[int, int, int]]:
    """Uniform random valid rows (op, a, b): the fuzzer's generator (search strategies have their own)."""
    rows = []
    for t in range(num_steps):
        op = rng.choice(ops)
        written = N_INPUT_SLOTS + t
        a = rng.randrange(written)
        b = 0
        if Op(op).arity == 2:
            b = rng.randrange(written - 1)
            b += b >= a  # distinct from a
        rows.append((int(op), a, b))
    return rows


def fuzz_inputs(gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """y_hat and y with every special value paired with every other, ties, and random points."""
    special = torch.tensor(SPECIAL_INPUTS)
    m = len(special)
    grid_yh = special.repeat_interleave(m)
    grid_y = special.repeat(m)
    rest = max(0, n - m * m)
    yh = torch.cat([grid_yh, torch.rand(rest, generator=gen) * 4 - 2])[:n]
    y = torch.cat([grid_y, torch.where(torch.rand(rest, generator=gen) < 0.5, yh[m * m :], torch.randint(0, 2, (rest,), generator=gen).float())])[:n]
    return yh.float().contiguous(), y.float().contiguous()


SMOOTHINGS = ("paper", "random")
"""What `fuzz` tries: the paper's smoothing (``eps=None``), and per-candidate epsilons drawn
log-uniformly from [EPS_RANGE[0], EPS_RANGE[1]]."""

EPS_RANGE = (1e-6, 1.0)


def random_eps(rng: random.Random, k: int, low: float = EPS_RANGE[0], high: float = EPS_RANGE[1]) -> torch.Tensor:
    """k smoothing epsilons, log-uniform in [low, high], float32."""
    lo, hi = math.log10(low), math.log10(high)
    return torch.tensor([10 ** rng.uniform(lo, hi) for _ in range(k)], dtype=torch.float32)


def fuzz(evaluate, num_programs: int, seed: int = 0, ops=tuple(Op), max_steps: int = 7, batch: int = 256,
         points: int = 512, clamps=("paper", "official", "symmetric"), device="cpu", progress=None,
         smoothings=SMOOTHINGS) -> dict:
    """Random programs through `evaluate` (the compiled kernel) versus the reference.
    Batches cycle through the clamp modes, and, after each full cycle, through `smoothings`:
    ``"paper"`` calls ``evaluate(programs, y_hat, y, clamp)``, ``"random"`` adds ``eps=`` with one
    random epsilon per candidate (`random_eps`). Returns a `Comparison` per clamp mode."""
    for smoothing in smoothings:
        if smoothing not in SMOOTHINGS:
            raise ValueError(f"unknown smoothing {smoothing!r}; choose from {', '.join(SMOOTHINGS)}")
    rng = random.Random(seed)
    eps_rng = random.Random(seed + 1)  # its own stream: the programs do not depend on `smoothings`
    gen = torch.Generator().manual_seed(seed)
    results = {c: Comparison() for c in clamps}
    done = 0
    while done < num_programs:
        k = min(batch, num_programs - done)
        clamp = clamps[(done // batch) % len(clamps)]
        smoothing = smoothings[(done // batch // len(clamps)) % len(smoothings)]
        length = rng.randint(1, max_steps)
        programs = torch.tensor([random_program(rng, length, ops) for _ in range(k)], dtype=torch.int32)
        y_hat, y = fuzz_inputs(gen, points)
        if smoothing == "paper":
            eps = None
            values, grads = evaluate(programs.to(device), y_hat.to(device), y.to(device), clamp)
        else:
            eps = random_eps(eps_rng, k)
            values, grads = evaluate(programs.to(device), y_hat.to(device), y.to(device), clamp, eps=eps.to(device))
        results[clamp].add(compare(programs, y_hat, y, clamp, values, grads, eps=eps))
        done += k
        if progress is not None:
            progress(k)
    return results
