"""What oversight shows, collected once: a project's versions, candidates, corrections, routing
audits, drift and label checks, stopping criteria and batch corrections, read from the stores the
backend already writes (audit store, registry, sync state); nothing calls Label Studio.

The dashboard (``server/dashboard.py``) and the report (``oversight/report.py``) render the same
``ProjectData``; every figure both show is derived here, once, and the monitors' standing alarms
are its ``findings``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.learning.slices import class_slice, field_slice
from backend.monitoring import DRIFT, INPUT_DRIFT, LABEL_ERRORS, Finding
from backend.monitoring.routing_audit import RoutingAudit, audit_routing, thresholds
from backend.monitoring.stopping import StoppingState, StoppingStatus, learning_curve
from backend.stores import versions as version_names
from backend.stores.audit import AuditStore, is_inputs_check
from backend.stores.queue_state import SyncState, queue_state_exists
from backend.stores.registry import Registry, RegistryError, served_name


@dataclass
class ProjectData:
    project_id: int
    versions: list[dict[str, Any]]  # registry metadata of published versions, oldest first
    candidates: list[dict[str, Any]]  # audit records of every candidate, published or not
    corrections: list[dict[str, Any]]
    queue_scores: dict[str, list[float]]
    current: str | None
    stopping: StoppingStatus | None = None
    label_checks: list[dict[str, Any]] = field(default_factory=list)  # audit records, oldest first
    routing: list[RoutingAudit] = field(default_factory=list)  # auto_accept as humans judged it, per version
    drift_checks: list[dict[str, Any]] = field(default_factory=list)  # audit records, oldest first
    estimated: dict[str, tuple[float, int]] = field(default_factory=dict)  # version: (mean confidence, tasks)
    holdout_fraction: float = 0.15
    label_verdicts: list[dict[str, Any]] = field(default_factory=list)  # what reviewers did with flags
    annotator_checks: list[dict[str, Any]] = field(default_factory=list)  # agreement, annotator quality
    proposals: list[dict[str, Any]] = field(default_factory=list)  # batch corrections with their outcomes
    task_fields: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # slice fields' values per task
    pool_confidence: dict[str, list[float]] = field(default_factory=dict)  # version: confidences shown on the pool

    @property
    def current_served(self) -> str:
        """The name Label Studio knows the serving version by (its family's): the sync state, the
        corrections and the drift checks are keyed by it."""
        meta = next((m for m in self.versions if m["version"] == self.current), None)
        return served_name(meta) if meta else (self.current or "")

    @property
    def model(self) -> str:
        """What the serving version is: the operator's model plug-in by name, or the bundled encoder
        with a head (fine-tuned or not); "" in a cold start."""
        meta = next((m for m in self.versions if m["version"] == self.current), None)
        if meta is None:
            return ""
        if meta.get("plugin"):
            return f"plug-in {meta['plugin']['name']}"
        encoder = meta.get("encoder") or {}
        tuned = " (fine-tuned)" if encoder.get("source") == "version" else ""
        return f"{encoder.get('name_or_path') or 'encoder'}{tuned} with a head"

    def correction_rate(self) -> tuple[int, int]:
        """(pre-annotations annotators saw, how many they changed), over every version."""
        shown = [c for c in self.corrections if c.get("changed") is not None]
        return len(shown), sum(bool(c["changed"]) for c in shown)

    def pool_coverage(self, version: str, threshold: float) -> tuple[float, int] | None:
        """The share of the pool at the last sync whose confidence reaches ``threshold``, and of how
        many tasks; None when the version was not on the pool."""
        shown = self.pool_confidence.get(version)
        if not shown:
            return None
        return sum(c >= threshold for c in shown) / len(shown), len(shown)

    def standing_drift(self) -> list[str]:
        """The kinds of drift check ("imports", "/predict inputs") whose latest check alarmed: the
        alarm stands until a check of that kind passes again (as the sync reads them)."""
        latest = {is_inputs_check(c): c for c in self.drift_checks}
        return [("/predict inputs" if inputs else "imports") for inputs, c in sorted(latest.items()) if c["alarm"]]

    def serving_slices(self) -> list[tuple[str, dict[str, float], dict[str, float] | None]]:
        """The serving version's held-out scores per slice (``learning/slices.py``), with the previous
        version's on its own held-out set; worst first."""
        published = [m for m in self.versions if m["version"] == self.current] or self.versions[-1:]
        if not published:
            return []
        index = self.versions.index(published[0])
        now = (published[0].get("metrics") or {}).get("slices") or {}
        before = ((self.versions[index - 1].get("metrics") or {}).get("slices") or {}) if index else {}
        rows = [(name, scores, before.get(name)) for name, scores in now.items()]
        return sorted(rows, key=lambda r: (r[1]["accuracy"], -r[1]["n"]))

    def slice_corrections(self, version: str) -> dict[str, list[int]]:
        """Per slice, [pre-annotations of ``version`` annotators saw, how many they changed]; a task's
        class is the label its annotator gave."""
        out: dict[str, list[int]] = {}
        for c in self.corrections:
            if c.get("changed") is None or c.get("prediction_model_version") != version:
                continue
            final = json.loads(c["final_result"]) if isinstance(c["final_result"], str) else c["final_result"] or []
            values = [r.get("value") or {} for r in final if isinstance(r, dict)]
            labels = {choice for value in values for choice in value.get("choices") or []}
            names = [class_slice(label) for label in sorted(labels)]
            names += [field_slice(key, value) for key, value in self.task_fields.get(int(c["task_id"]), [])]
            for name in names:
                counts = out.setdefault(name, [0, 0])
                counts[0] += 1
                counts[1] += bool(c["changed"])
        return out

    def findings(self) -> list[Finding]:
        """What the monitors say now, one line each: the serving version's routing audit, the standing
        drift checks, the latest label check and the stopping criteria."""
        out = [r.finding() for r in self.routing if r.model_version == self.current_served]
        latest = {is_inputs_check(c): c for c in self.drift_checks}
        for inputs, check in sorted(latest.items()):
            said = "DRIFT" if check["alarm"] else "no drift"
            line = f"{said}: {check['size']} tasks; p = {check['p_outputs']:.3g}, {check['p_embeddings']:.3g}"
            out.append(Finding(INPUT_DRIFT if inputs else DRIFT, bool(check["alarm"]), line))
        if self.label_checks:
            suspects = len(self.label_checks[-1]["suspects"])
            line = f"{suspects} suspected label errors in the latest check"
            out.append(Finding(LABEL_ERRORS, suspects > 0, line, {"suspects": suspects}))
        if self.stopping is not None:
            out.append(self.stopping.finding())
        return out


def collect(
    project_id: int,
    audit: AuditStore,
    registry: Registry,
    sync_state: Path | str,
    target: float = 0.98,
    holdout_fraction: float = 0.15,
    min_eval: int = 20,
) -> ProjectData:
    key = project_id
    versions = []
    for version in registry.versions(key):
        try:
            versions.append({"version": version, **registry.meta(key, version)})
        except (RegistryError, OSError, ValueError):
            continue
    versions.sort(key=lambda m: m.get("created_at") or m["version"])
    state = SyncState(sync_state) if queue_state_exists(sync_state) else None
    scores = state.strategy_scores(project_id) if state else {}
    curve = learning_curve(versions, min_eval)
    stopping = StoppingState(sync_state).status(project_id, curve) if state else None
    estimated = state.mean_confidence(project_id) if state else {}
    confidence = state.confidences(project_id) if state else {}
    # annotations made from a batch-correction proposal are accounted for under "Batch corrections"
    corrections = [
        c for c in audit.corrections(project_id) if not version_names.is_proposal(c.get("prediction_model_version"))
    ]
    audited = audit_routing(corrections, thresholds(registry, key), target, shown=audit.shown(project_id))
    routing = [dataclasses.replace(r, suspended=registry.routing_suspended(key, r.model_version)) for r in audited]
    return ProjectData(
        project_id,
        versions,
        audit.versions(project_id),
        corrections,
        scores,
        registry.current(key),
        stopping,
        audit.label_checks(project_id),
        routing,
        audit.drift_checks(project_id),
        estimated,
        holdout_fraction,
        audit.label_verdicts(project_id),
        audit.annotator_checks(project_id),
        audit.proposals(project_id),
        audit.task_fields(project_id),
        confidence,
    )
