"""Which predictions may skip human review (``auto_accept``), and which tasks go to people whatever
the model's confidence; ``/predict`` and the queue sync decide it here, the same way.

People always see the held-out tasks (a fixed random share by task id: their annotations judge
every version, so none may be skipped) and the audit samples (a fixed random share of the tasks
the router would let through, by task id, so production precision is measured on them,
``monitoring/routing_audit.py``). Any other prediction skips review when the version has a routing
threshold, not switched off by the routing audit, and its calibrated confidence reaches it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backend.ids import ProjectId
from backend.serving.presentation import level_in_force
from backend.serving.reasons import Why, reason
from backend.settings import Settings
from backend.stores.registry import Registry

SUSPENDED = "auto-accept is switched off for this version: people changed too many of its confident predictions"


def is_heldout(task_id: int | None, holdout_fraction: float) -> bool:
    """Whether a task belongs to the held-out side, known before anyone annotates it. The sync
    serves held-out tasks in random order, so the held-out annotations are an unbiased sample of
    the pool (what the gate and calibration need), not the model's hardest cases."""
    return _buckets(task_id)[0] < holdout_fraction * 10_000


def is_audit_sample(task_id: int, share: float) -> bool:
    """A fixed random ``share`` of tasks, by id (independent of the held-out split). The samples
    of a share are among those of any larger share, so doubling it only adds tasks."""
    return _buckets(task_id)[1] < share * 10_000


@functools.lru_cache(maxsize=1 << 21)
def _buckets(task_id: int | None) -> tuple[int, int]:
    """A task's fixed places in 0..9999 for the held-out split and for the audit draw, memoised:
    every sync asks them of every task of its pool."""
    return _bucket(str(task_id)), _bucket(f"audit:{task_id}")


def _bucket(key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 10_000


@dataclass(frozen=True)
class RoutingPolicy:
    """What routing one version's predictions needs. ``threshold`` None: nothing skips review,
    for the reason in ``no_threshold``."""

    threshold: float | None
    audit_share: float
    holdout_fraction: float
    no_threshold: str = "no prediction of this version skips review yet"
    preselect_level: float | None = None  # at or above it the answer is pre-selected (serving/presentation.py)


def policy_for(
    settings: Settings,
    registry: Registry,
    project: ProjectId | int,
    label: str,
    threshold: float | None,
    preselect_level: float | None,
    audit_share: float | None = None,
) -> RoutingPolicy:
    """How version ``label`` (with its ``threshold`` and ``preselect_level`` from the registry) is
    routed now, for ``/predict`` and the sync alike: the routing audit may have switched
    auto_accept off; ``audit_share`` None reads the share the last sync set (``sync_audit_share``)."""
    share = registry.audit_share(project) if audit_share is None else audit_share
    suspended = registry.routing_suspended(project, label) is not None
    return RoutingPolicy(
        None if suspended else threshold,
        settings.audit_share if share is None else share,
        settings.holdout_fraction,
        no_threshold=SUSPENDED if suspended else RoutingPolicy.no_threshold,
        preselect_level=level_in_force(preselect_level, settings.preselect_precision),
    )


def sync_audit_share(settings: Settings, drifting: bool) -> tuple[float, str]:
    """The audit share the sync sets (and ``/predict`` then reads), with why: twice
    ``HITL_AUDIT_SHARE`` while a drift check alarms (at most half)."""
    if drifting:
        return min(0.5, settings.audit_share * 2), "drift alarm: twice HITL_AUDIT_SHARE"
    return min(0.5, settings.audit_share), "HITL_AUDIT_SHARE"


@dataclass(frozen=True)
class Route:
    auto_accept: bool
    why: Why
    reason: str  # the sentence an API client or a reviewer reads

    @property
    def blind(self) -> bool:
        """Held-out checks and audit samples measure the model: shown without its answer."""
        return self.why in (Why.HELDOUT, Why.AUDIT)


def route(confidence: float, task_id: int | None, policy: RoutingPolicy) -> Route:
    """One prediction's routing; ``task_id`` None (a task sent without an id) is neither held out
    nor an audit sample."""
    threshold, share = policy.threshold, policy.audit_share
    if task_id is not None and is_heldout(task_id, policy.holdout_fraction):
        return Route(False, Why.HELDOUT, reason(Why.HELDOUT, confidence, threshold, share))
    if threshold is None or confidence < threshold:
        return Route(False, Why.REVIEW, reason(Why.REVIEW, confidence, threshold, share, note=policy.no_threshold))
    if task_id is not None and share > 0 and is_audit_sample(task_id, share):
        return Route(False, Why.AUDIT, reason(Why.AUDIT, confidence, threshold, share))
    return Route(True, Why.CONFIDENT, reason(Why.CONFIDENT, confidence, threshold, share))


def review_masks(
    task_ids: Sequence[int], confidence: np.ndarray, policy: RoutingPolicy
) -> tuple[np.ndarray, np.ndarray]:
    """For a whole pool (the sync), by the rule of ``route``: which tasks are held out, and which
    are audit samples (confident enough to skip review, not held out, drawn by id)."""
    buckets = np.array([_buckets(t) for t in task_ids], dtype=np.int64).reshape(-1, 2)
    heldout = buckets[:, 0] < policy.holdout_fraction * 10_000
    if policy.threshold is None or policy.audit_share <= 0:
        return heldout, np.zeros(len(heldout), dtype=bool)
    drawn = buckets[:, 1] < policy.audit_share * 10_000
    return heldout, (np.asarray(confidence) >= policy.threshold) & ~heldout & drawn
