"""Statistics over seeds, beside the bootstrap over test examples.

Phase III trains every loss with the same seeds, and a seed sets a run's initialisation and its
data order, so two losses' runs of one seed are paired. `paired_over_seeds` compares them: the
mean per-seed difference, its sample standard deviation, how many seeds favour each side, and an
exact two-sided sign-flip permutation p-value (every one of the 2^n sign patterns of the
differences; with n seeds no p-value below 2 / 2^n is possible, which is reported too).
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence


def paired_over_seeds(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True) -> dict:
    """`a` minus `b`, seed by seed (equal lengths, the same seeds in the same order)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired over seeds needs two equal, non-empty lists, got {len(a)} and {len(b)}")
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    mean = sum(d) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1)) if n > 1 else 0.0
    sign = 1 if higher_is_better else -1
    better = sum(1 for v in d if sign * v > 0)
    worse = sum(1 for v in d if sign * v < 0)
    observed = abs(mean)
    extreme = sum(1 for signs in itertools.product((1, -1), repeat=n)
                  if abs(sum(s * v for s, v in zip(signs, d))) / n >= observed - 1e-12)
    return {"difference": mean, "std": std, "n": n, "better": better, "worse": worse,
            "p_value": extreme / 2**n, "min_p": min(1.0, 2 / 2**n)}
