"""The sync writes only what changed: Label Studio's queue serves our head in our order, with as
few predictions rewritten as that takes (issue 18: every publish rewrote every unlabeled task)."""

import numpy as np
import pytest

from backend.sync import plan_scores


def _served_first(final: np.ndarray, head: int) -> list[int]:
    return list(np.argsort(final, kind="stable")[:head])


def test_annotating_the_top_task_writes_nothing():
    n = 400
    before = np.arange(n) / (n - 1)  # what Label Studio holds: our last ranking
    pool = np.arange(1, n)  # task 0 was annotated; the others keep their relative order
    ours = (np.arange(n - 1)) / (n - 2)  # every rank-encoded score shifted
    final, write = plan_scores(ours, before[pool], head=50)
    assert not write.any()
    assert _served_first(final, 50) == list(range(50))


def test_a_task_that_jumps_to_the_top_is_the_only_one_written():
    n = 300
    held = np.arange(n) / (n - 1)
    ours = held.copy()
    ours[250] = -1.0  # the model changed its mind about task 250: most informative now
    final, write = plan_scores(ours, held, head=40)
    assert list(np.flatnonzero(write)) == [250]
    assert _served_first(final, 40) == list(np.argsort(ours, kind="stable")[:40])


@pytest.mark.parametrize("seed", range(20))
def test_labels_studio_serves_our_head_in_our_order_whatever_it_held(seed):
    rng = np.random.default_rng(seed)
    n, head = int(rng.integers(5, 400)), int(rng.integers(1, 120))
    ours = rng.random(n)
    held = np.where(rng.random(n) < 0.8, ours + rng.normal(0, 0.05, n), np.nan)  # mostly close, some unknown
    held[rng.random(n) < 0.1] = rng.random()  # and some far off
    final, write = plan_scores(ours, held, head)
    assert not np.isnan(final).any()
    assert np.all(final[~write] == held[~write])  # what is not written is what Label Studio holds
    head = min(head, n)
    expected = list(np.argsort(ours, kind="stable")[:head])
    assert _served_first(final, head) == expected
    assert final[expected].max() < np.delete(final, expected).min(initial=np.inf)  # nothing cuts in
    assert len(set(np.round(final[expected], 12))) == head  # no ties in the head
