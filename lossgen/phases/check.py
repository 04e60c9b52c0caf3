"""Phase II, the validation check (paper §4.2, Table 8; DESIGN.md "The three phases").

A loss is sensible when it pushes predictions the right way: its derivative with respect to y_hat
is >= 0 where y = 0 (a larger prediction costs more) and <= 0 where y = 1. The check synthesizes
2,000 (y_hat, y) pairs, y_hat uniform in [0, 1] and y in {0, 1}, takes the exact derivatives from
the compiled kernels on the very function that was trained (same clamp mode), and reports the
positive rate: the share of pairs whose derivative has the right sign. A candidate passes at a
rate >= 0.9.

The pairs are drawn once from a fixed seed (half y = 0, half y = 1), so every candidate and every
run is judged on the same points.

The strict check (DESIGN.md; what the `lossgen` preset will use) also requires, for each label, a
non-zero gradient of the right sign (> 0 for y = 0, < 0 for y = 1) on at least `threshold` of that
label's pairs, and |d f / d y_hat| <= 1e4 on every pair: the paper's rule counts a zero gradient
as right, so one-sided losses (`1 / min(y_hat, y)`: zero gradient on every negative), constant
ones (`sqrt(-1)`) and exploding ones pass it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from lossgen import kernels
from lossgen.ir.programs import Program, batch
from lossgen.phases.settings import CheckSettings

DEFAULT_PAIRS = CheckSettings.pairs  # the defaults live in lossgen.phases.settings
DEFAULT_THRESHOLD = CheckSettings.threshold
DEFAULT_SEED = 20220711  # SIGIR'22
STRICT_MAX_GRADIENT = 1e4  # |d f / d y_hat| above this anywhere fails the strict check


@dataclass(frozen=True)
class CheckResult:
    rates: list[float]  # positive rate per candidate
    passed: list[bool]
    threshold: float
    pairs: int
    zero_shares: list[float]  # share of pairs where d loss / d y_hat is exactly 0 (1.0: a flat loss)
    strict: bool = False  # passed by the strict rule (below) as well
    strict_rates: list[tuple[float, float]] | None = None  # per label (y=0, y=1): share strictly right
    max_gradients: list[float] | None = None  # max |d f / d y_hat| over the pairs


def synthesized_pairs(n: int = DEFAULT_PAIRS, seed: int = DEFAULT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """n pairs: y_hat uniform in [0, 1], y = 0 for the first half and 1 for the second."""
    if n < 2:
        raise ValueError(f"the validation check needs at least 2 pairs, got {n}")
    gen = torch.Generator().manual_seed(seed)
    y_hat = torch.rand(n, generator=gen)
    y = torch.zeros(n)
    y[n // 2 :] = 1.0
    return y_hat, y


def _gradients(programs: Sequence[Program] | torch.Tensor, clamp, pairs: int, seed: int, eps=None):
    prog = programs if isinstance(programs, torch.Tensor) else batch(list(programs))
    y_hat, y = synthesized_pairs(pairs, seed)
    _, grads = kernels.evaluate(prog, y_hat, y, clamp, eps)
    return grads, y


def positive_rates(programs: Sequence[Program] | torch.Tensor, clamp="paper", pairs: int = DEFAULT_PAIRS,
                   seed: int = DEFAULT_SEED) -> torch.Tensor:
    """Share of pairs whose d loss / d y_hat has the right sign, per candidate (float64 [K])."""
    grads, y = _gradients(programs, clamp, pairs, seed)
    right = torch.where(y == 0, grads >= 0, grads <= 0)
    return right.double().mean(dim=1)


def validation_check(programs: Sequence[Program] | torch.Tensor, clamp="paper", threshold: float = DEFAULT_THRESHOLD,
                     pairs: int = DEFAULT_PAIRS, seed: int = DEFAULT_SEED, strict: bool = False,
                     eps=None) -> CheckResult:
    """The paper's check (a zero gradient counts as the right sign), with the share of pairs where
    the gradient is zero beside it, so that flat and one-sided losses can be told apart; with
    `strict`, a loss must also pass `strict_pass`. `eps`: the candidates' smoothing epsilon (a float
    or [K]; None: the paper's), as `lossgen.kernels.evaluate` takes it."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    grads, y = _gradients(programs, clamp, pairs, seed, eps)
    rates = torch.where(y == 0, grads >= 0, grads <= 0).double().mean(dim=1).tolist()
    zero = (grads == 0).double().mean(dim=1).tolist()
    by_label, largest = _strict_measures(grads, y)
    passed = [r >= threshold for r in rates]
    if strict:
        passed = [ok and strict_pass(s, g, threshold) for ok, s, g in zip(passed, by_label, largest)]
    return CheckResult(rates, passed, threshold, pairs, zero, strict, by_label, largest)


def _strict_measures(grads: torch.Tensor, y: torch.Tensor) -> tuple[list[tuple[float, float]], list[float]]:
    negative, positive = y == 0, y == 1
    right_0 = (grads[:, negative] > 0).double().mean(dim=1)
    right_1 = (grads[:, positive] < 0).double().mean(dim=1)
    finite = torch.where(torch.isfinite(grads), grads.abs(), torch.full_like(grads, float("inf")))
    return list(zip(right_0.tolist(), right_1.tolist())), finite.max(dim=1).values.double().tolist()


def check_candidates(programs: Sequence[Program], eps: Sequence[float | None], clamp="paper",
                     threshold: float = DEFAULT_THRESHOLD, pairs: int = DEFAULT_PAIRS, seed: int = DEFAULT_SEED,
                     strict: bool = False) -> CheckResult:
    """`validation_check` of candidates that each carry their own smoothing epsilon (None: the
    paper's smoothing, with sign(0) = 0), in at most two kernel calls."""
    n = len(programs)
    rates, passed, zero = [0.0] * n, [False] * n, [0.0] * n
    by_label: list[tuple[float, float]] = [(0.0, 0.0)] * n
    largest = [0.0] * n
    for plain in (True, False):
        rows = [k for k in range(n) if (eps[k] is None) == plain]
        if not rows:
            continue
        e = None if plain else torch.tensor([float(eps[k]) for k in rows], dtype=torch.float32)
        part = validation_check([programs[k] for k in rows], clamp, threshold, pairs, seed, strict, e)
        for j, k in enumerate(rows):
            rates[k], passed[k], zero[k] = part.rates[j], part.passed[j], part.zero_shares[j]
            by_label[k], largest[k] = part.strict_rates[j], part.max_gradients[j]
    return CheckResult(rates, passed, threshold, pairs, zero, strict, by_label, largest)


def strict_measure(strict_rates: tuple[float, float], max_gradient: float) -> float:
    """One number for the strict rule, stored with a candidate: the smaller per-label share of
    pairs pushed the right way, or 0.0 when a gradient exceeds STRICT_MAX_GRADIENT (so the strict
    rule passes exactly when this measure reaches the threshold)."""
    return 0.0 if not max_gradient <= STRICT_MAX_GRADIENT else float(min(strict_rates))


def strict_pass(strict_rates: tuple[float, float], max_gradient: float, threshold: float) -> bool:
    """Both labels pushed the right way (non-zero gradient of the right sign) on `threshold` of
    their pairs, and no gradient larger than STRICT_MAX_GRADIENT."""
    return min(strict_rates) >= threshold and max_gradient <= STRICT_MAX_GRADIENT
