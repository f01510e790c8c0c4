"""The sync writes only what changed: Label Studio's queue tab serves our head in our order, with
as few task ranks written as that takes (issue 18: every publish rewrote every unlabeled task).
Tasks without a rank (NaN) sort after every rank, as Label Studio's Data Manager sorts them."""

import numpy as np
import pytest

from backend.query.writeback import SPACING, plan_ranks


def _served_first(final: np.ndarray, head: int) -> list[int]:
    return list(np.argsort(final, kind="stable")[:head])


def test_annotating_the_top_task_writes_nothing():
    n = 400
    before = np.arange(n) / (n - 1)  # what Label Studio holds: our last ranking
    pool = np.arange(1, n)  # task 0 was annotated; the others keep their relative order
    ours = (np.arange(n - 1)) / (n - 2)  # every rank-encoded score shifted
    final, write = plan_ranks(ours, before[pool], head=50)
    assert not write.any()
    assert _served_first(final, 50) == list(range(50))


def test_a_task_that_jumps_to_the_top_is_all_that_is_written():
    n = 300
    held = SPACING * np.arange(1, n + 1, dtype=float)  # whole-number ranks, as the sync writes them
    ours = held.copy()
    ours[250] = -1.0  # the model changed its mind about task 250: most informative now
    final, write = plan_ranks(ours, held, head=40)
    assert set(np.flatnonzero(write)) == {250}
    assert _served_first(final, 40) == list(np.argsort(ours, kind="stable")[:40])


def test_ranks_are_whole_numbers_and_never_tie_however_often_the_head_is_reordered():
    """Issue 26: ranks placed between kept ones were rounded to 9 decimals, and after 17 syncs the
    50-task head held 3 distinct values (Label Studio breaks ties by task id). Whole numbers, and
    the head renumbered when no whole number is free between two neighbours."""
    rng = np.random.default_rng(5)
    n, head = 400, 50
    held = np.full(n, np.nan)
    renumbered = 0
    for _ in range(200):  # a task keeps jumping in front of the same neighbour: the gap halves each time
        ours = np.arange(n, dtype=float)
        ours[rng.integers(1, n, 3)] = rng.random(3) * 2  # a few tasks move near the top
        final, write = plan_ranks(ours, held, head)
        expected = list(np.argsort(ours, kind="stable")[:head])
        assert _served_first(final, head) == expected
        assert len(set(final[expected])) == head  # no ties in the head
        assert all(float(r).is_integer() for r in final[write])
        renumbered += write.sum() >= head
        held = final
    assert renumbered >= 1  # gaps ran out at least once and the head was renumbered


@pytest.mark.parametrize("seed", range(20))
def test_labels_studio_serves_our_head_in_our_order_whatever_it_held(seed):
    rng = np.random.default_rng(seed)
    n, head = int(rng.integers(5, 400)), int(rng.integers(1, 120))
    ours = rng.random(n)
    held = np.where(rng.random(n) < 0.8, np.clip(ours + rng.normal(0, 0.05, n), 0, None), np.nan)  # some unknown
    held[rng.random(n) < 0.1] = rng.random()  # and some far off
    held[rng.random(n) < 0.05] = 0.0  # and some at the very bottom of the range
    final, write = plan_ranks(ours, held, head)
    assert np.nanmin(final, initial=0) >= 0 and not np.isnan(final[write]).any()
    assert np.array_equal(final[~write], held[~write], equal_nan=True)  # not written: what Label Studio holds
    head = min(head, n)
    expected = list(np.argsort(ours, kind="stable")[:head])
    assert not np.isnan(final[expected]).any()  # the head holds ranks...
    assert _served_first(final, head) == expected
    rest = np.delete(final, expected)
    assert final[expected].max() < np.nanmin(rest, initial=np.inf)  # ...and nothing cuts in
    assert write.sum() <= head + np.count_nonzero(~np.isnan(held))  # unranked tasks past the head stay so
    assert len(set(np.round(final[expected], 12))) == head  # no ties in the head


def test_a_100k_pool_writes_in_proportion_to_what_changed():
    rng = np.random.default_rng(1)
    n, head = 100_000, 100
    held = SPACING * np.arange(1, n + 1, dtype=float)  # whole-number ranks, as the sync writes them
    _, shifted = plan_ranks(np.arange(n - 1) / (n - 2), held[1:], head)  # the top task was annotated
    assert shifted.sum() == 0
    refreshed = held + rng.normal(0, 0.02 * SPACING * n, n)  # a head refresh nudges every score
    final, write = plan_ranks(refreshed, held, head)
    assert write.sum() < 0.005 * n
    assert _served_first(final, head) == list(np.argsort(refreshed, kind="stable")[:head])
    unrelated = rng.random(n)  # even a ranking unrelated to the last one rewrites the head's region only
    final, write = plan_ranks(unrelated, held, head)
    assert write.sum() < 0.03 * n
    assert _served_first(final, head) == list(np.argsort(unrelated, kind="stable")[:head])


def test_a_new_queue_ranks_its_head_only():
    ours = np.random.default_rng(3).random(10_000)
    final, write = plan_ranks(ours, np.full(10_000, np.nan), head=100)
    head = np.argsort(ours, kind="stable")[:100]
    assert write.sum() == 100 and write[head].all()
    assert list(np.argsort(final, kind="stable")[:100]) == list(head)
