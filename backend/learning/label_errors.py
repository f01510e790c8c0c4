"""Probable label errors among a project's annotations (confident learning, via cleanlab).

Every annotated task is scored out of sample: the tasks are split into folds and each fold's
class probabilities come from a head fitted on the other folds, so no task is judged by a model
that learned its own label. cleanlab's ``find_label_issues`` flags the tasks whose given label
the model confidently contradicts and ``get_label_quality_scores`` ranks them (lower = more
suspicious). What cleanlab does not give a reviewer, added here: the suggested label and, as
evidence, the nearest annotated tasks that carry it; tasks a reviewer already confirmed with the
same label are not flagged again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from backend.labeling import TaskSpec
from backend.labeling.examples import Example, targets
from backend.models.head import LinearHead

FOLDS = 5


class LabelErrorsUnsupported(ValueError):
    """The project cannot be checked (yet); the message says why and what would make it possible."""


@dataclass(frozen=True)
class Suspect:
    task_id: int
    given: str
    suggested: str
    quality: float  # cleanlab's label quality of the given label, in [0, 1]; lower = more suspicious
    neighbours: tuple[int, ...]  # nearest annotated tasks labeled ``suggested`` (evidence for a reviewer)


def out_of_sample_probs(x: np.ndarray, y: np.ndarray, num_labels: int, folds: int = FOLDS, seed: int = 0) -> np.ndarray:
    """Class probabilities of every row from a head that never saw it (stratified folds)."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):  # stratified: each class spread over the folds
        rows = rng.permutation(np.flatnonzero(y == label))
        fold_of[rows] = np.arange(len(rows)) % folds
    probs = np.zeros((len(y), num_labels), dtype=np.float64)
    for fold in range(folds):
        test, train = fold_of == fold, fold_of != fold
        if test.any():
            probs[test] = LinearHead.fit(x[train], y[train], num_labels, multi_label=False).proba(x[test])
    return probs


def check(spec: TaskSpec, examples: Sequence[Example]) -> None:
    """Raise LabelErrorsUnsupported for what this detector cannot judge."""
    if spec.is_ner:
        raise LabelErrorsUnsupported("label errors are checked for classification projects; NER is not supported yet")
    if spec.multi_label:
        raise LabelErrorsUnsupported("label errors are checked for single-choice projects; multi-label is not yet")
    counts = np.bincount(targets(examples, spec), minlength=len(spec.labels)) if examples else np.zeros(0)
    if (counts >= FOLDS).sum() < 2:
        raise LabelErrorsUnsupported(f"need at least {FOLDS} annotations of each of two labels to cross-validate "
                                     f"(have {dict(zip(spec.labels, counts.tolist(), strict=False))})")  # fmt: skip


def find_suspects(
    spec: TaskSpec,
    examples: Sequence[Example],
    x: np.ndarray,
    confirmed: Mapping[int, str] | None = None,
    neighbours: int = 3,
) -> list[Suspect]:
    """The probable label errors, most suspicious first. ``x``: the examples' embeddings;
    ``confirmed``: task id → the label a reviewer kept (not flagged again while it is unchanged)."""
    check(spec, examples)
    y = targets(examples, spec)
    present = np.unique(y)
    index = {label: i for i, label in enumerate(present)}  # cleanlab wants labels 0..k-1, every one present
    y_local = np.array([index[v] for v in y])
    probs = out_of_sample_probs(x, y_local, len(present))
    # n_jobs=1: cleanlab's default forks a process pool, which can hang in a worker that has run torch
    flagged = find_label_issues(labels=y_local, pred_probs=probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    quality = get_label_quality_scores(y_local, probs)
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    out = []
    for i in flagged:
        ex, suggested = examples[i], spec.labels[int(present[int(probs[i].argmax())])]
        if ex.task_id is not None and (confirmed or {}).get(ex.task_id) == ex.labels[0]:
            continue
        same = np.flatnonzero(y == spec.labels.index(suggested))
        same = same[same != i]
        nearest = same[np.argsort(-(unit[same] @ unit[i]))][:neighbours]
        out.append(Suspect(int(ex.task_id or i), ex.labels[0], suggested, round(float(quality[i]), 4),
                           tuple(int(examples[j].task_id or j) for j in nearest)))  # fmt: skip
    return out


def ranking(spec: TaskSpec, examples: Sequence[Example], x: np.ndarray) -> np.ndarray:
    """Every example's label quality (lower = more suspicious), for measuring the detector."""
    check(spec, examples)
    y = targets(examples, spec)
    present = np.unique(y)
    y_local = np.searchsorted(present, y)
    return get_label_quality_scores(y_local, out_of_sample_probs(x, y_local, len(present)))
