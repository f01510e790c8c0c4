"""What happens after a publish: the jobs a new version asks for, decided in one place.

A new version re-ranks the queue (``query/sync.py``); after a fine-tune the pool is embedded with
the new encoder first, and that job requests the sync (``jobs/pool_embedding.py``). Single-label
classification also gets its annotations checked for label errors and, for text, batch-correction
proposals. A head retrain may find a fine-tune due (``jobs/scheduled.py:finetune_due``).

A rejected candidate publishes nothing, so nothing re-ranks the queue; once annotators have
labeled most of its ranked head, Label Studio would serve the rest in its own order until the
scheduled sync. The retrain then asks for a sync (``head_runs_low``): it reads only what changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from backend.ids import JobKind, ProjectId
from backend.jobs.queue import RetrainQueue
from backend.jobs.scheduled import finetune_due
from backend.labeling import TaskSpec
from backend.settings import Settings
from backend.stores.queue_state import SyncState, queue_state_exists, queue_state_location
from backend.stores.registry import Registry


@dataclass(frozen=True)
class FollowUp:
    kind: JobKind
    reason: str  # what the queue records as why it was requested
    summary_key: str  # where the retrain's summary says how the request went


def follow_ups(
    settings: Settings,
    spec: TaskSpec,
    retrain_kind: JobKind,
    version: str,
    new_encoder: bool,
    finetune_is_due: Callable[[], bool],
) -> list[FollowUp]:
    """The jobs to request, in order, after ``version`` was published by a ``retrain_kind`` retrain.
    ``new_encoder``: the version serves a fine-tuned text encoder of its own, so the pool's
    embeddings are stale. ``finetune_is_due`` is asked after head retrains only (it reads the queue
    and the registry)."""
    wanted: list[FollowUp] = []
    if settings.sync_after_publish and new_encoder:  # the embedding job requests the sync when done
        wanted.append(FollowUp(JobKind.EMBED, f"published {version}", "embed_requested"))
    elif settings.sync_after_publish:
        wanted.append(FollowUp(JobKind.SYNC, f"published {version}", "sync_requested"))
    single_label = not spec.is_ner and not spec.multi_label
    if settings.proposals_after_publish and single_label and spec.modality == "text":
        wanted.append(FollowUp(JobKind.PROPOSALS, version, "proposals_requested"))
    if settings.label_errors_after_publish and single_label:
        wanted.append(FollowUp(JobKind.LABEL_ERRORS, version, "label_errors_requested"))
    if retrain_kind == JobKind.HEAD and finetune_is_due():
        wanted.append(FollowUp(JobKind.FULL, "new labels", "finetune_requested"))
    return wanted


def request_follow_ups(
    queue: RetrainQueue,
    registry: Registry,
    settings: Settings,
    project_id: ProjectId,
    spec: TaskSpec,
    retrain_kind: JobKind,
    version: str,
    new_encoder: bool,
    examples: int,
) -> dict[str, str]:
    """Request the follow-ups of a publish; returns each one's summary key and request status."""

    def due() -> bool:  # no second fine-tune while one runs
        return not queue.running(project_id, JobKind.FULL) and finetune_due(registry, project_id, examples, settings)

    wanted = follow_ups(settings, spec, retrain_kind, version, new_encoder, due)
    return {f.summary_key: queue.request(project_id, f.kind, reason=f.reason).status for f in wanted}


def head_runs_low(settings: Settings, project_id: ProjectId, annotated: set[int]) -> str | None:
    """Why the queue needs re-ranking now, None if it does not: fewer than half of the head's ranked
    tasks (``HITL_SYNC_EXACT_TOP``) are still unlabeled (``annotated``: the tasks just pulled)."""
    location = queue_state_location(settings.data_dir, settings.database_url)
    if not settings.sync_after_publish or not queue_state_exists(location):
        return None
    ranked = SyncState(location).ranked(int(project_id))
    if not ranked:  # never synced: the first publish syncs
        return None
    left = len(ranked - annotated)
    if left >= max(1, settings.sync_exact_top // 2):
        return None
    return f"the ranked head runs low ({left} of {len(ranked)} ranked tasks unlabeled)"
