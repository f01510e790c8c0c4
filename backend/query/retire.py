"""Writing to Label Studio task by task, and retiring the predictions of versions replaced long
enough ago that no open task can still hold them."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tqdm import tqdm

from backend.stores.labelstudio import LabelStudioClient
from backend.stores.queue_state import SyncState

WRITERS = 2  # per-task writes in flight: Label Studio (one process) gained little from more (docs)


def each(items: list[Any], write: Callable[[Any], None], what: str, progress: bool) -> int:
    """One Label Studio call per item, ``WRITERS`` at a time; how many were written."""
    with ThreadPoolExecutor(WRITERS) as pool:
        for _ in tqdm(
            pool.map(write, items), total=len(items), desc=what, unit="task", disable=not progress or not items
        ):
            pass
    return len(items)


def retire_old_versions(ls: LabelStudioClient, state: SyncState, project_id: int, label: str, grace_s: float) -> None:
    """Delete the predictions of versions older than the one Label Studio showed before ``label``,
    once they were replaced ``grace_s`` ago. A task opened meanwhile keeps its pre-annotation: Label
    Studio refuses to save an annotation whose parent prediction was deleted while the task was
    open. Only versions this backend wrote and switched away from are ever deleted."""
    replaced = state.replaced_at(project_id)
    latest = max(replaced, key=lambda name: replaced[name], default=None)
    now = time.time()
    for old in ls.model_versions(project_id):
        if old in (label, latest) or old not in replaced or now - replaced[old] < grace_s:
            continue
        ls.delete_model_version(project_id, old)
