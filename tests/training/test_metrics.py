"""lossgen.training.metrics against scikit-learn, row by row, on data with many tied scores."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_curve,
    roc_auc_score,
)

from lossgen.training import metrics as M
from devices import DEVICES

TOL = 1e-6


# ----------------------------------------------------------------------------- sklearn oracle


def sk_best_f1(y: np.ndarray, s: np.ndarray) -> tuple[float, float, float]:
    """(best F1, accuracy at its threshold, the threshold) from precision_recall_curve.

    Ties in F1 (up to float rounding) go to the lowest threshold, the documented rule.
    """
    p, r, t = precision_recall_curve(y, s)
    p, r = p[:-1], r[:-1]  # drop the appended (precision 1, recall 0) end point: F1 = 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    best = f1.max()
    i = int(np.flatnonzero(f1 >= best - 1e-12)[0])  # thresholds come in increasing order
    return float(best), float(accuracy_score(y, (s >= t[i]).astype(int))), float(t[i])


def sk_row(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    f1, acc, thr = sk_best_f1(y, s)
    return {
        "auc": float(roc_auc_score(y, s)),
        "f1": f1,
        "accuracy": acc,
        "threshold": thr,
        "rmse": math.sqrt(mean_squared_error(y, s)),
        "mae": float(mean_absolute_error(y, s)),
    }


def ours(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "auc": M.auc(scores, labels),
        "f1": M.best_f1(scores, labels),
        "accuracy": M.accuracy(scores, labels),
        "threshold": M.best_threshold(scores, labels),
        "rmse": M.rmse(scores, labels),
        "mae": M.mae(scores, labels),
    }


def assert_matches_sklearn(scores: torch.Tensor, labels: torch.Tensor) -> None:
    got = ours(scores, labels)
    k = scores.shape[0] if scores.dim() == 2 else labels.shape[0]
    s_np = np.broadcast_to(scores.cpu().numpy(), (k, scores.shape[-1]))
    y_np = np.broadcast_to(labels.cpu().numpy(), (k, labels.shape[-1])).astype(int)
    for name, v in got.items():
        assert v.shape == (k,), name
        assert v.dtype == (scores.dtype if name == "threshold" else torch.float64), name
    for row in range(k):
        want = sk_row(y_np[row], s_np[row])
        for name, value in want.items():
            assert abs(float(got[name][row]) - value) <= TOL, (name, row, float(got[name][row]), value)


def tied_data(seed, k, n, levels, pos_rate, shared_labels, dtype, both_classes=True):
    """Scores on a grid of `levels` values (rounded to 2 decimals): many ties; labels 0/1."""
    rng = np.random.default_rng(seed)
    s = np.round(rng.integers(0, levels, size=(k, n)) / max(levels - 1, 1), 2)
    y = (rng.random((n,) if shared_labels else (k, n)) < pos_rate).astype(np.float32)
    if both_classes:
        rows = y.reshape(-1, n)
        rows[:, 0], rows[:, -1] = 1.0, 0.0  # every row has both classes (n >= 2)
    return torch.tensor(s, dtype=dtype), torch.tensor(y)


# ----------------------------------------------------------------------------- property tests


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 5),
    n=st.integers(2, 300),
    levels=st.sampled_from([2, 3, 5, 11, 101]),
    pos_rate=st.floats(0.05, 0.95),
    shared_labels=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_equals_sklearn_on_tied_scores(seed, k, n, levels, pos_rate, shared_labels, dtype):
    scores, labels = tied_data(seed, k, n, levels, pos_rate, shared_labels, dtype)
    assert_matches_sklearn(scores, labels)


@settings(max_examples=50, deadline=None)
@given(
    rows=st.integers(1, 4).flatmap(
        lambda k: st.integers(2, 40).flatmap(
            lambda n: st.tuples(
                st.lists(st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=n, max_size=n),
                         min_size=k, max_size=k),
                st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n).filter(lambda y: 0 < sum(y) < len(y)),
            )
        )
    )
)
def test_equals_sklearn_on_small_drawn_examples(rows):
    """Shrinkable examples: hypothesis draws the values themselves, so failures come out minimal."""
    scores, labels = rows
    assert_matches_sklearn(torch.tensor(scores, dtype=torch.float64), torch.tensor(labels))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 5), n=st.integers(2, 300),
       shared_labels=st.booleans())
def test_vectorised_result_equals_per_row_results(seed, k, n, shared_labels):
    scores, labels = tied_data(seed, k, n, 21, 0.4, shared_labels, torch.float32)
    batched = ours(scores, labels)
    for row in range(k):
        y = labels if shared_labels else labels[row]
        single = ours(scores[row], y)
        for name in batched:
            assert single[name].shape == ()
            assert float(batched[name][row]) == float(single[name]), name


# ----------------------------------------------------------------------------- fixed examples


def test_fixed_example_by_hand():
    # Positives at 0.8, 0.4 (tied with a negative), 0.4; negatives 0.4, 0.1.
    scores = torch.tensor([0.8, 0.4, 0.4, 0.4, 0.1])
    labels = torch.tensor([1, 1, 0, 1, 0])
    # Pairs (pos, neg): (0.8 vs 0.4) 1, (0.8 vs 0.1) 1, two 0.4-positives: vs 0.4 1/2 each, vs 0.1 1.
    assert float(M.auc(scores, labels)) == pytest.approx((1 + 1 + 2 * 0.5 + 2) / 6)
    # Thresholds 0.8: TP1 FP0 -> F1 0.5; 0.4: TP3 FP1 -> F1 6/7; 0.1: TP3 FP2 -> F1 0.75.
    assert float(M.best_f1(scores, labels)) == pytest.approx(6 / 7)
    assert float(M.best_threshold(scores, labels)) == pytest.approx(0.4)
    assert float(M.accuracy(scores, labels)) == pytest.approx(4 / 5)
    assert_matches_sklearn(scores[None], labels)


def test_fixed_rounded_random_example():
    rng = np.random.default_rng(7)
    labels = (rng.random(300) < 0.45).astype(np.float32)
    raw = labels[None] * 0.3 + rng.random((5, 300))  # informative, different per model
    scores = torch.tensor(np.round(raw / raw.max(), 2), dtype=torch.float32)
    assert_matches_sklearn(scores, torch.tensor(labels))


def test_f1_ties_go_to_the_lowest_threshold():
    # Threshold 0.9: TP 1, FP 0 -> F1 2/3; threshold 0.5: TP 2, FP 2 -> F1 2/3 as well.
    scores = torch.tensor([0.9, 0.5, 0.5, 0.5, 0.1])
    labels = torch.tensor([1, 1, 0, 0, 0])
    assert float(M.best_f1(scores, labels)) == pytest.approx(2 / 3)
    assert float(M.best_threshold(scores, labels)) == pytest.approx(0.5)
    assert float(M.accuracy(scores, labels)) == pytest.approx(3 / 5)


def test_all_scores_tied():
    scores = torch.full((3, 10), 0.5)
    labels = torch.tensor([1, 0] * 5)
    assert M.auc(scores, labels).tolist() == [0.5] * 3
    assert M.best_f1(scores, labels).tolist() == pytest.approx([2 / 3] * 3)
    assert M.accuracy(scores, labels).tolist() == [0.5] * 3


def test_shapes_and_broadcasting():
    scores, labels = tied_data(3, 4, 50, 11, 0.5, False, torch.float32)
    assert M.auc(scores[0], labels[0]).shape == ()
    # scores [N] with labels [K, N]: one model judged against K label sets.
    a = M.auc(scores[0], labels)
    assert a.shape == (4,)
    assert torch.equal(a, torch.stack([M.auc(scores[0], labels[r]) for r in range(4)]))
    assert M.rmse(scores[:0], labels[0]).shape == (0,)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.float16])
def test_other_score_and_label_dtypes(dtype):
    scores = torch.tensor([[3, 1, 2, 2, 0], [0, 1, 1, 1, 0]]).to(dtype)
    labels = torch.tensor([True, False, True, False, False])
    assert_matches_sklearn(scores.to(torch.float64), labels.to(torch.int64))
    got = ours(scores, labels)
    want = ours(scores.to(torch.float64), labels.to(torch.int64))
    for name in got:
        assert torch.equal(got[name], want[name]), name


def test_infinite_scores_rank_like_large_finite_ones():
    scores = torch.tensor([float("inf"), 0.3, float("-inf"), 0.3, float("inf")])
    finite = torch.tensor([1e9, 0.3, -1e9, 0.3, 1e9])
    labels = torch.tensor([1, 0, 0, 1, 0])
    for fn in (M.auc, M.best_f1, M.accuracy):
        assert float(fn(scores, labels)) == float(fn(finite, labels))


def test_regression_metrics_with_real_labels():
    rng = np.random.default_rng(1)
    y = rng.integers(1, 6, size=200).astype(np.float64)
    s = y[None] + rng.normal(size=(3, 200))
    st_, yt = torch.tensor(s, dtype=torch.float32), torch.tensor(y)
    for row in range(3):
        s32 = st_[row].double().numpy()
        assert float(M.rmse(st_, yt)[row]) == pytest.approx(math.sqrt(mean_squared_error(y, s32)), abs=TOL)
        assert float(M.mae(st_, yt)[row]) == pytest.approx(mean_absolute_error(y, s32), abs=TOL)


# ----------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_auc_of_one_class_raises(value):
    """Undefined AUC is an error (older scikit-learn raised too; 1.9 warns and returns NaN)."""
    scores = torch.rand(2, 6)
    labels = torch.full((6,), value)
    with pytest.raises(ValueError, match="only one class.*row 0"):
        M.auc(scores, labels)
    # [K, N] labels: the message names the offending row.
    two = torch.tensor([[1.0, 0, 1, 0, 0, 0], [value] * 6])
    with pytest.raises(ValueError, match="row 1"):
        M.auc(scores, two)


def test_f1_needs_a_positive_but_all_positive_is_fine():
    scores = torch.tensor([0.2, 0.9, 0.5])
    with pytest.raises(ValueError, match="no positive labels"):
        M.best_f1(scores, torch.zeros(3))
    with pytest.raises(ValueError, match="no positive labels"):
        M.accuracy(scores, torch.zeros(3))
    assert float(M.best_f1(scores, torch.ones(3))) == 1.0
    assert float(M.accuracy(scores, torch.ones(3))) == 1.0
    assert float(M.best_threshold(scores, torch.ones(3))) == pytest.approx(0.2)


@pytest.mark.parametrize("fn", [M.auc, M.best_f1, M.accuracy, M.rmse, M.mae])
def test_nan_raises(fn):
    scores = torch.tensor([[0.1, 0.2, 0.3], [0.1, float("nan"), 0.3]])
    labels = torch.tensor([0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"scores contain NaN \(first in row 1\)"):
        fn(scores, labels)
    with pytest.raises(ValueError, match="labels contain NaN"):
        fn(scores[0], torch.tensor([0.0, float("nan"), 1.0]))


@pytest.mark.parametrize("fn", [M.auc, M.best_f1, M.accuracy])
def test_non_binary_labels_raise(fn):
    with pytest.raises(ValueError, match="must be 0 or 1, got 4"):
        fn(torch.rand(4), torch.tensor([0.0, 1.0, 4.0, 1.0]))


@pytest.mark.parametrize(
    "scores, labels, message",
    [
        (torch.rand(3, 5), torch.rand(4), "5 points but labels have 4"),
        (torch.rand(3, 5), torch.rand(2, 5), "3 rows but labels have 2"),
        (torch.rand(2, 3, 5), torch.rand(5), r"shape \[K, N\] or \[N\]"),
        (torch.rand(2, 0), torch.rand(0), "no points"),
        (np.zeros(3), torch.rand(3), "must be a torch.Tensor"),
    ],
)
def test_bad_shapes_raise(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        M.rmse(scores, labels)


# ----------------------------------------------------------------------------- task level


def test_metrics_compute_equals_the_single_functions():
    scores, labels = tied_data(11, 3, 120, 11, 0.5, True, torch.float32)
    cls = M.Metrics.compute(scores, labels, "classification")
    assert list(cls) == ["auc", "f1", "accuracy"] and len(cls) == 3
    assert torch.equal(cls["auc"], M.auc(scores, labels))
    assert torch.equal(cls["f1"], M.best_f1(scores, labels))
    assert torch.equal(cls["accuracy"], M.accuracy(scores, labels))
    assert cls.row(2) == {k: float(v[2]) for k, v in cls.items()}
    reg = M.Metrics.compute(scores, labels, "regression")
    assert dict(reg).keys() == {"rmse", "mae"}
    assert torch.equal(reg["rmse"], M.rmse(scores, labels))
    assert torch.equal(reg["mae"], M.mae(scores, labels))
    one = M.Metrics.compute(scores[0], labels, "regression")
    assert set(one.row()) == {"rmse", "mae"} and one["rmse"].shape == ()
    assert "classification" in repr(cls)
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        M.Metrics.compute(scores, labels, "ranking")


def test_metric_for_task_gives_higher_is_better_utilities():
    scores = torch.tensor([[0.9, 0.1, 0.8, 0.2], [0.1, 0.9, 0.2, 0.8]])
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0])
    cls = M.metric_for_task("classification")
    assert (cls.name, cls.higher_is_better) == ("auc", True)
    assert cls.utility(scores, labels).tolist() == [1.0, 0.0]
    reg = M.metric_for_task("regression")
    assert (reg.name, reg.higher_is_better) == ("rmse", False)
    assert torch.equal(reg.utility(scores, labels), -reg(scores, labels))
    # Reward = change of AUC, or change of -RMSE: an RMSE that drops is a positive reward.
    assert float(reg.reward(torch.tensor(0.5), torch.tensor(0.4))) == pytest.approx(0.1)
    assert float(cls.reward(torch.tensor(0.7), torch.tensor(0.75))) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="unknown task"):
        M.metric_for_task("ranking")


@pytest.mark.parametrize("device", DEVICES)
def test_runs_on_device(device):
    scores, labels = tied_data(5, 4, 200, 11, 0.5, False, torch.float32)
    got = M.Metrics.compute(scores.to(device), labels.to(device), "classification")
    want = M.Metrics.compute(scores, labels, "classification")
    for name in want:
        assert got[name].device.type == device
        assert torch.allclose(got[name].cpu(), want[name], rtol=0, atol=1e-12), name
    with pytest.raises(ValueError, match="labels are on"):
        M.auc(scores.to(device), labels.to("meta")) if device == "cpu" else M.auc(scores.to(device), labels)


@pytest.mark.parametrize("task", M.TASKS)
def test_task_metrics_lists_what_compute_reports(task):
    scores, labels = tied_data(2, 2, 30, 5, 0.5, True, torch.float32)
    assert tuple(M.Metrics.compute(scores, labels, task)) == M.TASK_METRICS[task]
