"""Probable label errors of a project, checked as the product trains: Label Studio's annotations
through the dataset policy, the base encoder's cached embeddings, the detector in
``learning/label_errors.py``. ``hitl label-errors --project ID`` runs it, and so does an RQ job
after every published version, which records the result in the audit store (``hitl report``
shows it); nothing is written to Label Studio."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from backend.ids import JobKind, ProjectId
from backend.jobs.context import WorkerContext, context
from backend.jobs.queue import RetrainQueue
from backend.labeling import parse_label_config
from backend.learning.dataset import build_dataset
from backend.learning.label_errors import LabelErrorsUnsupported, Suspect, find_suspects
from backend.stores.labelstudio import unavailable_as_one_line


@dataclass
class LabelErrorReport:
    project_id: ProjectId
    annotated: int
    suspects: list[Suspect] = field(default_factory=list)
    left_out: int = 0  # annotations whose input could not be read

    def as_dict(self) -> dict[str, Any]:
        return {"project_id": self.project_id, "annotated": self.annotated, "left_out": self.left_out,
                "suspects": [asdict(s) for s in self.suspects]}  # fmt: skip

    def lines(self, limit: int = 20) -> list[str]:
        head = (f"project {self.project_id}: {len(self.suspects)} probable label errors among {self.annotated} "
                f"annotated tasks (cross-validated, cleanlab); most suspicious first:")  # fmt: skip
        rows = [f"  task {s.task_id}: labeled {s.given!r}, the model says {s.suggested!r} (label quality "
                f"{s.quality:.3f}); nearest tasks labeled {s.suggested!r}: {', '.join(map(str, s.neighbours))}"
                for s in self.suspects[:limit]]  # fmt: skip
        more = [f"  … and {len(self.suspects) - limit} more (--json for all)"] if len(self.suspects) > limit else []
        return [head, *rows, *more]


def label_errors_job(project_id: ProjectId, kind: str = JobKind.LABEL_ERRORS, reason: str = "") -> dict[str, Any]:
    """RQ entry point: check the project's annotations and record the suspects."""
    ctx = context()
    RetrainQueue(ctx.settings).take(project_id, JobKind.LABEL_ERRORS)
    try:
        with unavailable_as_one_line(ctx.settings.label_studio_url or "?"):
            report = check_project(ctx, project_id)
    except LabelErrorsUnsupported as exc:  # retrying cannot help
        return {"project_id": project_id, "checked": False, "reason": str(exc)}
    ctx.audit.record_label_check(project_id, ctx.registry.current(project_id), report.annotated,
                                 [asdict(s) for s in report.suspects])  # fmt: skip
    return {"project_id": project_id, "checked": True, "annotated": report.annotated,
            "suspects": len(report.suspects)}  # fmt: skip


def check_project(ctx: WorkerContext, project_id: ProjectId) -> LabelErrorReport:
    """Raises LabelErrorsUnsupported (with the reason) for projects the detector cannot judge."""
    ls = ctx.label_studio()
    spec = parse_label_config(ls.label_config(project_id))
    data = build_dataset(project_id, ls.annotated_tasks(project_id), spec, ctx.settings.max_text_chars)
    cache = ctx.cache_for(spec)
    readable, x = cache.embed_readable([ex.text for ex in data.examples])
    examples = [ex for ex, ok in zip(data.examples, readable, strict=True) if ok]
    suspects = find_suspects(spec, examples, x[readable])
    return LabelErrorReport(project_id, len(examples), suspects, int((~readable).sum()))
