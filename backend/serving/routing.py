"""Whether a prediction may skip human review (``auto_accept``), decided the same way by ``/predict``
and the queue sync.

A prediction skips review when the version has a routing threshold (not switched off by the
routing audit, ``learning/routing_audit.py``) and its calibrated confidence reaches it, unless the
task is one of the fixed random audit samples: those go to a person anyway, so that production
precision is measured on tasks the router would have let through.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from backend.serving.reasons import Why, reason


def is_audit_sample(task_id: int, share: float) -> bool:
    """A fixed random ``share`` of tasks, by id (independent of the held-out split)."""
    bucket = int(hashlib.sha256(f"audit:{task_id}".encode()).hexdigest()[:8], 16) % 10_000
    return bucket < share * 10_000


@dataclass(frozen=True)
class Route:
    auto_accept: bool
    why: Why
    reason: str  # the sentence an API client or a reviewer reads


def route(confidence: float, threshold: float | None, task_id: int | None, audit_share: float) -> Route:
    """One prediction's routing. ``threshold``: the version's auto-accept threshold in force (None:
    every prediction is reviewed); ``task_id`` None (a task Label Studio sent without an id) is
    never an audit sample."""
    if threshold is None or confidence < threshold:
        return Route(False, Why.REVIEW, reason(Why.REVIEW, confidence, threshold, audit_share))
    if task_id is not None and audit_share > 0 and is_audit_sample(task_id, audit_share):
        return Route(False, Why.AUDIT, reason(Why.AUDIT, confidence, threshold, audit_share))
    return Route(True, Why.CONFIDENT, reason(Why.CONFIDENT, confidence, threshold, audit_share))
