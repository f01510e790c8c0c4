"""The pool as the last sync read it (``stores/queue_state.PoolSnapshot``): what a sync that reads
only Label Studio's changes starts from. The same on one machine (SQLite) and on every host
(PostgreSQL); a sync that stopped while writing leaves it unmarked, so the next one reads all."""

from __future__ import annotations

import pytest

from backend.stores.queue_state import PoolMark, PoolSnapshot, SyncState
from tests.support.services import postgres_database


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path):
    if request.param == "sqlite":
        yield tmp_path / "sync-state.sqlite3"
        return
    with postgres_database("hitl_pool") as (_, url):
        yield url


def listed(task: int, text: str, *versions: str, annotated: bool = False) -> dict:
    """A task as Label Studio's listing gives it."""
    return {
        "id": task,
        "data": {"text": text, "hitl_rank": 3},
        "predictions": [
            {"id": 7, "model_version": v, "score": 0.5, "result": [{"v": v}], "task": task} for v in versions
        ],
        "annotations": [{"id": 1, "was_cancelled": False}] if annotated else [],
        "total_annotations": 0,
    }


def test_a_full_read_comes_back_in_task_order_with_the_label_prediction_only(location):
    snapshot = PoolSnapshot(location)
    snapshot.replace(1, [listed(30, "c", "v2"), listed(10, "a", "v1", "v2"), listed(20, "b")], "v2")
    tasks = snapshot.tasks(1)
    assert [t["id"] for t in tasks] == [10, 20, 30]  # Label Studio's own listing order
    assert tasks[0]["data"] == {"text": "a", "hitl_rank": 3}
    assert tasks[0]["predictions"] == [{"model_version": "v2", "score": 0.5, "result": [{"v": "v2"}]}]
    assert tasks[1]["predictions"] == [] and tasks[1]["annotations"] == []
    assert snapshot.tasks(2) == [] and snapshot.size(1) == 3  # per project


def test_changes_replace_what_was_kept_and_tasks_leave(location):
    snapshot = PoolSnapshot(location)
    snapshot.replace(1, [listed(10, "a", "v1"), listed(20, "b", "v1"), listed(30, "c")], "v1")
    snapshot.change(1, [listed(20, "b edited"), listed(40, "new", "v1")], gone=[30, 99], label="v1")
    tasks = {t["id"]: t for t in snapshot.tasks(1)}
    assert sorted(tasks) == [10, 20, 40]
    assert tasks[20]["data"]["text"] == "b edited" and tasks[20]["predictions"] == []  # as read again
    assert tasks[40]["predictions"][0]["model_version"] == "v1"


def test_a_task_whose_counter_lags_its_annotation_is_kept_as_answered(location):
    """Label Studio lists it as unlabeled; the pool leaves it out, and the count still agrees."""
    snapshot = PoolSnapshot(location)
    snapshot.replace(1, [listed(10, "a"), listed(11, "b", annotated=True)], "v1")
    tasks = snapshot.tasks(1)
    assert [bool(t["annotations"]) for t in tasks] == [False, True] and snapshot.size(1) == 2


def test_what_the_sync_wrote_itself_is_recorded(location):
    """A bulk import of predictions leaves ``updated_at`` alone: no later read of changes would see it."""
    snapshot = PoolSnapshot(location)
    snapshot.replace(1, [listed(10, "a"), listed(20, "b")], "v1")
    written = [{"task": 10, "model_version": "v1", "score": 0.81, "result": [{"x": 1}]}]
    snapshot.wrote(1, written, [(20, {"text": "b", "hitl_rank": 1})])
    tasks = {t["id"]: t for t in snapshot.tasks(1)}
    assert tasks[10]["predictions"] == [{"model_version": "v1", "score": 0.81, "result": [{"x": 1}]}]
    assert tasks[20]["data"] == {"text": "b", "hitl_rank": 1}


def test_the_mark_is_dropped_while_a_sync_writes_and_set_once_it_is_done(location):
    snapshot, other_host = PoolSnapshot(location), PoolSnapshot(location)
    assert snapshot.mark(1) is None
    mark = PoolMark("v1", "2026-12-07T12:00:00.000000Z", 1000.0, "http://127.0.0.1:8080 2026-12-01T10:00:00Z")
    snapshot.set_mark(1, mark)
    assert other_host.mark(1) == mark
    snapshot.unsettle(1)  # a sync starts writing: until it is done, the next one reads the whole pool
    assert other_host.mark(1) is None
    snapshot.set_mark(1, mark)
    snapshot.replace(1, [listed(10, "a")], "v1")
    snapshot.forget(1)
    assert other_host.mark(1) is None and other_host.tasks(1) == []


def test_a_sync_after_a_head_refresh_writes_the_rows_that_moved_and_the_scores_in_one(location):
    """Issue 30: every sync rewrote every task's row (1M rows: minutes in PostgreSQL). The strategy's
    scores, which move for every task, are kept as one row per version for the report."""
    state = SyncState(location)
    rows = [(t, "v1", f"h{t}", t % 3, None, 0.1 * t, 0.7, "preselect", "World") for t in range(1, 9)]
    assert state.save(1, rows, {}) == 8
    refreshed = [(*r[:4], 1 if r[0] == 5 else None, 0.1 * r[0] + 0.01, *r[6:]) for r in rows]  # task 5 heads now
    assert state.save(1, refreshed, state.get(1)) == 1
    assert state.get(1)[5][3] == 1
    assert state.strategy_scores(1) == {"v1": pytest.approx([0.1 * t + 0.01 for t in range(1, 9)], abs=1e-6)}
    for n in range(2, 8):  # the last SCORED_VERSIONS versions are kept
        state.save(1, [(1, f"v{n}", "h", 0, None, 0.5, 0.7)], state.get(1))
    assert sorted(state.strategy_scores(1)) == ["v3", "v4", "v5", "v6", "v7"]
