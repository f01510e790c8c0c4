"""The sync as an RQ job: run after every published version and on the schedule."""

from __future__ import annotations

from typing import Any

from backend.jobs.context import context
from backend.jobs.queue import RetrainQueue
from backend.labeling import UnsupportedConfig
from backend.query.sync import sync_project
from backend.stores.labelstudio import unavailable_as_one_line


def sync_job(project_id: int, kind: str = "sync", reason: str = "") -> dict[str, Any]:
    ctx = context()
    RetrainQueue(ctx.settings).take(project_id, kind)
    try:
        with unavailable_as_one_line(ctx.settings.label_studio_url or "?"):
            summary = sync_project(
                ctx.settings, ctx.label_studio(), ctx.cache_for, ctx.registry, project_id, progress=False
            )
    except UnsupportedConfig as exc:  # retrying cannot help
        return {"project_id": project_id, "synced": False, "reason": f"unsupported config: {exc}"}
    return summary.as_dict()
