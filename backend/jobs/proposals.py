"""Batch-correction proposals: one correction, offered for the similar tasks it also applies to.

After a publish, for each new correction (an annotation whose label differs from the pre-annotation
shown) of a single-choice project: the unlabeled tasks near the corrected one that the serving
version still labels the same wrong way (``learning/batch_correction.py``) get the corrected label
as a prediction of their own version, ``proposal-<annotation id>-<label>``, and a Data Manager tab
"Proposal <id>: N similar tasks → <label>" lists them. A reviewer checks them there and accepts the
right ones in bulk with Label Studio's own action *Create Annotations From Predictions* (choosing
the proposal's version), or labels a task otherwise. Nothing is applied without that action.

Each run also settles earlier proposals: a proposed task annotated with the proposed label is
``accepted``, with another label ``rejected`` (``model label taken``, with a warning in the log,
when the bulk action was run with the project's own version, which its dialog lists first); when a
new version family serves, the tasks left are ``expired`` and the proposal's predictions and tab
are removed. Everything goes to the audit store (``proposals``, ``proposal_outcomes``).

Whatever the dialog's choice, a proposal is safe: an annotation the bulk action made on a
proposal's task from another version's prediction, carrying the label the correction rejected,
is not trained on (``held_back``) until a person saves the task again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from backend.ids import JobKind, ProjectId
from backend.jobs.context import WorkerContext, context
from backend.jobs.outage import reaching_label_studio
from backend.jobs.queue import RetrainQueue
from backend.labeling import TaskError, TaskSpec, choices_result, labels_from_result, parse_label_config, task_text
from backend.learning.batch_correction import Threshold, propose, similarity_threshold
from backend.learning.dataset import Dataset, build_dataset, latest_annotation
from backend.models.classifier import TextClassifier
from backend.models.embedding_cache import EmbeddingCache
from backend.models.plugin_model import PluginClassifier
from backend.serving.predictor import class_probabilities, load_serving, own_cache
from backend.stores import versions
from backend.stores.audit import Correction
from backend.stores.labelstudio import LabelStudioClient, annotations_filter

log = logging.getLogger(__name__)

NEW_PER_RUN = 20  # corrections considered per run, newest first (older ones on later runs)


proposal_version = versions.proposal  # the proposal's model version in Label Studio


def tab_title(proposal_id: int, size: int, label: str) -> str:
    return f"Proposal {proposal_id}: {size} similar tasks → {label}"


def proposals_job(project_id: ProjectId, kind: str = JobKind.PROPOSALS, reason: str = "") -> dict[str, Any]:
    """RQ entry point."""
    ctx = context()
    RetrainQueue(ctx.settings).take(project_id, JobKind.PROPOSALS)
    with reaching_label_studio(ctx.settings):
        return run(ctx, project_id)


def run(ctx: WorkerContext, project_id: ProjectId) -> dict[str, Any]:
    """Settle earlier proposals, then propose for new corrections. Returns what was done."""
    ls = ctx.label_studio()
    spec = parse_label_config(ls.label_config(project_id))
    if spec.is_ner or spec.multi_label or spec.modality != "text":
        return {
            "project_id": project_id,
            "proposed": 0,
            "reason": "batch correction is built for single-choice text classification",
        }
    cache = ctx.cache_for(spec)
    serving = load_serving(ctx.registry, project_id, spec, cache.encoder)
    if not isinstance(serving.model, TextClassifier | PluginClassifier):
        return {"project_id": project_id, "proposed": 0, "reason": "no trained version serves yet"}
    tasks = list(ls.annotated_tasks(project_id))
    settled = settle(ctx, ls, project_id, spec, tasks, serving.label)
    data = build_dataset(project_id, tasks, spec, ctx.settings.max_text_chars)
    earlier = ctx.audit.proposals(project_id)  # read after settle(), which records outcomes
    recorded = ctx.audit.shown(project_id)

    def model_said(c: Correction) -> list[str]:  # pre-selected, or (leaning only, blind) as the sync recorded it
        shown = labels_from_result(spec, c.prediction_result or [])
        return shown or list((recorded.get((c.task_id, str(c.prediction_model_version))) or {}).get("answer") or [])

    fresh = _fresh(spec, data, {int(p["proposal_id"]) for p in earlier}, model_said)
    summary: dict[str, Any] = {"project_id": project_id, "settled": settled, "proposed": 0, "proposals": []}
    if not fresh:
        return summary
    own = own_cache(serving.model, cache)
    examples = data.examples
    annotated_x = own.embed([ex.text for ex in examples])
    annotated_y = np.array([spec.labels.index(ex.labels[0]) for ex in examples])
    threshold = similarity_threshold(annotated_x, annotated_y, ctx.settings.proposal_same_label)
    busy = {int(t) for p in earlier for t in p["task_ids"] if int(t) not in p["outcomes"]}
    pool_ids, pool_x, pool_probs = _pool(ctx, ls, project_id, spec, own, serving.model, busy)
    index = {ex.annotation_id: i for i, ex in enumerate(examples)}
    for correction in fresh:
        shown = model_said(correction)
        right = labels_from_result(spec, correction.final_result)
        if not shown or not right:
            continue
        rows = propose(
            annotated_x[index[correction.annotation_id]],
            spec.labels.index(right[0]),
            spec.labels.index(shown[0]),
            pool_x,
            pool_probs,
            annotated_x,
            annotated_y,
            threshold.similarity,
        )[: ctx.settings.proposal_max_tasks]
        chosen = [int(pool_ids[r]) for r in rows]
        if not ctx.audit.record_proposal(
            project_id,
            correction.annotation_id,
            serving.label,
            correction.task_id,
            shown[0],
            right[0],
            threshold.similarity,
            chosen,
        ):
            continue
        if chosen:
            _write(ls, project_id, spec, correction.annotation_id, right[0], chosen)
            keep = np.ones(len(pool_ids), dtype=bool)
            keep[rows] = False  # a task is in one proposal at a time
            pool_ids, pool_x, pool_probs = pool_ids[keep], pool_x[keep], pool_probs[keep]
        summary["proposals"].append({"id": correction.annotation_id, "label": right[0], "tasks": len(chosen)})
        summary["proposed"] += len(chosen)
    _close(summary, threshold, project_id)
    return summary


def held_back(tasks: list[dict[str, Any]], proposals: list[dict[str, Any]], spec: TaskSpec) -> set[int]:
    """The proposals' tasks whose annotation is the rejected label made by Label Studio's bulk action
    from a prediction that is not the proposal's (its dialog lists the project's own version first).
    The action records no time spent on the page (``lead_time``), the labeling page always does: a
    person's annotation, or the action's once a person saves the task again, is never held back."""
    proposal_of = {int(t): p for p in proposals for t in p["task_ids"]}
    out: set[int] = set()
    for task in tasks:
        proposal = proposal_of.get(int(task.get("id") or 0))
        latest = latest_annotation(task) if proposal is not None else None
        if proposal is None or latest is None or latest.get("parent_prediction") is None:
            continue
        versions = {p.get("id"): p.get("model_version") for p in task.get("predictions") or []}
        from_proposal = versions.get(latest["parent_prediction"]) == proposal_version(
            int(proposal["proposal_id"]), proposal["label"]
        )
        bulk = not latest.get("lead_time")
        rejected = (labels_from_result(spec, latest.get("result") or []) or [""])[0] == proposal["wrong_label"]
        if bulk and rejected and not from_proposal:
            out.add(int(task["id"]))
    return out


def _close(summary: dict[str, Any], threshold: Threshold, project_id: ProjectId) -> None:
    """The run's summary: the similarity threshold it used, and one log line when it proposed."""
    summary["threshold"] = {
        "similarity": round(threshold.similarity, 4),
        "source": threshold.source,
        "pairs": threshold.pairs,
        "same_label": threshold.same_label,
    }
    if summary["proposed"]:
        corrections = sum(1 for p in summary["proposals"] if p["tasks"])
        log.info("project %s: proposed %d tasks for %d corrections", project_id, summary["proposed"], corrections)


def _fresh(
    spec: TaskSpec, data: Dataset, done: set[int], model_said: Callable[[Correction], list[str]]
) -> list[Correction]:
    """The newest corrections not proposed for yet: the annotation that counts for its task, where
    the person chose another label than the model's answer (and not one made from a proposal)."""
    winning = {ex.annotation_id for ex in data.examples}
    fresh = [
        c
        for c in data.corrections
        if c.annotation_id in winning
        and c.annotation_id not in done
        and not versions.is_proposal(c.prediction_model_version)
        and model_said(c)
        and model_said(c)[:1] != labels_from_result(spec, c.final_result)[:1]
    ]
    return sorted(fresh, key=lambda c: c.annotated_at, reverse=True)[:NEW_PER_RUN]


def _pool(
    ctx: WorkerContext,
    ls: LabelStudioClient,
    project_id: ProjectId,
    spec: TaskSpec,
    cache: EmbeddingCache,
    model: TextClassifier,
    busy: set[int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unlabeled tasks not in an open proposal (``busy``): ids, embeddings, the serving version's probabilities."""
    ids, texts = [], []
    for task in ls.unlabeled_tasks(project_id):
        if int(task["id"]) in busy:
            continue
        try:
            texts.append(task_text(task, spec, ctx.settings.max_text_chars))
        except TaskError:
            continue
        ids.append(int(task["id"]))
    if not ids:
        empty = np.zeros((0, cache.encoder.dim), dtype=np.float32)
        return np.zeros(0, dtype=np.int64), empty, np.zeros((0, model.head.num_labels))
    x = cache.embed(texts)
    return np.array(ids), x, class_probabilities(model, texts, cache, x)


def _write(
    ls: LabelStudioClient, project_id: ProjectId, spec: TaskSpec, proposal_id: int, label: str, task_ids: list[int]
) -> None:
    version = proposal_version(proposal_id, label)
    ls.import_predictions(
        project_id,
        [
            {"task": t, "model_version": version, "score": 1.0, "result": choices_result(spec, [label])}
            for t in task_ids
        ],
    )
    ls.ensure_view(
        project_id,
        tab_title(proposal_id, len(task_ids), label),
        "tasks:id",
        first=False,
        filters=[
            {
                "filter": "filter:tasks:predictions_model_versions",
                "operator": "contains",
                "type": "List",
                "value": [version],
            },
            annotations_filter("equal"),
        ],
    )


def settle(
    ctx: WorkerContext,
    ls: LabelStudioClient,
    project_id: ProjectId,
    spec: TaskSpec,
    tasks: list[dict[str, Any]],
    family: str,
) -> int:
    """Record the outcome of every proposed task a human answered, expire open proposals made under
    another family, and remove the predictions and tabs of proposals that are done. Returns the
    number of outcomes recorded."""
    by_id = {int(t["id"]): t for t in tasks}
    recorded = 0
    for proposal in ctx.audit.proposals(project_id):
        open_ids = [int(t) for t in proposal["task_ids"] if int(t) not in proposal["outcomes"]]
        if not open_ids:
            continue
        outcomes = []
        for task_id in open_ids:
            latest = latest_annotation(by_id[task_id]) if task_id in by_id else None
            if latest is None:
                continue
            labels = labels_from_result(spec, latest.get("result") or []) or [""]
            outcome = "accepted" if labels[0] == proposal["label"] else "rejected"
            if labels[0] == proposal["wrong_label"] and latest.get("parent_prediction") is not None:
                # made by the bulk action from the model's own prediction: the action's dialog lists the
                # project's version first, and the reviewer kept it instead of the proposal's
                outcome = "model label taken"
                log.warning(
                    "project %s: task %s of proposal %s was annotated from the model's prediction (%s), "
                    "the label its correction replaced; choose the proposal's version (%s) in the action",
                    project_id,
                    task_id,
                    proposal["proposal_id"],
                    labels[0],
                    proposal_version(int(proposal["proposal_id"]), proposal["label"]),
                )
            outcomes.append(
                {
                    "task_id": task_id,
                    "outcome": outcome,
                    "reviewer": str(latest.get("completed_by")),
                    "decided_at": latest.get("created_at"),
                }
            )
        left = len(open_ids) - len(outcomes)
        expired = left and proposal["model_version"] != family
        if expired:
            answered = {o["task_id"] for o in outcomes}
            outcomes += [{"task_id": t, "outcome": "expired"} for t in open_ids if t not in answered]
        ctx.audit.record_proposal_outcomes(project_id, int(proposal["proposal_id"]), outcomes)
        recorded += len(outcomes)
        if expired or not left:
            _remove(ls, project_id, int(proposal["proposal_id"]), proposal["label"])
    return recorded


def _remove(ls: LabelStudioClient, project_id: ProjectId, proposal_id: int, label: str) -> None:
    """A settled proposal's tab and its predictions on the tasks nobody annotated from it."""
    prefix = f"Proposal {proposal_id}:"
    for view in ls.views(project_id):
        if str((view.get("data") or {}).get("title") or "").startswith(prefix):
            ls.delete_view(int(view["id"]))
    if proposal_version(proposal_id, label) in ls.model_versions(project_id):
        ls.delete_model_version(project_id, proposal_version(proposal_id, label))
