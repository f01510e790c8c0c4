"""The sync as an RQ job (run after every published version and on the schedule), and the one
entry point the CLI shares with it: the sync, then what it found recorded in the audit store."""

from __future__ import annotations

import logging
from typing import Any

from backend.jobs.context import WorkerContext, context
from backend.jobs.queue import RetrainQueue
from backend.labeling import UnsupportedConfig
from backend.query.sync import SyncSummary, sync_project
from backend.stores.labelstudio import LabelStudioClient, unavailable_as_one_line

log = logging.getLogger(__name__)


def sync_job(project_id: int, kind: str = "sync", reason: str = "") -> dict[str, Any]:
    ctx = context()
    RetrainQueue(ctx.settings).take(project_id, kind)
    try:
        with unavailable_as_one_line(ctx.settings.label_studio_url or "?"):
            summary = sync_and_record(ctx, ctx.label_studio(), project_id, progress=False)
    except UnsupportedConfig as exc:  # retrying cannot help
        return {"project_id": project_id, "synced": False, "reason": f"unsupported config: {exc}"}
    return summary.as_dict()


def sync_and_record(
    ctx: WorkerContext, ls: LabelStudioClient, project_id: int, strategy: str | None = None, progress: bool = True
) -> SyncSummary:
    """Order the project's queue; a drift check it ran goes to the audit store (and an alarm to the log)."""
    summary = sync_project(ctx.settings, ls, ctx.cache_for, ctx.registry, project_id, strategy, progress=progress)
    if summary.drift is not None:
        ctx.audit.record_drift_check(project_id, summary.model_version, summary.drift["size"],
                                     summary.drift["p_outputs"], summary.drift["p_embeddings"],
                                     summary.drift["alarm"])  # fmt: skip
        if summary.drift["alarm"]:
            log.warning("project %s: %s", project_id, summary.drift["line"])
    return summary
