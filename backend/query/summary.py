"""What a sync did (or, in a dry run, would do), in figures and in words: the CLI prints it, the
worker logs it and returns it as the job's result."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.monitoring import DRIFT, INPUT_DRIFT, STOPPING, Finding
from backend.query.plan import QueuePlan


@dataclass
class SyncSummary:
    project_id: int
    model_version: str
    strategy: str
    pool: int = 0
    scored: int = 0
    written: int = 0  # predictions
    up_to_date: int = 0
    ranked: int = 0  # queue ranks (task data) written
    audit_samples: int = 0  # auto_accept tasks sent to humans anyway
    drift_probes: int = 0  # tasks of a drifted window interleaved into the queue
    disagreements: int = 0  # tasks where the fine-tuned model and the base encoder's head differ (second_opinion.py)
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    top_task_id: int | None = None
    top: list[tuple[int, int, float]] = field(default_factory=list)  # (task, cluster, score) of the first ten
    findings: list[Finding] = field(default_factory=list)  # what the monitors found during the sync (monitoring/)
    deferred: str = ""  # why nothing was scored: the pool waits for the new encoder's embeddings (what was done)
    plan: dict[str, Any] | None = None  # a dry run's plan, in figures (query/plan.py)
    gave_way: bool = False  # another sync of the project was running: nothing was done (jobs/sync_job.py)
    read: str = ""  # how the pool was read: whole, or only what changed since the last sync (query/pool.py)

    def planned(self, ids: list[int], clusters: np.ndarray, plan: QueuePlan) -> None:
        """The plan's figures: what was scored, sent to people anyway, kept, and the queue's head."""
        self.scored = len(ids)
        self.audit_samples, self.drift_probes = int(plan.audit.sum()), int(plan.probes.sum())
        self.up_to_date = plan.up_to_date
        self.top_task_id = int(ids[plan.order[0]])
        self.top = [(ids[i], int(clusters[i]), round(float(plan.scores[i]), 6)) for i in plan.order[:10]]

    def finding(self, monitor: str) -> Finding | None:
        return next((f for f in self.findings if f.monitor == monitor), None)

    @property
    def drift(self) -> dict[str, Any] | None:
        """The check of newly arrived tasks, when one ran (``monitoring/drift_monitor.py``)."""
        found = self.finding(DRIFT)
        return None if found is None else {**found.figures, "alarm": found.alarm, "line": found.line}

    @property
    def input_drift(self) -> dict[str, Any] | None:
        """The check of what ``/predict`` was asked, when one ran."""
        found = self.finding(INPUT_DRIFT)
        return None if found is None else {**found.figures, "alarm": found.alarm, "line": found.line}

    @property
    def stopping(self) -> str:
        found = self.finding(STOPPING)
        return "" if found is None else found.line

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["skipped"] = dict(self.skipped)
        data["findings"] = [f.as_dict() for f in self.findings]
        data.update(drift=self.drift, input_drift=self.input_drift, stopping=self.stopping)
        return data

    def _plan_lines(self, skipped: str) -> str:
        """A dry run's plan in words: what a sync would write now."""
        plan = self.plan or {}
        shown = ", ".join(f"{n} {how}" for how, n in plan["presentations"].items()) or "none"
        lines = [
            f"project {self.project_id} (dry run, nothing written): {self.pool} unlabeled tasks, {self.scored} "
            f"scored, skipped: {skipped}; version {self.model_version}, strategy {self.strategy}",
            f"would write {plan['predictions_to_write']} predictions ({shown}), keep {plan['kept']}, "
            f"and {plan['task_data_writes']} task-data writes (ranks, review ranks, headers)",
            f"held out {plan['held_out']}, audit samples {plan['audit_samples']}, drift probes "
            f"{plan['drift_probes']}, review tab {plan['review_tab']} tasks",
            "queue head:",
        ]
        return "\n".join(lines + [f"  task {h['task']}: {h['header']}" for h in plan["head"]])

    def line(self) -> str:
        if self.gave_way:
            return f"project {self.project_id}: {self.deferred}"
        if self.deferred:
            return f"project {self.project_id}: {self.pool} unlabeled tasks; {self.model_version}: {self.deferred}"
        skipped = ", ".join(f"{n} {why}" for why, n in self.skipped.items()) or "none"
        if self.plan is not None:
            return self._plan_lines(skipped)
        return (
            f"project {self.project_id}: {self.pool} unlabeled tasks, {self.scored} scored, {self.written} written, "
            f"{self.up_to_date} up to date, {self.ranked} ranks written, skipped: {skipped}; version "
            f"{self.model_version}, strategy {self.strategy}; read: {self.read}; {self.seconds:.1f}s; "
            f"next task: {self.top_task_id}"
        ) + "".join(f"\n{f.said()}" for f in self.findings)
