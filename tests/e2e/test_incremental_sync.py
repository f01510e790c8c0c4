"""A sync reads from Label Studio only what changed since the last one (issue 30: a 1M-task
project cannot be read whole at every sync), and plans exactly the queue a full read would: an
annotated task leaves the pool, an imported one joins it, an edited text is scored as edited.
A deleted task leaves no trace in ``updated_at``: Label Studio's count catches it and the sync
reads the whole pool again."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest

from backend.query.plan import content_hash
from backend.query.pool import list_pool
from backend.stores.queue_state import PoolSnapshot, SyncState
from tests.e2e.test_queue_sync import choice, idle, predictions_of, run_sync
from tests.support.services import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def quiet_project(stack, ag_rows):
    """A trained project whose webhook is then removed: only this test's syncs touch its queue."""
    rows = ag_rows[300:400]
    project = stack.new_project("Incremental sync", rows)
    for task in [t for t in stack.tasks(project) if t["data"].get("gold")][:30]:
        stack.ls.create_annotation(task["id"], choice(task["data"]["gold"]))
    wait_until(lambda: stack.registry.current(str(project)), 120, "a first version")
    wait_until(lambda: idle(stack), 180, "the worker to finish retraining and syncing")
    for hook in stack.ls.webhooks(project):
        stack.ls._raw(f"api/webhooks/{hook['id']}", "DELETE")
    # a read of changes reads again those of the two minutes before the last read began
    # (HITL_SYNC_CHANGE_OVERLAP_S): let the set-up's own changes age past that
    time.sleep(125)
    return project


def test_a_sync_reads_only_what_changed_and_plans_as_a_full_read_would(stack, quiet_project):
    project = quiet_project
    first = run_sync(stack, project, "--full-read")
    assert first["read"].startswith("full") and first["pool"] == 70
    again = run_sync(stack, project)
    assert again["read"].endswith("changed tasks") and int(again["read"].split()[0]) < 70, again["read"]
    assert again["pool"] == 70 and again["written"] == 0 and again["ranked"] == 0
    assert again["top_task_id"] == first["top_task_id"]

    # annotators and admins change the project between two syncs
    pool = list(stack.ls.unlabeled_tasks(project))
    for task in pool[:2]:
        stack.ls.create_annotation(task["id"], choice(task["data"]["gold"]))
    stack.ls.import_tasks(
        project,
        [
            {"text": f"Shares of Acme rose {n} percent after its quarterly report.", "gold": "Business"}
            for n in (3, 5, 7)
        ],
    )
    edited = pool[5]
    new_text = "The home side won the cup final with a goal in the last minute of extra time."
    stack.ls.update_task_data(edited["id"], {**edited["data"], "text": new_text})

    delta = run_sync(stack, project)
    read = int(delta["read"].split()[0])
    assert delta["read"].endswith("changed tasks") and 6 <= read < 70, delta["read"]  # 2 + 3 + 1, and recent writes
    assert delta["pool"] == 70 - 2 + 3 == delta["scored"]
    version = stack.registry.served(str(project))
    held = predictions_of(stack, project, version)  # also: no task holds two of this version
    assert len(held) == delta["scored"]  # the new tasks got theirs, the annotated ones left
    state = SyncState(stack.logs.parent / "data" / "sync-state.sqlite3").get(project)
    assert state[edited["id"]][1] == content_hash(new_text)  # scored as edited, not as first read
    assert not {t["id"] for t in pool[:2]} & set(state)

    # what the sync read equals what Label Studio holds: a plan from a full read is the same plan
    planned = run_sync(stack, project, "--dry-run")
    from_scratch = run_sync(stack, project, "--dry-run", "--full-read")
    assert planned["read"].endswith("changed tasks") and from_scratch["read"].startswith("full")
    assert planned["plan"] == from_scratch["plan"] and planned["plan"]["predictions_to_write"] == 0
    assert planned["pool"] == from_scratch["pool"] == 71

    # a deleted task: the count disagrees, and the whole pool is read again
    stack.ls._raw(f"api/tasks/{pool[10]['id']}", "DELETE")
    after = run_sync(stack, project)
    assert after["read"].startswith("full (Label Studio lists 70 unlabeled tasks"), after["read"]
    assert after["pool"] == 70
    assert run_sync(stack, project)["read"].endswith("changed tasks")

    # the overlap is the operator's to set: the next read of changes starts that long before this one
    wait_until(lambda: idle(stack), 60, "the worker to go idle")
    hour = dataclasses.replace(stack, env={**stack.env, "HITL_SYNC_CHANGE_OVERLAP_S": "3600"})
    assert run_sync(hour, project)["read"].endswith("changed tasks")
    since = PoolSnapshot(stack.logs.parent / "data" / "sync-state.sqlite3").mark(project).since
    age = datetime.now(UTC) - datetime.strptime(since, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert timedelta(minutes=59) < age < timedelta(minutes=62), since
    wait_until(lambda: idle(stack), 60, "the worker to go idle")


class _AnnotatorsAtWork:
    """The real Label Studio, with annotators who submit one more task each time a read of changes
    ends: the count that follows a read always sees one annotation the read did not."""

    def __init__(self, ls, tasks: list[dict]) -> None:
        self.ls, self.waiting, self.submitted = ls, list(tasks), []

    def changed_tasks(self, project: int, since: str):
        yield from self.ls.changed_tasks(project, since)
        if self.waiting:
            task = self.waiting.pop(0)
            self.ls.create_annotation(task["id"], choice(task["data"]["gold"]))
            self.submitted.append(task["id"])

    def __getattr__(self, name: str):
        return getattr(self.ls, name)


def test_annotations_made_while_the_changes_are_read_do_not_force_a_full_read(stack, quiet_project):
    """In a busy project a task is annotated every few seconds: between a read of changes and the
    count after it, one usually lands. The sync reads what changed around the count instead of
    reading a 1M-task pool again (a clicked session saw every sync fall back to a full read)."""
    project = quiet_project
    wait_until(lambda: idle(stack), 60, "the worker to go idle")
    snapshot = PoolSnapshot(stack.logs.parent / "data" / "sync-state.sqlite3")
    mark = snapshot.mark(project)
    pool = list(stack.ls.unlabeled_tasks(project))
    busy = _AnnotatorsAtWork(stack.ls, pool[:3])
    listed, read = list_pool(busy, project, snapshot, mark.label, 86400, 120, False, mark.origin)
    assert read.how.endswith("changed tasks"), read.how
    first, second = busy.submitted[:2]  # after the first read, and after the read around the count
    assert first in read.gone and first not in {t["id"] for t in listed}
    assert second in {t["id"] for t in listed}  # the next sync's read of changes finds it
    assert len(listed) == len(pool) - 1
    after = run_sync(stack, project)  # the sync's own read: both annotated tasks have left its pool
    assert after["read"].endswith("changed tasks") and after["pool"] == len(pool) - 2, after
