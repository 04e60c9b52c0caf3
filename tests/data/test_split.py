"""The paper's split rules (§5.1.1) on small hand-made logs."""

import numpy as np
import pytest

from lossgen.data import Ratings, SplitSettings, leave_one_out, prepare

TRAIN, VAL, TEST = 0, 1, 2


def parts(labels, times=None, users=None, min_interactions=5):
    labels = np.asarray(labels, dtype=np.int8)
    n = len(labels)
    times = np.arange(n) if times is None else np.asarray(times)
    users = np.zeros(n, dtype=np.int64) if users is None else np.asarray(users, dtype=np.int64)
    return leave_one_out(users, labels, np.asarray(times, dtype=np.int64), min_interactions).tolist()


def test_last_positive_and_negatives_after_go_to_test():
    #         P  N  P  N  N  P  N  N
    labels = [1, 0, 1, 0, 0, 1, 0, 0]
    assert parts(labels) == [TRAIN, TRAIN, VAL, VAL, VAL, TEST, TEST, TEST]


def test_negatives_before_second_to_last_positive_stay_in_train():
    labels = [0, 0, 1, 0, 1, 0]
    assert parts(labels) == [TRAIN, TRAIN, VAL, VAL, TEST, TEST]


def test_fewer_than_min_interactions_all_train():
    assert parts([1, 0, 1, 1]) == [TRAIN] * 4
    assert parts([1, 0, 1, 1, 0]) == [TRAIN, TRAIN, VAL, TEST, TEST]  # exactly 5 is split
    assert parts([1, 0, 1, 1, 0], min_interactions=6) == [TRAIN] * 5


def test_user_without_positive_all_train_and_single_positive_has_no_validation():
    assert parts([0, 0, 0, 0, 0, 0]) == [TRAIN] * 6
    assert parts([0, 0, 1, 0, 0, 0]) == [TRAIN, TRAIN, TEST, TEST, TEST, TEST]


def test_order_is_by_timestamp_not_file_order():
    times = [5, 0, 6, 2, 1, 3, 4]
    labels = [1, 1, 0, 0, 0, 1, 0]
    # By time: row1 P, row4 N, row3 N, row5 P, row6 N, row0 P, row2 N.
    assert parts(labels, times) == [TEST, TRAIN, TEST, TRAIN, TRAIN, VAL, VAL]


def test_timestamp_ties_are_broken_by_file_order():
    # All rows share one timestamp: file order decides, so the last positive in the file is "last".
    labels = [0, 1, 0, 1, 0, 1, 0]
    same = [7] * 7
    assert parts(labels, same) == parts(labels)
    assert parts(labels, same) == [TRAIN, TRAIN, TRAIN, VAL, VAL, TEST, TEST]
    # Two positives tied at the end: the later file row is the test positive.
    assert parts([0, 0, 0, 1, 1], [1, 2, 3, 9, 9]) == [TRAIN, TRAIN, TRAIN, VAL, TEST]
    assert parts([1, 1, 0, 0, 0], [9, 9, 1, 2, 3]) == [VAL, TEST, TRAIN, TRAIN, TRAIN]


def test_users_are_split_independently_whatever_the_interleaving():
    users = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 2]
    labels = [1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1]
    got = parts(labels, users=users)
    u0 = [g for g, u in zip(got, users) if u == 0]
    u1 = [g for g, u in zip(got, users) if u == 1]
    assert u0 == parts([1, 0, 1, 0, 1])
    assert u1 == parts([0, 1, 1, 1, 0])
    assert [g for g, u in zip(got, users) if u == 2] == [TRAIN, TRAIN]


def _ratings(users, items, ratings, times):
    a = lambda x, t: np.asarray(x, dtype=t)  # noqa: E731
    return Ratings(a(users, np.int64), a(items, np.int64), a(ratings, np.float64), a(times, np.int64), "test", "x")


def test_prepare_labels_reindex_and_item_seen_only_in_test():
    # raw user 50 rates items 7, 3, 9, 3... ; item 99 appears only as the last (test) positive.
    r = _ratings(
        users=[50, 50, 50, 50, 50, 20, 20],
        items=[7, 3, 9, 8, 99, 7, 3],
        ratings=[4, 3, 5, 2, 4, 1, 5],
        times=[1, 2, 3, 4, 5, 1, 2],
    )
    p = prepare(r)
    assert p.user_ids.tolist() == [20, 50] and p.item_ids.tolist() == [3, 7, 8, 9, 99]
    assert p.parts["train"].users.tolist() == [0, 0, 1, 1]  # user 20 (2 rows) wholly train
    assert p.parts["validation"].items.tolist() == [3, 2]  # raw 9 (rating 5) then raw 8 (rating 2)
    assert p.parts["validation"].labels.tolist() == [1, 0]
    assert p.parts["test"].items.tolist() == [4] and p.parts["test"].labels.tolist() == [1]
    s = p.statistics
    assert (s.users, s.items, s.positive, s.negative, s.train, s.validation, s.test) == (2, 5, 4, 3, 4, 2, 1)


def test_threshold_setting_changes_labels():
    r = _ratings([1] * 5, [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    assert prepare(r).statistics.positive == 2
    assert prepare(r, SplitSettings(threshold=2.5)).statistics.positive == 3


@pytest.mark.parametrize("seed", range(5))
def test_split_invariants_on_random_logs(seed):
    rng = np.random.default_rng(seed)
    n = 400
    users = rng.integers(0, 30, n)
    labels = (rng.random(n) < 0.5).astype(np.int8)
    times = rng.integers(0, 20, n)  # many ties
    part = leave_one_out(users, labels, times, 5)
    for u in range(30):
        rows = np.flatnonzero(users == u)
        rows = rows[np.argsort(times[rows], kind="stable")]
        seq, lab = part[rows], labels[rows]
        assert (np.diff(seq) >= 0).all()  # train, then validation, then test, in time order
        if len(rows) < 5 or lab.sum() == 0:
            assert (seq == TRAIN).all()
            continue
        assert lab[seq == TEST].sum() == 1 and lab[seq == TEST][0] == 1
        assert lab[seq == VAL].sum() == (1 if lab.sum() >= 2 else 0)
        if (seq == VAL).any():
            assert lab[seq == VAL][0] == 1
