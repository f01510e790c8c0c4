"""Probable label errors of a project, checked as the product trains, and put in front of reviewers.

``check_project`` reads Label Studio's annotations through the dataset policy, embeds them with the
base encoder (through its cache) and runs the detector
(``monitoring/label_errors.py``). ``review`` then records what reviewers did with earlier flags
(changed / kept / removed, from the tasks' annotations now), records the new flags, and marks the
suspects in Label Studio: three task data fields on each suspect (annotated tasks only, which the
queue sync never writes) and a Data Manager tab "Suspected label errors (hitl)" listing them, most
suspicious first. Marks of tasks no longer suspected are removed. No annotation is ever written.
``hitl label-errors --project ID`` runs both; so does an RQ job after every published version.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from backend.ids import JobKind, ProjectId
from backend.jobs.context import WorkerContext, context
from backend.jobs.outage import reaching_label_studio
from backend.jobs.queue import RetrainQueue
from backend.labeling import TaskSpec, labels_from_result, parse_label_config
from backend.learning.dataset import build_dataset, latest_annotation
from backend.monitoring.label_errors import Annotator, LabelErrorsUnsupported, Suspect, check_labels, verdict
from backend.query.writeback import REASON_FIELD
from backend.serving.reasons import Why
from backend.stores.labelstudio import LabelStudioClient, data_filter

log = logging.getLogger(__name__)

SUSPECT_FIELD = "hitl_suspect"  # 1 = the most suspicious; the tab sorts by it
SUGGESTED_FIELD = "hitl_suggested"  # the label the model (or the annotators' consensus) suggests
EVIDENCE_FIELD = "hitl_evidence"  # why, in words, with the nearest tasks that carry the suggested label
MARKS = (SUSPECT_FIELD, SUGGESTED_FIELD, EVIDENCE_FIELD)
SUSPECT_REASON = Why.SUSPECT.title  # how the labeling page's reason (hitl_reason) starts for a suspect
SUSPECTS_TAB = "Suspected label errors (hitl)"
# Label Studio's default columns a reviewer of suspects does not need, so the suggested label and the
# evidence are in view next to the task's own data and its annotation
REVIEW_HIDDEN = [
    "tasks:inner_id",
    "tasks:completed_at",
    "tasks:cancelled_annotations",
    "tasks:total_predictions",
    "tasks:annotations_ids",
    "tasks:predictions_score",
    "tasks:predictions_model_versions",
    "tasks:predictions_results",
    "tasks:file_upload",
    "tasks:storage_filename",
    "tasks:created_at",
    "tasks:updated_at",
    "tasks:updated_by",
    "tasks:avg_lead_time",
    "tasks:draft_exists",
    "tasks:data.hitl_rank",
    "tasks:data.hitl_reason",
]


@dataclass
class LabelErrorReport:
    project_id: ProjectId
    annotated: int
    suspects: list[Suspect] = field(default_factory=list)
    left_out: int = 0  # annotations whose input could not be read
    annotators: list[Annotator] = field(default_factory=list)
    multi_annotated: int = 0
    mean_agreement: float | None = None
    labels: dict[int, tuple[str, str, str | None]] = field(default_factory=dict)  # task → (label, stamp, who)
    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)  # task id → its data (to merge marks into)

    def as_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "annotated": self.annotated,
            "left_out": self.left_out,
            "suspects": [asdict(s) for s in self.suspects],
            "annotators": [asdict(a) for a in self.annotators],
            "multi_annotated": self.multi_annotated,
            "mean_agreement": self.mean_agreement,
        }

    def lines(self, limit: int = 20) -> list[str]:
        head = (
            f"project {self.project_id}: {len(self.suspects)} probable label errors among {self.annotated} "
            f"annotated tasks (cross-validated, cleanlab); most suspicious first:"
        )
        rows = [
            f"  task {s.task_id}: labeled {s.given!r}, {_why(s)} {s.suggested!r} (label quality "
            f"{s.quality:.3f}); nearest tasks labeled {s.suggested!r}: {', '.join(map(str, s.neighbours))}"
            for s in self.suspects[:limit]
        ]
        more = [f"  … and {len(self.suspects) - limit} more (--json for all)"] if len(self.suspects) > limit else []
        crowd = (
            [
                f"  {self.multi_annotated} tasks have several annotators' answers; mean agreement with the "
                f"consensus {self.mean_agreement:.2f}; annotator quality: "
                + ", ".join(f"{a.annotator} {a.quality:.2f}" for a in self.annotators)
            ]
            if self.annotators
            else []
        )
        return [head, *rows, *more, *crowd]


def _why(s: Suspect) -> str:
    return "the annotators' consensus is" if s.reason == "annotators disagree" else "the model says"


def label_errors_job(project_id: ProjectId, kind: str = JobKind.LABEL_ERRORS, reason: str = "") -> dict[str, Any]:
    """RQ entry point: check the project's annotations, record verdicts and flags, mark the suspects."""
    ctx = context()
    RetrainQueue(ctx.settings).take(project_id, JobKind.LABEL_ERRORS)
    try:
        with reaching_label_studio(ctx.settings):
            report = check_project(ctx, project_id)
            outcome = review(ctx, project_id, report)
    except LabelErrorsUnsupported as exc:  # retrying cannot help
        return {"project_id": project_id, "checked": False, "reason": str(exc)}
    return {
        "project_id": project_id,
        "checked": True,
        "annotated": report.annotated,
        "suspects": len(report.suspects),
        **outcome,
    }


def check_project(ctx: WorkerContext, project_id: ProjectId) -> LabelErrorReport:
    """Raises LabelErrorsUnsupported (with the reason) for projects the detector cannot judge."""
    ls = ctx.label_studio()
    spec = parse_label_config(ls.label_config(project_id))
    tasks = list(ls.annotated_tasks(project_id))
    data = build_dataset(project_id, tasks, spec, ctx.settings.max_text_chars)
    # The base encoder, even when a fine-tuned version serves: an encoder fine-tuned on these very
    # labels has learnt the wrong ones too (a live project's suspects went from 26 to 1 right after
    # its first fine-tune at 120 annotations), so its features hide what the check looks for.
    cache = ctx.cache_for(spec)
    readable, x = cache.embed_readable([ex.text for ex in data.examples])
    examples = [ex for ex, ok in zip(data.examples, readable, strict=True) if ok]
    confirmed = {
        int(v["task_id"]): str(v["final"]) for v in ctx.audit.label_verdicts(project_id) if v["verdict"] == "kept"
    }
    result = check_labels(
        spec,
        examples,
        x[readable],
        answers=_answers(spec, tasks),
        confirmed=confirmed,
        max_given_prob=ctx.settings.label_errors_max_prob,
    )
    report = LabelErrorReport(
        project_id,
        len(examples),
        result.suspects,
        int((~readable).sum()),
        result.annotators,
        result.multi_annotated,
        result.mean_agreement,
    )
    for task in tasks:
        latest = latest_annotation(task)
        if latest is None:
            continue
        labels = labels_from_result(spec, latest.get("result") or []) or [""]
        stamp = str(latest.get("updated_at") or latest.get("created_at") or "")
        who = latest.get("updated_by") or latest.get("completed_by")
        report.labels[int(task["id"])] = (labels[0], stamp, None if who is None else str(who))
        report.tasks[int(task["id"])] = dict(task.get("data") or {})
    return report


def _answers(spec: TaskSpec, tasks: Iterable[dict[str, Any]]) -> dict[int, dict[str, str]]:
    """Task id → annotator → label, from every non-cancelled annotation (an annotator's latest)."""
    out: dict[int, dict[str, str]] = {}
    for task in tasks:
        for a in sorted(task.get("annotations") or [], key=lambda a: str(a.get("updated_at") or "")):
            labels = labels_from_result(spec, a.get("result") or []) if not a.get("was_cancelled") else None
            if labels and a.get("completed_by") is not None:
                out.setdefault(int(task["id"]), {})[str(a["completed_by"])] = labels[0]
    return out


def review(ctx: WorkerContext, project_id: ProjectId, report: LabelErrorReport) -> dict[str, Any]:
    """Verdicts on earlier flags, the new flags and the check in the audit store; the marks and the
    tab in Label Studio."""
    version = ctx.registry.current(project_id)
    verdicts = []
    for flag in ctx.audit.open_label_flags(project_id):
        current = report.labels.get(int(flag["task_id"]))
        decided = verdict(flag["given"], flag["annotated_at"], None if current is None else current[:2])
        if decided is not None:
            verdicts.append(
                {
                    **flag,
                    "verdict": decided,
                    "final": None if current is None else current[0],
                    "reviewer": None if current is None else current[2],
                    "decided_at": None if current is None else current[1],
                }
            )
    ctx.audit.record_label_verdicts(project_id, verdicts)
    kept = {int(v["task_id"]): v["final"] for v in verdicts if v["verdict"] == "kept"}
    report.suspects = [s for s in report.suspects if kept.get(s.task_id) != s.given]  # confirmed just now
    flags = [{**asdict(s), "annotated_at": report.labels.get(s.task_id, ("", "", None))[1]} for s in report.suspects]
    ctx.audit.record_label_flags(project_id, version, flags)
    ctx.audit.record_label_check(project_id, version, report.annotated, flags, _crowd_summary(report))
    marked, cleared = mark_suspects(ctx.label_studio(), project_id, report)
    if verdicts:
        log.info(
            "project %s: reviewers decided %d flagged labels (%s)",
            project_id,
            len(verdicts),
            ", ".join(f"{v['task_id']}: {v['verdict']}" for v in verdicts[:10]),
        )
    return {"verdicts": len(verdicts), "marked": marked, "cleared": cleared}


def _crowd_summary(report: LabelErrorReport) -> dict[str, Any] | None:
    if not report.annotators:
        return None
    return {
        "multi_annotated": report.multi_annotated,
        "mean_agreement": report.mean_agreement,
        "annotators": [asdict(a) for a in report.annotators],
    }


def mark_suspects(ls: LabelStudioClient, project_id: ProjectId, report: LabelErrorReport) -> tuple[int, int]:
    """Write the marks of each suspect whose marks differ, remove them from tasks no longer suspected,
    and keep the tab. One PATCH per task written (Community has no bulk write of task data)."""
    wanted = {
        s.task_id: {
            SUSPECT_FIELD: rank,
            SUGGESTED_FIELD: s.suggested,
            EVIDENCE_FIELD: _evidence(s),
            REASON_FIELD: f"{SUSPECT_REASON}: labeled {s.given}; {_evidence(s)}.",
        }
        for rank, s in enumerate(report.suspects, start=1)
    }
    marked = cleared = 0
    for task_id, data in report.tasks.items():
        # the labeling page's reason is ours to clear only when it is a suspect's (else the queue's, left as it was)
        ours = (*MARKS, REASON_FIELD) if str(data.get(REASON_FIELD, "")).startswith(SUSPECT_REASON) else MARKS
        held = {k: data[k] for k in ours if k in data}
        want = wanted.get(task_id, {})
        if held == want:
            continue
        rest = {k: v for k, v in data.items() if k not in ours}
        ls.update_task_data(task_id, {**rest, **want})
        marked, cleared = (marked + 1, cleared) if want else (marked, cleared + 1)
    ls.ensure_view(
        project_id,
        SUSPECTS_TAB,
        f"tasks:data.{SUSPECT_FIELD}",
        filters=[data_filter(SUSPECT_FIELD, "greater", 0)],
        first=False,
        hidden=REVIEW_HIDDEN,
    )
    return marked, cleared


def _evidence(s: Suspect) -> str:
    near = ", ".join(str(t) for t in s.neighbours)
    if s.reason == "annotators disagree":
        return f"annotators disagree; their consensus is {s.suggested} (quality {s.quality:.2f})"
    return f"the model says {s.suggested} (label quality {s.quality:.2f}); like tasks {near}"
