"""What to write back so that Label Studio's queue serves ours, writing as little as possible.

The queue's order lives in a task data field (``hitl_rank``) that the queue's Data Manager tab
sorts on, lower first, tasks without one last; the prediction's ``score`` is left to the
confidence annotators see. Label Studio 1.23 has no bulk write of task data, so each rank costs
one call: only the head of the queue holds ranks, and after a head refresh most of our ranking is
unchanged. ``plan_ranks`` keeps what Label Studio already holds wherever it is still in order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

RANK_FIELD = "hitl_rank"
SPACING = 1024  # between the whole-number ranks of a renumbered head: room for later insertions
REASON_FIELD = "hitl_reason"  # why the task is in the queue's head, written with its rank
REVIEW_FIELD = "hitl_review"  # rank in the review queue of confident pre-filled answers (its tab sorts on it)


def held_ranks(data: Sequence[dict[str, Any]], field: str = RANK_FIELD) -> np.ndarray:
    """The rank each task's data holds now (NaN: none, or not a number someone else put there)."""
    out = np.full(len(data), np.nan)
    for i, fields in enumerate(data):
        value = fields.get(field)
        if value is None:  # most of a large pool holds none
            continue
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
            out[i] = float(value)
    return out


def plan_ranks(ours: np.ndarray, held: np.ndarray, head: int) -> tuple[np.ndarray, np.ndarray]:
    """The ranks Label Studio should hold (NaN: none), and which tasks to write, so that its queue
    serves the first ``head`` tasks in our order (``ours``, lower first) before any other, writing
    as few tasks as possible.

    Written ranks are whole numbers, so no two tasks of the head ever tie (Label Studio would break
    the tie by task id); where no whole number is free between two kept neighbours, the head is
    renumbered. Ranks stay >= 0. ``held`` is the rank Label Studio holds for a task, NaN where it holds none
    (sorted after every rank). Along our order, a longest increasing run of held ranks in the head
    stays and the rest of the head gets ranks between its kept neighbours; a task past the head
    stays if it holds no rank or one that sorts after the whole head (it is written once it moves
    into the head). The run is capped at the held rank that makes head and tail rewrites fewest
    together. Annotating the top task shifts every position by one, which changes no relative
    order and so writes nothing."""
    n = len(ours)
    order = np.argsort(ours, kind="stable")
    head = min(head, n)
    tail = order[head:]
    tail_held = np.sort(held[tail][~np.isnan(held[tail])])
    # a held rank of 0 leaves no room below it (ranks stay >= 0): kept only first
    positions = [p for p in range(head) if not np.isnan(held[order[p]]) and (held[order[p]] > 0 or p == 0)]
    best: tuple[int, list[int]] = (head + len(tail_held) + 1, [])
    for cap in sorted({float(held[order[p]]) for p in positions}):
        allowed = [p for p in positions if held[order[p]] <= cap]
        run = increasing_run([held[order[p]] for p in allowed], allowed)
        cost = head - len(run) + int(np.searchsorted(tail_held, cap, side="right"))
        if cost < best[0]:
            best = (cost, run)
    kept = set(best[1])
    final, write = np.array(held, dtype=float), np.zeros(n, dtype=bool)
    if not kept or not _fill_gaps(final, write, held, order, head, sorted(kept), tail_held):
        final, write = np.array(held, dtype=float), np.zeros(n, dtype=bool)  # no room: renumber the head
        final[order[:head]] = SPACING * np.arange(1, head + 1)
        write[order[:head]] = final[order[:head]] != held[order[:head]]
    top = float(final[order[:head]].max()) if head else 0.0
    tail_ranks = held[tail]
    moved = tail[~np.isnan(tail_ranks) & ~(tail_ranks > top)]  # in our order
    after = math.floor(max(top, float(np.nanmax(held[tail], initial=top)))) + 1
    for rank, task in enumerate(moved):  # after the head and every rank held past it
        final[task] = after + rank
        write[task] = True
    return final, write


def _fill_gaps(
    final: np.ndarray,
    write: np.ndarray,
    held: np.ndarray,
    order: np.ndarray,
    head: int,
    marks: list[int],
    tail_held: np.ndarray,
) -> bool:
    """Whole ranks for the head's tasks between the kept ones (``marks``, positions in our order),
    spread over each gap; False where a gap has fewer free whole numbers than tasks to place."""
    for k in range(len(marks) + 1):
        below, above = (marks[k - 1] if k else None), (marks[k] if k < len(marks) else None)
        first = below + 1 if below is not None else 0
        last = above - 1 if above is not None else head - 1
        if last < first:
            continue
        low = held[order[below]] if below is not None else 0.0
        if above is not None:
            high = held[order[above]]
        else:  # after the last kept task: below the first task past the head that stays where it is
            later = tail_held[tail_held > low]
            high = later[0] if len(later) else low + SPACING * (last - first + 2)
        free = range(math.floor(low) + 1, math.ceil(high))  # whole numbers strictly between low and high
        count = last - first + 1
        if len(free) < count:
            return False
        for j, p in enumerate(range(first, last + 1)):
            final[order[p]] = free[(j + 1) * len(free) // (count + 1)]
            write[order[p]] = True
    return True


def increasing_run(values: list[float], positions: list[int]) -> list[int]:
    """Positions of a longest strictly increasing subsequence of ``values`` (patience sorting)."""
    tails: list[int] = []  # index into values of the smallest tail of each run length
    parent = [-1] * len(values)
    for k, value in enumerate(values):
        lo, hi = 0, len(tails)
        while lo < hi:
            mid = (lo + hi) // 2
            if values[tails[mid]] < value:
                lo = mid + 1
            else:
                hi = mid
        parent[k] = tails[lo - 1] if lo else -1
        if lo == len(tails):
            tails.append(k)
        else:
            tails[lo] = k
    run, k = [], tails[-1] if tails else -1
    while k != -1:
        run.append(positions[k])
        k = parent[k]
    return run[::-1]
