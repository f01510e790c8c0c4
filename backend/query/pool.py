"""The unlabeled pool as the sync sees it: read from Label Studio page by page, each task's text,
data and predictions, embedded through the embedding cache. A task that cannot be read (an empty
text, an image that cannot be fetched) is counted by reason and left out; the rest are scored.

A large project is not read whole each time: the sync keeps the pool as it last read it
(``stores/queue_state.PoolSnapshot``) and reads only the tasks Label Studio changed since. Label
Studio's count of unlabeled tasks must then agree with the snapshot's; where it does not (a
deleted task leaves no trace in ``updated_at``), where the serving version's family changed, and
at least every ``HITL_SYNC_FULL_READ_S``, the whole pool is read again."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from tqdm import tqdm

from backend.labeling import TaskError, TaskSpec, task_text
from backend.models.embedding_cache import EmbeddingCache
from backend.stores.labelstudio import DM_TIME, LabelStudioClient, answered
from backend.stores.queue_state import PoolMark, PoolSnapshot

CHANGE_READS = 3  # reads of what changed, while Label Studio's count moves under them, before a full read
AROUND_S = 5.0  # the second read of changes starts this long before the first one did (clocks: 1 s resolution)


@dataclass
class PoolRead:
    """How the pool was read, and what the snapshot takes from it (``remember``)."""

    how: str  # "full (why)" or "N changed tasks"
    full: bool
    changed: list[dict[str, Any]] = field(default_factory=list)  # tasks read (a full read: every one listed)
    gone: list[int] = field(default_factory=list)  # tasks that left the listing
    mark: PoolMark | None = None  # where the next read of changes starts, once this sync's writes are recorded


@dataclass
class Pool:
    """The readable unlabeled tasks, aligned: ``ids[i]``, ``texts[i]``, ``data[i]``, ``embeddings[i]``."""

    ids: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)
    predictions: dict[int, dict[Any, dict[str, Any]]] = field(default_factory=dict)  # per task, per model version
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    size: int = 0  # unlabeled tasks listed, readable or not
    skipped: Counter[str] = field(default_factory=Counter)  # why tasks were left out, counted
    read: PoolRead = field(default_factory=lambda: PoolRead("full", True))

    @property
    def task_ids(self) -> np.ndarray:
        return np.array(self.ids, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)


def read_pool(
    ls: LabelStudioClient,
    project_id: int,
    spec: TaskSpec,
    cache: EmbeddingCache,
    max_chars: int,
    progress: bool,
    snapshot: PoolSnapshot | None = None,
    label: str = "",
    full_every_s: float = 0.0,
    overlap_s: float = 120.0,
    origin: str = "",
) -> Pool:
    """Every unlabeled task of the project, embedded (a lookup for texts seen before). With a
    ``snapshot`` kept for ``label`` and younger than ``full_every_s``: what it holds, updated with
    what Label Studio changed since (and ``overlap_s`` before: ``HITL_SYNC_CHANGE_OVERLAP_S``)."""
    listed, read = list_pool(ls, project_id, snapshot, label, full_every_s, overlap_s, progress, origin)
    pool = Pool(read=read)
    for task in listed:
        if answered(task):  # listed as unlabeled by a counter that lags its annotation
            continue
        pool.size += 1
        try:
            pool.texts.append(task_text(task, spec, max_chars))
        except TaskError as exc:
            pool.skipped[str(exc).split(" (")[0]] += 1
            continue
        pool.ids.append(int(task["id"]))
        pool.data.append(dict(task.get("data") or {}))
        pool.predictions[int(task["id"])] = {p.get("model_version"): p for p in task.get("predictions") or []}
    if not pool.ids:
        return pool
    readable, pool.embeddings = cache.embed_readable(pool.texts, progress)
    if not readable.all():  # images that could not be fetched: counted, left out of this sync
        pool.skipped["unreadable image"] += int((~readable).sum())
        keep = np.flatnonzero(readable)
        pool.ids = [pool.ids[i] for i in keep]
        pool.texts = [pool.texts[i] for i in keep]
        pool.data = [pool.data[i] for i in keep]
        pool.embeddings = pool.embeddings[readable]
    return pool


def list_pool(
    ls: LabelStudioClient,
    project_id: int,
    snapshot: PoolSnapshot | None,
    label: str,
    full_every_s: float,
    overlap_s: float,
    progress: bool,
    origin: str = "",
) -> tuple[list[dict[str, Any]], PoolRead]:
    """The tasks Label Studio lists as unlabeled, in its order (task id), and how they were read.
    ``origin``: which project this is (see ``PoolMark``)."""
    mark = snapshot.mark(project_id) if snapshot is not None else None
    why = _why_full(mark, label, full_every_s, origin)
    if snapshot is not None and mark is not None and why is None:
        known = {int(t["id"]): t for t in snapshot.tasks(project_id)}
        for _ in range(CHANGE_READS):
            started = time.monotonic()
            changed = list(tqdm(ls.changed_tasks(project_id, mark.since), desc="reading changes", disable=not progress))
            count, since = ls.pool_mark(project_id, overlap_s)
            tasks, kept, gone = _applied(known, changed)
            agrees = len(tasks) == count
            if not agrees:  # annotated (or imported) while this read ran? Read what changed around the count
                around = _shifted(since, overlap_s - (time.monotonic() - started) - AROUND_S)
                latest = {int(t["id"]): t for t in changed + list(ls.changed_tasks(project_id, around))}
                after, later_kept, later_gone = _applied(known, list(latest.values()))
                # the count agrees with the pool as it stood at some moment between the two reads
                agrees = min(len(tasks), len(after)) <= count <= max(len(tasks), len(after))
                if agrees:
                    changed, tasks, kept, gone = list(latest.values()), after, later_kept, later_gone
            if agrees:
                listed = [tasks[t] for t in sorted(tasks)]
                how = f"{len(changed)} changed tasks"
                return listed, PoolRead(how, False, kept, gone, PoolMark(label, since, mark.full_at, origin))
        why = f"Label Studio lists {count} unlabeled tasks, the snapshot {len(tasks)}: a task deleted, a counter fixed"
    _, since = ls.pool_mark(project_id, overlap_s)  # before reading: a change made during the read is read next time
    listed = list(tqdm(ls.listed_unlabeled(project_id), desc="reading tasks", unit="task", disable=not progress))
    new_mark = PoolMark(label, since, time.time(), origin) if snapshot is not None else None
    return listed, PoolRead(f"full ({why})", True, listed, [], new_mark)


def _applied(
    known: dict[int, dict[str, Any]], changed: list[dict[str, Any]]
) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]], list[int]]:
    """The snapshot's tasks with ``changed`` applied, and which changed tasks stay and which left."""
    tasks, kept, gone = dict(known), [], []
    for task in changed:
        if int(task.get("total_annotations") or 0) == 0:  # what the unlabeled filter reads
            tasks[int(task["id"])] = task
            kept.append(task)
        elif tasks.pop(int(task["id"]), None) is not None:
            gone.append(int(task["id"]))
    return tasks, kept, gone


def _shifted(stamp: str, seconds: float) -> str:
    """A time in the Data Manager's filter format, ``seconds`` later (earlier where negative)."""
    moved = datetime.strptime(stamp, DM_TIME).replace(tzinfo=UTC) + timedelta(seconds=seconds)
    return moved.strftime(DM_TIME)


def _why_full(mark: PoolMark | None, label: str, full_every_s: float, origin: str) -> str | None:
    """Why the whole pool must be read now, None where reading what changed is enough."""
    if full_every_s <= 0:
        return "asked for: hitl sync --full-read, or HITL_SYNC_FULL_READ_S=0"
    if mark is None:
        return "no snapshot of the pool yet, or the last sync stopped while writing"
    if mark.origin != origin:
        return "the snapshot is of another project with this id (another Label Studio, or one reset since)"
    if mark.label != label:
        return f"the serving version's family changed ({mark.label or 'none'} → {label or 'none'})"
    if time.time() - mark.full_at >= full_every_s:
        return f"the last full read is older than HITL_SYNC_FULL_READ_S ({full_every_s:.0f}s)"
    return None


def remember(snapshot: PoolSnapshot, project_id: int, read: PoolRead, label: str) -> None:
    """Take what was read into the snapshot, leaving it unmarked until the sync's writes are in."""
    snapshot.unsettle(project_id)
    if read.full:
        snapshot.replace(project_id, read.changed, label)
    else:
        snapshot.change(project_id, read.changed, read.gone, label)
