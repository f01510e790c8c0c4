"""Jobs that run on a schedule (see backend/jobs/schedule.py) or when enough new labels arrived."""

from __future__ import annotations

import logging
import time
from typing import Any

from backend.ids import JobKind, ProjectId
from backend.jobs.queue import RetrainQueue
from backend.settings import Settings, get_settings
from backend.stores.audit import AuditStore
from backend.stores.labelstudio import LabelStudioClient, LabelStudioNotConfigured, LabelStudioTokenRefused
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
    confirmed = confirm_kept(settings, queue)
    return {**requested, **{str(p): status for p, status in confirmed.items() if str(p) not in requested}}


def confirm_kept(settings: Settings, queue: RetrainQueue) -> dict[ProjectId, str]:
    """Ask Label Studio again about the projects whose training events it could not confirm
    (``RetrainQueue.keep_unconfirmed``): a confirmed one gets its retrain, an unknown one is
    forgotten, and all stay kept while Label Studio still cannot answer."""
    kept = queue.kept()
    if not kept:
        return {}
    try:
        ls = LabelStudioClient.from_settings(settings, 10)
    except LabelStudioNotConfigured as exc:
        log.warning("%d project(s) with kept webhooks wait for Label Studio: %s", len(kept), exc)
        return {}
    outcome: dict[ProjectId, str] = {}
    for project in kept:
        try:
            answer = ls.serves(project)
        except LabelStudioTokenRefused as exc:
            answer = None
            log.warning("%d project(s) with kept webhooks wait for Label Studio: %s", len(kept), exc)
        if answer is None:
            break  # still cannot answer: ask again at the next schedule
        queue.forget_kept(project)
        if answer:
            outcome[project] = queue.request(project, kind=JobKind.HEAD, reason="kept webhook").status
        else:
            outcome[project] = "not a project served here"
    if outcome:
        log.info("kept webhooks confirmed: %s", ", ".join(f"project {p}: {s}" for p, s in outcome.items()))
    return outcome


def finetune_due(
    registry: Registry, project: ProjectId, examples: int, settings: Settings, now: float | None = None
) -> bool:
    """Whether a head retrain should ask for a full fine-tune: as often as it pays, not every N labels.

    Due from ``finetune_min_labels`` annotations on, then whenever the annotations grew by
    ``finetune_growth`` since the last fine-tune (or by ``finetune_every``, whichever comes first),
    once ``finetune_cost_factor`` times that fine-tune's measured duration (``meta.json`` →
    ``training.train_s``) has passed since it was published; so small projects fine-tune often and
    cheaply, and large ones no more than their cost allows."""
    if not finetune_grown(examples, None, settings) or registry.model(project):
        return False  # a model plug-in's fit is its whole training: there is no encoder to fine-tune
    last: dict | None = None
    for version in registry.versions(project):
        meta = registry.meta(project, version)
        training = meta.get("training") or {}
        if training.get("kind") == "full" and (last is None or training.get("examples", 0) >= last["examples"]):
            last = {
                "examples": int(training.get("examples", 0)),
                "cost_s": float(training.get("train_s") or 0),
                "published": float(meta.get("created_at") or 0),
            }
    if last is None:
        return True
    waited = (time.time() if now is None else now) - last["published"]
    paid = waited >= settings.finetune_cost_factor * last["cost_s"]
    return paid and finetune_grown(examples, last["examples"], settings)


def finetune_grown(examples: int, last: int | None, settings: Settings) -> bool:
    """The labels part of ``finetune_due`` (``last``: annotations at the last fine-tune, None if
    none yet); ``hitl simulate`` replays it."""
    if settings.finetune_every <= 0 or examples < settings.finetune_min_labels:
        return False
    if last is None:
        return True
    return examples >= last * (1 + settings.finetune_growth) or examples - last >= settings.finetune_every
