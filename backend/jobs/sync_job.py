"""The sync as an RQ job (run after every published version and on the schedule), and the one
entry point the CLI shares with it: the sync, then what it found recorded in the audit store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from redis import RedisError

from backend.ids import JobKind
from backend.jobs.context import WorkerContext, context
from backend.jobs.inputs import PredictInputs
from backend.jobs.outage import reaching_label_studio
from backend.jobs.queue import RetrainQueue
from backend.labeling import UnsupportedConfig
from backend.query.summary import SyncSummary
from backend.query.sync import sync_project
from backend.stores.audit import INPUTS_MARK
from backend.stores.labelstudio import LabelStudioClient

log = logging.getLogger(__name__)


def sync_job(project_id: int, kind: str = "sync", reason: str = "") -> dict[str, Any]:
    ctx = context()
    RetrainQueue(ctx.settings).take(project_id, kind)
    try:
        with reaching_label_studio(ctx.settings):
            summary = sync_and_record(
                ctx,
                ctx.label_studio(),
                project_id,
                progress=False,
                defer_embedding=lambda missing, pool: embed_first(ctx, project_id, missing, pool),
                give_way=True,
            )
    except UnsupportedConfig as exc:  # retrying cannot help
        return {"project_id": project_id, "synced": False, "reason": f"unsupported config: {exc}"}
    return summary.as_dict()


def embed_first(ctx: WorkerContext, project_id: int, missing: int, pool: int) -> str:
    """The sync's answer to a pool its new encoder has not embedded: the slow worker's job."""
    status = RetrainQueue(ctx.settings).request(project_id, JobKind.EMBED, reason="sync found the pool unembedded")
    return (
        f"{missing} of {pool} pool texts not yet embedded by its encoder: the slow worker embeds them, then "
        f"syncs (pool embedding {status.status}); the queue keeps its order meanwhile"
    )


def sync_and_record(
    ctx: WorkerContext,
    ls: LabelStudioClient,
    project_id: int,
    strategy: str | None = None,
    progress: bool = True,
    defer_embedding: Callable[[int, int], str] | None = None,
    dry_run: bool = False,
    give_way: bool = False,
    full_read: bool = False,
) -> SyncSummary:
    """Order the project's queue; the drift checks it ran (of newly imported tasks, and of what
    ``/predict`` was asked, when Redis keeps those) go to the audit store, alarms to the log.
    ``defer_embedding``: see ``query.sync.sync_project`` (the job passes one; the CLI embeds itself).
    ``dry_run``: the plan only, nothing written (``hitl sync --dry-run``). ``give_way`` (a worker's
    job): where another sync of the project runs, on any host, leave word for it and return at once;
    whoever holds the sync, the job or ``hitl sync``, requests one more when word was left.
    ``full_read``: read the whole pool, not only what changed (``hitl sync --full-read``)."""
    inputs = None
    queue = RetrainQueue(ctx.settings) if ctx.settings.redis_url and not dry_run else None
    if queue is not None and ctx.settings.drift_window > 0:
        waiting = PredictInputs(queue.connection)

        def inputs() -> list[str]:  # Redis away: no inputs check this time, the sync goes on
            try:
                return waiting.take(project_id, ctx.settings.drift_window)
            except RedisError as exc:
                log.warning("project %s: /predict inputs not checked for drift (%s)", project_id, type(exc).__name__)
                return []

    summary = sync_project(
        ctx.settings,
        ls,
        ctx.cache_for,
        ctx.registry,
        project_id,
        strategy,
        progress=progress,
        predict_inputs=inputs,
        defer_embedding=defer_embedding,
        audit_store=ctx.audit,
        dry_run=dry_run,
        full_read=full_read,
        # a worker never sits waiting for another host's sync of the project: it leaves word and moves on
        when_busy=(lambda: queue.follow_running_sync(project_id)) if queue is not None and give_way else None,
    )
    if queue is not None and not summary.gave_way:
        _follow_up(queue, project_id)
    for check, inputs in ((summary.drift, False), (summary.input_drift, True)):
        if check is None:
            continue
        ctx.audit.record_drift_check(
            project_id,
            summary.model_version,
            check["size"],
            check["p_outputs"],
            check["p_embeddings"],
            check["alarm"],
            inputs=inputs,
        )
        if check["alarm"]:
            log.warning("project %s: %s%s", project_id, check["line"], f" {INPUTS_MARK}" if inputs else "")
    return summary


def _follow_up(queue: RetrainQueue, project_id: int) -> None:
    """Request the sync that gave way to this one, if any did. The sync itself is done: Redis away
    costs only the follow-up (the next event or the schedule syncs again), never the sync's result."""
    try:
        if queue.sync_after_this_one(project_id):
            status = queue.request(project_id, JobKind.SYNC, reason="a sync gave way to this one").status
            log.info("project %s: a sync gave way to this one: another follows (%s)", project_id, status)
    except RedisError as exc:
        log.warning("project %s: could not check for a sync waiting on this one (%s)", project_id, type(exc).__name__)
