"""Jobs that run on a schedule (see backend/jobs/schedule.py) or when enough new labels arrived."""

from __future__ import annotations

import logging
from typing import Any

from backend.ids import JobKind, ProjectId
from backend.jobs.queue import RetrainQueue
from backend.settings import Settings, get_settings
from backend.stores.audit import AuditStore
from backend.stores.registry import Registry

log = logging.getLogger(__name__)


def known_projects(settings: Settings) -> list[int]:
    """Projects that have a version in the registry or have sent us annotation events."""
    ids = set(Registry.from_settings(settings).projects())
    ids |= set(AuditStore.from_settings(settings).project_ids())
    return sorted(ids)


def retrain_all_projects(kind: str = JobKind.HEAD) -> dict[str, Any]:
    """Request a (coalesced) retrain — ``head`` or ``full`` — or a queue ``sync`` of every known
    project; scheduled by backend/jobs/schedule.py."""
    settings = get_settings()
    queue = RetrainQueue(settings)
    requested = {str(p): queue.request(p, kind=kind, reason="schedule").status for p in known_projects(settings)}
    log.info("scheduled %s retrain requested for %d project(s)", kind, len(requested))
    return requested


def finetune_due(registry: Registry, project: ProjectId, examples: int, every: int) -> bool:
    """A full fine-tune is due when `every` more annotations exist than at the last one."""
    if every <= 0:
        return False
    last_full = 0
    for version in registry.versions(project):
        training = registry.meta(project, version).get("training") or {}
        if training.get("kind") == "full":
            last_full = max(last_full, int(training.get("examples", 0)))
    return examples - last_full >= every
