"""Is auto_accept right in production? Humans still review some predictions the router would let
through: the audit samples the sync puts into the queue (``HITL_AUDIT_SHARE`` of the auto_accept
tasks, at random) and the held-out tasks, served in random order. Their outcomes measure each
version's production precision above its routing threshold, with a Wilson interval; when the
interval's upper end falls below the target precision, auto_accept is switched off for that
version (``Registry.suspend_routing``) and the decision is audited. The held-out precision that
set the threshold is an estimate on a few hundred annotations; this is the check that it holds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from scipy.stats import binomtest

from backend.monitoring import ROUTING_AUDIT, Finding
from backend.stores.audit import AuditStore
from backend.stores.registry import Registry, RegistryError, served_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoutingAudit:
    """One version's auto_accept, as humans judged it."""

    model_version: str  # the name Label Studio shows (a family's)
    threshold: float
    reviewed: int  # predictions shown at or above the threshold that a human reviewed
    confirmed: int  # ...and left as they were
    low: float  # Wilson interval of the production precision
    high: float
    target: float
    suspended: str | None = None  # why auto_accept is off, if it is

    @property
    def precision(self) -> float | None:
        return self.confirmed / self.reviewed if self.reviewed else None

    def finding(self) -> Finding:
        """Alarm while auto_accept is off for this version: people changed too many of its answers."""
        return Finding(ROUTING_AUDIT, self.suspended is not None, self.line(), dataclasses.asdict(self))

    def line(self) -> str:
        if not self.reviewed:
            return f"{self.model_version}: auto_accept at >= {self.threshold:.3f}, no human review yet"
        state = f"OFF ({self.suspended})" if self.suspended else "on"
        return (
            f"{self.model_version}: auto_accept at >= {self.threshold:.3f}: {self.confirmed} of {self.reviewed} "
            f"reviewed predictions kept ({self.precision:.1%}, 95% interval {self.low:.1%}-{self.high:.1%}; "
            f"target {self.target:.0%}); {state}"
        )


def wilson(confirmed: int, reviewed: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (scipy), (0, 1) without observations."""
    if reviewed == 0:
        return 0.0, 1.0
    interval = binomtest(confirmed, reviewed).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def thresholds(registry: Registry, project: int) -> dict[str, float]:
    """Each name Label Studio knows the project's versions by, with its routing threshold (the
    latest version of a family sets it)."""
    found: dict[str, float] = {}
    for version in registry.versions(str(project)):
        try:
            meta = registry.meta(str(project), version)
        except (RegistryError, OSError, ValueError):
            continue
        threshold = (meta.get("routing") or {}).get("threshold")
        if threshold is not None:
            found[served_name(meta)] = float(threshold)
    return found


def audit_routing(
    corrections: Iterable[dict[str, Any]],
    limits: dict[str, float],
    target: float,
    confidence: float = 0.95,
    shown: dict[tuple[int, str], dict[str, Any]] | None = None,
) -> list[RoutingAudit]:
    """Production precision of auto_accept per version, from the corrections (a prediction's score
    is its calibrated confidence). An audit sample is shown blind, so nothing was there to change:
    its outcome is the annotator's label against the model's answer recorded in ``shown``
    (``AuditStore.shown``)."""
    counts = {name: [0, 0] for name in limits}
    for row in corrections:
        name, score = row.get("prediction_model_version"), row.get("prediction_score")
        if name not in limits or score is None or score < limits[name]:
            continue
        right = None if row.get("changed") is None else not row["changed"]
        record = (shown or {}).get((int(row.get("task_id") or 0), str(name)))
        final = _choices(row.get("final_result"))  # (a NER answer has none: judged by its pre-annotation only)
        if (
            right is None
            and record is not None
            and record.get("presentation") == "blind"
            and record["answer"]
            and final
        ):
            right = sorted(final) == sorted(record["answer"])
        if right is None:
            continue
        counts[name][0] += 1
        counts[name][1] += int(right)
    return [
        RoutingAudit(name, limits[name], n, k, *wilson(k, n, confidence), target) for name, (n, k) in counts.items()
    ]


def check_routing(
    audit: AuditStore, registry: Registry, project: int, target: float, confidence: float = 0.95
) -> list[RoutingAudit]:
    """Audit every version's auto_accept and switch it off where humans showed it falls short."""
    results = []
    for result in audit_routing(
        audit.corrections(project), thresholds(registry, project), target, confidence, audit.shown(project)
    ):
        suspended = registry.routing_suspended(project, result.model_version)
        if suspended is None and result.reviewed and result.high < target:
            suspended = (
                f"production precision {result.precision:.1%} ({result.confirmed}/{result.reviewed}), "
                f"interval up to {result.high:.1%} < target {target:.0%}"
            )
            registry.suspend_routing(project, result.model_version, suspended)
            audit.record_routing_decision(
                project,
                result.model_version,
                result.threshold,
                result.reviewed,
                result.confirmed,
                result.low,
                result.high,
                f"auto_accept off: {suspended}",
            )
            log.warning("project %s: %s: auto_accept switched off: %s", project, result.model_version, suspended)
        results.append(dataclasses.replace(result, suspended=suspended))
    return results


def _choices(result: Any) -> list[str]:
    """The choices a stored annotation result sets (routing is single-choice classification)."""
    regions = json.loads(result) if isinstance(result, str) else result or []
    return [c for r in regions if isinstance(r, dict) for c in (r.get("value") or {}).get("choices") or []]
