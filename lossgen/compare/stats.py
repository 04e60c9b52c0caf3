"""Statistics for `lossgen compare`: strategies run over the same seeds, compared pairwise.

    describe(values)                          -> n, mean, sample std, min, max
    wilcoxon_signed_rank(differences)         -> two-sided p-value (exact for n <= 20)
    min_attainable_p(n)                       -> the smallest exact p-value n pairs can give
    bootstrap_mean_interval(differences, ...) -> percentile bootstrap interval of the mean
    paired_comparison(a, b, ...)              -> all of the above for two strategies, by seed
    spearman(x, y)                            -> rank correlation (ties get average ranks)
    best_so_far(xs, values, grid)             -> an anytime curve on a common grid
    band(curves)                              -> mean +- sample std of curves, per grid point

Why these tests: a comparison has few seeds (often 3 to 10) and no reason to assume normal
errors, so the paired test is the Wilcoxon signed-rank test, computed EXACTLY by enumerating all
2**n sign assignments while that is cheap (n <= 20); the normal approximation is only used above
that, where it is accurate. With so few pairs a p-value alone misleads, so each comparison also
reports the smallest p-value its n could ever reach (3 seeds: nothing below 0.25), a percentile
bootstrap interval of the mean difference (an effect size with its uncertainty, no normality
assumption) and plain win/tie/loss counts. Spearman's rho is rank-based for the same reason:
it asks whether two scores order things alike, not whether they are linearly related.

Missing values (None or NaN) are skipped everywhere. Everything is plain numpy, pure and
deterministic (the bootstrap takes an explicit seed); scipy is not needed.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

__all__ = [
    "band",
    "best_so_far",
    "bootstrap_mean_interval",
    "describe",
    "min_attainable_p",
    "paired_comparison",
    "spearman",
    "wilcoxon_signed_rank",
]

# Above this many nonzero differences the exact null distribution (2**n sums) gives way to the
# normal approximation: 2**20 float64 sums are 8 MiB, and by n = 20 the approximation is good.
EXACT_MAX_N = 20


def _present(values: Sequence[float | None]) -> np.ndarray:
    """The values as float64, None and NaN dropped (np.asarray turns None into NaN)."""
    arr = np.asarray(values, dtype=float).ravel()
    return arr[~np.isnan(arr)]


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of x, tied values sharing the average of the ranks they span."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    # A tie group ending at cumulative position c with t members spans ranks c-t+1 .. c.
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def describe(values: Sequence[float | None]) -> dict:
    """n, mean, sample std (ddof=1; 0.0 for one value), min and max of the present values.

    With no present value, n is 0 and the other entries are None.
    """
    x = _present(values)
    if x.size == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    return {
        "n": int(x.size),
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
        "min": float(x.min()),
        "max": float(x.max()),
    }


def wilcoxon_signed_rank(differences: Sequence[float | None]) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test on paired differences.

    Zero differences are dropped before ranking (Wilcoxon's original zero handling,
    scipy's ``zero_method="wilcox"``); None/NaN are skipped. Ties in |d| get average ranks.
    The statistic is W+ = the sum of the ranks of the positive differences; under the null
    every sign assignment is equally likely and the distribution is symmetric about
    n(n+1)/4, so the two-sided p-value is the share of assignments at least as far from the
    centre as the observed W+.

    n <= 20 nonzero differences: exact, by enumerating all 2**n sign assignments of the
    (average) ranks, so it stays exact with ties. n > 20: normal approximation with the tie
    correction of the variance and no continuity correction. No difference left: 1.0.
    """
    d = _present(differences)
    d = d[d != 0]
    n = d.size
    if n == 0:
        return 1.0
    ranks = _average_ranks(np.abs(d))
    observed = ranks[d > 0].sum()
    centre = n * (n + 1) / 4.0
    if n <= EXACT_MAX_N:
        # W+ of every sign assignment: each rank doubles the list (absent / present). The sums
        # are multiples of 1/2, exact in float64; the 1e-9 only guards the comparison.
        sums = np.zeros(1)
        for r in ranks:
            sums = np.concatenate([sums, sums + r])
        extreme = np.abs(sums - centre) >= abs(observed - centre) - 1e-9
        return float(extreme.mean())
    # Ties shrink the variance by sum(t^3 - t) / 48 over the tie groups of |d|.
    _, t = np.unique(np.abs(d), return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24.0 - float((t**3 - t).sum()) / 48.0
    z = (observed - centre) / math.sqrt(var)
    return float(math.erfc(abs(z) / math.sqrt(2.0)))  # = 2 * P(Z > |z|)


def min_attainable_p(n: int) -> float:
    """The smallest two-sided exact p-value with n nonzero differences: 2 / 2**n (1.0 for n=0).

    Reached only when all differences share one sign, so with 3 seeds no result can be
    "significant" below 0.25, whatever the strategies do.
    """
    return 1.0 if n <= 0 else min(1.0, 2.0 / 2.0**n)


def bootstrap_mean_interval(
    differences: Sequence[float | None],
    replicates: int = 10000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval (at `level`) of the mean of the differences.

    Resamples the present differences with replacement, `replicates` times, with
    ``numpy.random.default_rng(seed)``. No difference: (nan, nan); one: (d, d).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if replicates < 1:
        raise ValueError(f"replicates must be at least 1, got {replicates}")
    d = _present(differences)
    if d.size == 0:
        return (math.nan, math.nan)
    if d.size == 1:
        return (float(d[0]), float(d[0]))
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(replicates, d.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    # A resampled mean lies in [min d, max d]; clipping only removes float rounding, so equal
    # differences give exactly (d, d).
    return (float(np.clip(lo, d.min(), d.max())), float(np.clip(hi, d.min(), d.max())))


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def paired_comparison(
    a: Mapping[Hashable, float | None],
    b: Mapping[Hashable, float | None],
    replicates: int = 10000,
    seed: int = 0,
    higher_is_better: bool = True,
) -> dict:
    """Compare two strategies on the pairing keys (search seeds) where both have a finite value.

    Differences are a - b, taken in sorted key order (so the bootstrap is reproducible).
    Returns n, mean_difference, interval ([lo, hi], `bootstrap_mean_interval`), wilcoxon_p,
    min_p (`min_attainable_p` of the number of nonzero differences) and wins / ties / losses
    of a (a better, equal, worse: a > b is a win unless `higher_is_better` is False, as for
    RMSE). With no pair: n = 0, None for the statistics, zero counts.
    """
    keys = sorted(k for k in a.keys() & b.keys() if _finite(a[k]) and _finite(b[k]))
    d = np.array([a[k] - b[k] for k in keys], dtype=float)
    better = d if higher_is_better else -d
    wins, ties, losses = int((better > 0).sum()), int((better == 0).sum()), int((better < 0).sum())
    if d.size == 0:
        return {
            "n": 0, "mean_difference": None, "interval": None, "wilcoxon_p": None,
            "min_p": None, "wins": 0, "ties": 0, "losses": 0,
        }
    return {
        "n": int(d.size),
        "mean_difference": float(d.mean()),
        "interval": list(bootstrap_mean_interval(d, replicates=replicates, seed=seed)),
        "wilcoxon_p": wilcoxon_signed_rank(d),
        "min_p": min_attainable_p(wins + losses),
        "wins": wins,
        "ties": ties,
        "losses": losses,
    }


def spearman(x: Sequence[float | None], y: Sequence[float | None]) -> float | None:
    """Spearman's rho: the Pearson correlation of the average ranks of x and y.

    Pairs where either value is None/NaN are skipped. None when fewer than 3 pairs remain or
    either side is constant (the correlation is then undefined or meaningless).
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y differ in shape: {xa.shape} != {ya.shape}")
    keep = ~(np.isnan(xa) | np.isnan(ya))
    xa, ya = xa[keep], ya[keep]
    if xa.size < 3 or np.unique(xa).size < 2 or np.unique(ya).size < 2:
        return None
    rx = _average_ranks(xa) - (xa.size + 1) / 2.0  # mean rank is (n+1)/2, with ties too
    ry = _average_ranks(ya) - (ya.size + 1) / 2.0
    rho = (rx @ ry) / math.sqrt((rx @ rx) * (ry @ ry))
    return float(np.clip(rho, -1.0, 1.0))


def best_so_far(
    xs: Sequence[float], values: Sequence[float | None], grid: Sequence[float]
) -> np.ndarray:
    """Anytime curve: for each g in grid, the max of the values observed at x <= g.

    xs (evaluation index or seconds) need not be sorted; observations with a None/NaN value
    (or x) are ignored. NaN at grid points before the first observation.
    """
    x = np.asarray(xs, dtype=float)
    v = np.asarray(values, dtype=float)
    if x.shape != v.shape:
        raise ValueError(f"xs and values differ in shape: {x.shape} != {v.shape}")
    g = np.asarray(grid, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(v))
    x, v = x[keep], v[keep]
    if x.size == 0:
        return np.full(g.shape, np.nan)
    order = np.argsort(x, kind="stable")
    running = np.maximum.accumulate(v[order])
    # Index of the last observation with x <= g; -1 when there is none yet.
    last = np.searchsorted(x[order], g, side="right") - 1
    return np.where(last >= 0, running[np.maximum(last, 0)], np.nan)


def band(curves: np.ndarray | Sequence[Sequence[float]]) -> dict:
    """Mean and sample std (ddof=1) of curves (rows: seeds, columns: grid points), per column.

    Only finite entries count; n is their number per column. std is 0 where one entry is
    finite; mean, std, lo and hi are NaN where none is. lo/hi = mean -/+ std.
    """
    c = np.asarray(curves, dtype=float)
    if c.ndim != 2:
        raise ValueError(f"curves must be 2-D (seeds x grid points), got shape {c.shape}")
    finite = np.isfinite(c)
    n = finite.sum(axis=0)
    # Masked sums, divided only where the count allows, so no 0/0 warning can escape.
    total = np.where(finite, c, 0.0).sum(axis=0)
    mean = np.divide(total, n, out=np.full(n.shape, np.nan), where=n > 0)
    dev = np.where(finite, c - np.where(n > 0, mean, 0.0), 0.0)
    ss = (dev**2).sum(axis=0)
    std = np.divide(ss, n - 1, out=np.where(n == 1, 0.0, np.nan), where=n > 1)
    std = np.sqrt(std)
    return {"mean": mean, "std": std, "lo": mean - std, "hi": mean + std, "n": n}
