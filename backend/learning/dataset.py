"""Label Studio's annotated tasks → training examples and audit records.

Policy (one place, documented in the README):
- cancelled (skipped) annotations are never training data;
- per task, the most recently updated non-cancelled annotation wins (a reviewer's fix after an
  annotator's answer replaces it); earlier annotations still go to the audit trail;
- a single-choice task whose winning annotation somehow sets several choices keeps the first;
- NER: the winning annotation's spans are the task's entities; an annotation with no span says
  the text has none (a real answer, and training data); spans past the served text are dropped;
- tasks whose data cannot be read are counted and skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from backend.labeling import TaskError, TaskSpec, labels_from_result, task_text
from backend.labeling.examples import Example
from backend.labeling.spans import spans_from_result
from backend.learning.slices import field_values
from backend.serving.routing import is_heldout
from backend.stores.audit import Correction


@dataclass
class Dataset:
    examples: list[Example] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def _stamp(annotation: dict[str, Any]) -> tuple[str, int]:
    return (str(annotation.get("updated_at") or annotation.get("created_at") or ""), int(annotation.get("id") or 0))


def latest_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    """The task's winning annotation: the most recently updated one that was not cancelled."""
    kept = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    return max(kept, key=_stamp, default=None)


def build_dataset(
    project_id: int, tasks: Iterable[dict[str, Any]], spec: TaskSpec, max_chars: int, slice_fields: Sequence[str] = ()
) -> Dataset:
    """``slice_fields``: task-data fields whose values each example carries (``learning/slices.py``)."""
    out = Dataset()
    for task in tasks:
        annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
        kept = [a for a in annotations if not a.get("was_cancelled")]
        if not kept:
            out.skipped["only cancelled annotations" if annotations else "no annotation"] += 1
            continue
        for annotation in kept:
            out.corrections.append(_correction(project_id, task, annotation, spec))
        latest = latest_annotation(task)
        assert latest is not None
        try:
            text = task_text(task, spec, max_chars)
        except TaskError:
            out.skipped["unreadable task data"] += 1
            continue
        values = field_values(task.get("data") or {}, slice_fields)
        if spec.is_ner:
            spans = tuple(spans_from_result(spec, latest.get("result") or [], text) or ())
            labels = tuple(sorted({s.label for s in spans}))
            out.examples.append(Example(text, labels, int(task["id"]), int(latest["id"]), spans, values))
            continue
        labels = labels_from_result(spec, latest.get("result") or [])
        if not labels:
            out.skipped["annotation sets no choice"] += 1
            continue
        if not spec.multi_label:
            labels = labels[:1]
        out.examples.append(Example(text, tuple(labels), int(task["id"]), int(latest["id"]), slices=values))
    return out


def split(examples: Sequence[Example], holdout_fraction: float) -> tuple[list[Example], list[Example]]:
    """Stable train/held-out split by task id: a task stays on its side across every retrain, so no
    version is ever evaluated on a task it was trained on."""
    train, held = [], []
    for ex in examples:
        (held if is_heldout(ex.task_id, holdout_fraction) else train).append(ex)
    return train, held


def _correction(project_id: int, task: dict[str, Any], annotation: dict[str, Any], spec: TaskSpec) -> Correction:
    prediction = _prediction_shown(task, annotation)
    final = annotation.get("result") or []
    shown = prediction.get("result") if prediction else None
    changed = None  # no pre-annotation shown (none, or cold start's empty one): nothing to change
    if prediction is not None and shown:
        changed = _answer(spec, shown, task) != _answer(spec, final, task)
    return Correction(
        project_id=project_id,
        task_id=int(task["id"]),
        annotation_id=int(annotation["id"]),
        annotator=str(annotation.get("completed_by")) if annotation.get("completed_by") is not None else None,
        annotated_at=str(annotation.get("updated_at") or annotation.get("created_at") or ""),
        prediction_model_version=prediction.get("model_version") if prediction else None,
        prediction_score=prediction.get("score") if prediction else None,
        prediction_result=shown,
        final_result=final,
        changed=changed,
        rationale=_rationale(final, spec),
    )


def _answer(spec: TaskSpec, result: list[Any], task: dict[str, Any]) -> list[Any]:
    """What a result says, comparable between the prediction shown and the final annotation."""
    if not spec.is_ner:
        return sorted(labels_from_result(spec, result) or [])
    text = (task.get("data") or {}).get(spec.data_key)
    if not isinstance(text, str):
        return []
    return sorted(s.key for s in spans_from_result(spec, result, text) or [])


def _prediction_shown(task: dict[str, Any], annotation: dict[str, Any]) -> dict[str, Any] | None:
    """The prediction the annotator was shown: the one Label Studio records as the annotation's
    ``parent_prediction`` (its labeling page sets it whenever it opens a task with a prediction,
    pre-selected or not, checked by clicking in Label Studio 1.23.2). None: nothing was shown. The
    sync never changes a prediction once written, so what the parent holds now is what was shown."""
    parent = annotation.get("parent_prediction")
    if parent is None:
        return None
    return next((p for p in task.get("predictions") or [] if isinstance(p, dict) and p.get("id") == parent), None)


def _rationale(result: list[Any], spec: TaskSpec) -> str | None:
    if not spec.rationale_name:
        return None
    for region in result:
        if isinstance(region, dict) and region.get("from_name") == spec.rationale_name:
            text = (region.get("value") or {}).get("text")
            if isinstance(text, list):
                return "\n".join(str(t) for t in text)
            if isinstance(text, str):
                return text
    return None
