"""Evaluation metrics for recommender scores, vectorised over K models at once.

    auc(scores, labels)        -> ROC AUC, ties as scikit-learn's roc_auc_score
    best_f1(scores, labels)    -> the largest F1 over all thresholds
    accuracy(scores, labels)   -> accuracy at the threshold that maximises F1
    rmse(scores, labels), mae(scores, labels)
    Metrics.compute(scores, labels, task)  -> all metrics of a task, one sort for the ranking ones
    metric_for_task(task)      -> the validation metric that drives rewards and early stopping

Shapes: ``scores`` is ``[K, N]`` or ``[N]``, ``labels`` is ``[N]`` (shared) or ``[K, N]``; they
broadcast against each other. The result is a float64 tensor ``[K]`` on the scores' device, or a
0-dim tensor when both inputs are 1-D. Everything is plain torch (CPU or CUDA) with no Python
loop over K or N: one per-row sort plus a batched ``searchsorted`` gives every point the extent
of its tie group, so the cost is O(K N log N). Counts and sums are taken in float64, where they
are exact (integers and half-integers) for any N below 2**52.

AUC: the Mann-Whitney statistic with average ranks for tied scores,
``(sum of positive ranks - P (P + 1) / 2) / (P * Nn)``. This equals the trapezoid under the ROC
curve over the distinct score thresholds, which is what ``roc_auc_score`` computes, so ties count
one half exactly as there.

Threshold for F1 and Accuracy: the candidate thresholds are the distinct scores of the row, and a
point is predicted positive when ``score >= threshold``. These are exactly the thresholds of
scikit-learn's ``precision_recall_curve`` (its extra end point, precision 1 and recall 0, has
F1 = 0 and never wins). F1 is computed as ``2 TP / (TP + FP + P)``, the exact ratio rounded once,
so thresholds with mathematically equal F1 compare equal; among those the lowest threshold is
taken (the first maximum in ``precision_recall_curve``'s increasing order). Accuracy is
``(TP + TN) / N`` at that threshold. The threshold itself is returned by `best_threshold`.

Edge cases (ValueError, naming the problem and the first offending row):
- NaN in scores or labels (infinite scores are allowed: ranking them is well-defined);
- classification labels other than 0/1 (bool is accepted);
- AUC of a row whose labels are all one class (undefined; older scikit-learn raised ValueError,
  recent releases warn and return NaN);
- F1/Accuracy of a row with no positive label (F1 is 0 at every threshold, so no threshold
  maximises it); a row of only positives is fine (F1 = Accuracy = 1 at the lowest score);
- empty rows (N = 0) or shapes that do not broadcast.
Raising rather than returning NaN keeps a broken validation split from silently turning into a
NaN reward.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Callable

import torch

__all__ = [
    "TASKS",
    "TASK_METRICS",
    "Metrics",
    "MetricSpec",
    "accuracy",
    "auc",
    "best_f1",
    "best_threshold",
    "mae",
    "metric_for_task",
    "rmse",
]

TASKS: tuple[str, ...] = ("classification", "regression")
# The metrics Metrics.compute reports per task, in table order.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("auc", "f1", "accuracy"),
    "regression": ("rmse", "mae"),
}


# ----------------------------------------------------------------------------- input handling


def _as_2d(scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Broadcast to [K, N]; the flag says the caller passed 1-D inputs and wants a 0-dim result."""
    for name, t in (("scores", scores), ("labels", labels)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() not in (1, 2):
            raise ValueError(f"{name} must have shape [K, N] or [N], got {list(t.shape)}")
        if t.is_complex():
            raise ValueError(f"{name} must be real, got {t.dtype}")
    if scores.device != labels.device:
        raise ValueError(f"scores are on {scores.device} but labels are on {labels.device}")
    if scores.shape[-1] != labels.shape[-1]:
        raise ValueError(f"scores have {scores.shape[-1]} points but labels have {labels.shape[-1]}")
    if scores.shape[-1] == 0:
        raise ValueError("no points: metrics need N >= 1")
    if scores.dim() == 2 and labels.dim() == 2 and scores.shape[0] != labels.shape[0]:
        raise ValueError(f"scores have {scores.shape[0]} rows but labels have {labels.shape[0]}")
    if scores.dtype == torch.bool:
        scores = scores.to(torch.uint8)
    if scores.is_floating_point() and torch.isnan(scores).any():
        raise ValueError(f"scores contain NaN (first in row {_first_bad_row(torch.isnan(scores))})")
    if labels.is_floating_point() and torch.isnan(labels).any():
        raise ValueError(f"labels contain NaN (first in row {_first_bad_row(torch.isnan(labels))})")
    squeeze = scores.dim() == 1 and labels.dim() == 1
    k = scores.shape[0] if scores.dim() == 2 else labels.shape[0] if labels.dim() == 2 else 1
    n = scores.shape[-1]
    return scores.expand(k, n), labels.expand(k, n), squeeze


def _first_bad_row(mask: torch.Tensor) -> int:
    """Row index of the first True in a [K, N] or [N] mask (0 for 1-D)."""
    return int(mask.reshape(-1, mask.shape[-1]).any(dim=-1).nonzero()[0, 0])


def _binary(labels: torch.Tensor) -> torch.Tensor:
    """Labels as float64 0/1; anything else is a caller error (regression labels, ratings)."""
    if labels.dtype == torch.bool:
        return labels.to(torch.float64)
    bad = (labels != 0) & (labels != 1)
    if bad.any():
        value = labels[bad][0].item()
        raise ValueError(
            f"classification labels must be 0 or 1, got {value} (row {_first_bad_row(bad)}); "
            "use the regression task for real-valued labels"
        )
    return labels.to(torch.float64)


def _out(x: torch.Tensor, squeeze: bool) -> torch.Tensor:
    return x[0] if squeeze else x


# ----------------------------------------------------------------------------- ranking core


@dataclass(frozen=True)
class _Ranked:
    """Per-row tie-group statistics shared by AUC, F1 and Accuracy (one sort for all three)."""

    n_pos: torch.Tensor  # [K] float64
    n_neg: torch.Tensor  # [K] float64
    rank_sum_pos: torch.Tensor  # [K] float64: sum of the average (1-based) ranks of the positives
    f1: torch.Tensor  # [K, N] float64: F1 at the threshold = the score of point j (ascending order)
    acc: torch.Tensor  # [K, N] float64: accuracy at that same threshold
    sorted_scores: torch.Tensor  # [K, N] ascending


def _rank(scores: torch.Tensor, labels: torch.Tensor) -> _Ranked:
    """Sort each row once; a batched searchsorted gives each point where its tie group starts/ends."""
    s, order = torch.sort(scores, dim=-1)
    y = labels.gather(-1, order)  # float64 0/1, ascending score order
    first = torch.searchsorted(s, s, side="left")  # 0-based start of the tie group
    end = torch.searchsorted(s, s, side="right")  # one past its end
    n = s.shape[-1]
    n_pos = y.sum(dim=-1)
    n_neg = n - n_pos
    # average 1-based rank of positions first..end-1 is (first + 1 + end) / 2
    avg_rank = (first + end + 1).to(torch.float64) * 0.5
    rank_sum_pos = (avg_rank * y).sum(dim=-1)
    # Threshold t = s[j]: predicted positive are the points at positions >= first[j].
    pos_below = torch.cumsum(y, dim=-1) - y  # positives strictly before each position
    pos_before_group = pos_below.gather(-1, first)
    tp = n_pos[:, None] - pos_before_group
    predicted = (n - first).to(torch.float64)
    fp = predicted - tp
    f1 = 2.0 * tp / (predicted + n_pos[:, None])
    acc = (tp + (n_neg[:, None] - fp)) / n
    return _Ranked(n_pos, n_neg, rank_sum_pos, f1, acc, s)


def _auc_from(r: _Ranked) -> torch.Tensor:
    one_class = (r.n_pos == 0) | (r.n_neg == 0)
    if one_class.any():
        row = int(one_class.nonzero()[0, 0])
        which = "negative" if bool(r.n_pos[row] == 0) else "positive"
        raise ValueError(
            f"only one class present in the labels (row {row} has only {which} labels); "
            "ROC AUC is not defined in that case"
        )
    return (r.rank_sum_pos - r.n_pos * (r.n_pos + 1) * 0.5) / (r.n_pos * r.n_neg)


def _best_index(r: _Ranked) -> torch.Tensor:
    """Index (ascending order) of the lowest threshold with the maximal F1, per row."""
    no_pos = r.n_pos == 0
    if no_pos.any():
        row = int(no_pos.nonzero()[0, 0])
        raise ValueError(
            f"no positive labels in row {row}: F1 is 0 at every threshold, so no threshold maximises it"
        )
    best = r.f1.max(dim=-1, keepdim=True).values
    idx = torch.arange(r.f1.shape[-1], device=r.f1.device).expand_as(r.f1)
    n = r.f1.shape[-1]
    return torch.where(r.f1 == best, idx, n).min(dim=-1, keepdim=True).values


# ----------------------------------------------------------------------------- public metrics


def auc(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ROC AUC per row, equal to sklearn.metrics.roc_auc_score (ties count one half)."""
    s, y, squeeze = _as_2d(scores, labels)
    return _out(_auc_from(_rank(s, _binary(y))), squeeze)


def best_f1(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Largest F1 over the distinct-score thresholds (predict positive when score >= threshold)."""
    s, y, squeeze = _as_2d(scores, labels)
    r = _rank(s, _binary(y))
    return _out(r.f1.gather(-1, _best_index(r)).squeeze(-1), squeeze)


def accuracy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Accuracy at the F1-maximising threshold, so F1 and Accuracy describe one operating point."""
    s, y, squeeze = _as_2d(scores, labels)
    r = _rank(s, _binary(y))
    return _out(r.acc.gather(-1, _best_index(r)).squeeze(-1), squeeze)


def best_threshold(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The score threshold used by best_f1/accuracy (the lowest one among equal best F1)."""
    s, y, squeeze = _as_2d(scores, labels)
    r = _rank(s, _binary(y))
    return _out(r.sorted_scores.gather(-1, _best_index(r)).squeeze(-1), squeeze)


def rmse(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Root mean squared error of predictions against labels, accumulated in float64."""
    s, y, squeeze = _as_2d(scores, labels)
    d = s.to(torch.float64) - y.to(torch.float64)
    return _out((d * d).mean(dim=-1).sqrt(), squeeze)


def mae(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of predictions against labels, accumulated in float64."""
    s, y, squeeze = _as_2d(scores, labels)
    return _out((s.to(torch.float64) - y.to(torch.float64)).abs().mean(dim=-1), squeeze)


# ----------------------------------------------------------------------------- task level


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return task


class Metrics(Mapping):
    """All metrics of one task for K models: a read-only mapping name -> Tensor[K] (or 0-dim).

    Classification holds auc, f1, accuracy (one sort serves all three); regression holds rmse,
    mae. `row(k)` gives plain floats for one model, e.g. for a results table.
    """

    def __init__(self, task: str, values: Mapping[str, torch.Tensor]):
        self.task = _check_task(task)
        self._values = dict(values)

    @classmethod
    def compute(cls, scores: torch.Tensor, labels: torch.Tensor, task: str) -> Metrics:
        _check_task(task)
        s, y, squeeze = _as_2d(scores, labels)
        if task == "regression":
            d = s.to(torch.float64) - y.to(torch.float64)
            values = {"rmse": (d * d).mean(dim=-1).sqrt(), "mae": d.abs().mean(dim=-1)}
        else:
            r = _rank(s, _binary(y))
            best = _best_index(r)
            values = {
                "auc": _auc_from(r),
                "f1": r.f1.gather(-1, best).squeeze(-1),
                "accuracy": r.acc.gather(-1, best).squeeze(-1),
            }
        return cls(task, {k: _out(v, squeeze) for k, v in values.items()})

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def row(self, k: int | None = None) -> dict[str, float]:
        """Plain floats for model k (k may be None for 0-dim results)."""
        return {name: float(v if k is None else v[k]) for name, v in self._values.items()}

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v.tolist()}" for k, v in self._values.items())
        return f"Metrics({self.task}: {body})"


@dataclass(frozen=True)
class MetricSpec:
    """The validation metric of a task, as Phase I rewards and early stopping use it.

    `utility` is always higher-is-better (AUC, or -RMSE), so a reward is simply
    ``utility(after) - utility(before)`` and "improved" is ``utility > best`` for either task.
    """

    task: str
    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    higher_is_better: bool

    def __call__(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The metric as reported (AUC, or RMSE)."""
        return self.fn(scores, labels)

    def utility(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The metric signed so that higher is better (AUC, or -RMSE)."""
        value = self.fn(scores, labels)
        return value if self.higher_is_better else -value

    def reward(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        """Change of utility from metric values `before` to `after` (DESIGN.md, Phase I)."""
        sign = 1.0 if self.higher_is_better else -1.0
        return sign * (after - before)


def metric_for_task(task: str) -> MetricSpec:
    """Classification -> AUC (higher is better); regression -> RMSE, rewarded as -RMSE."""
    if _check_task(task) == "classification":
        return MetricSpec(task, "auc", auc, True)
    return MetricSpec(task, "rmse", rmse, False)
