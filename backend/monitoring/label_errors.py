"""Probable label errors among a project's annotations (confident learning, via cleanlab).

Every annotated task is scored out of sample: the tasks are split into folds and each fold's
class probabilities come from a head fitted on the other folds, so no task is judged by a model
that learned its own label. cleanlab's ``find_label_issues`` flags the tasks whose given label
the model confidently contradicts and ``get_label_quality_scores`` ranks them (lower = more
suspicious). A flag is kept only where the given label's probability is below ``MAX_GIVEN_PROB``
once the out-of-sample logits are calibrated (one temperature fitted on all of them): active
learning sends people the hardest tasks, on which cross-validated heads are weak, and cleanlab's
per-class thresholds (relative to the model's own confidence) then flag about a third of right
labels; the absolute bound keeps a reviewer's list short and mostly wrong labels (README,
"Probable label errors", has the measurement). What cleanlab does not give a reviewer, added
here: the suggested label and, as
evidence, the nearest annotated tasks that carry it; tasks a reviewer already confirmed with the
same label are not flagged again. Where tasks carry several annotators' answers, cleanlab's
multi-annotator module (CROWDLAB) gives each task's agreement and each annotator's quality; tasks
whose annotators disagree are flagged too. ``verdict`` reads what a reviewer did with a flag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.multiannotator import get_label_quality_multiannotator
from cleanlab.rank import get_label_quality_scores

from backend.labeling import TaskSpec
from backend.labeling.examples import Example, targets
from backend.learning.calibration import fit_temperature, softmax
from backend.models.head import LinearHead
from backend.monitoring import LABEL_ERRORS, Finding

FOLDS = 5
MAX_GIVEN_PROB = 0.1  # flag only labels the calibrated out-of-sample model gives less than this chance (a setting)


class LabelErrorsUnsupported(ValueError):
    """The project cannot be checked (yet); the message says why and what would make it possible."""


@dataclass(frozen=True)
class Suspect:
    task_id: int
    given: str
    suggested: str
    quality: float  # cleanlab's label quality of the given label, in [0, 1]; lower = more suspicious
    neighbours: tuple[int, ...]  # nearest annotated tasks labeled ``suggested`` (evidence for a reviewer)
    reason: str = "model disagrees"  # or "annotators disagree"


@dataclass(frozen=True)
class Annotator:
    annotator: str
    quality: float  # CROWDLAB's annotator quality, in [0, 1]
    agreement: float  # share of this annotator's labels equal to the consensus
    labeled: int


@dataclass(frozen=True)
class LabelCheck:
    suspects: list[Suspect]
    annotators: list[Annotator]  # empty unless some task has answers from two annotators
    multi_annotated: int = 0  # tasks with two or more annotators' answers
    mean_agreement: float | None = None  # mean over those tasks of the share agreeing with the consensus

    def finding(self) -> Finding:
        """Alarm while there are suspects for reviewers to look at."""
        line = f"{len(self.suspects)} annotations the model confidently contradicts"
        if self.mean_agreement is not None:
            line += (
                f"; annotators agree with the consensus on {self.mean_agreement:.0%} of {self.multi_annotated} tasks"
            )
        figures = {"suspects": len(self.suspects), "multi_annotated": self.multi_annotated}
        return Finding(LABEL_ERRORS, bool(self.suspects), line, figures)


def out_of_sample_probs(x: np.ndarray, y: np.ndarray, num_labels: int, folds: int = FOLDS, seed: int = 0) -> np.ndarray:
    """Class probabilities of every row from a head that never saw it (stratified folds)."""
    return softmax(out_of_sample_logits(x, y, num_labels, folds, seed))


def out_of_sample_logits(
    x: np.ndarray, y: np.ndarray, num_labels: int, folds: int = FOLDS, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):  # stratified: each class spread over the folds
        rows = rng.permutation(np.flatnonzero(y == label))
        fold_of[rows] = np.arange(len(rows)) % folds
    logits = np.zeros((len(y), num_labels), dtype=np.float64)
    for fold in range(folds):
        test, train = fold_of == fold, fold_of != fold
        if test.any():
            logits[test] = LinearHead.fit(x[train], y[train], num_labels, multi_label=False).logits(x[test])
    return logits


def check(spec: TaskSpec, examples: Sequence[Example]) -> None:
    """Raise LabelErrorsUnsupported for what this detector cannot judge."""
    if spec.is_ner:
        raise LabelErrorsUnsupported("label errors are checked for classification projects; NER is not supported yet")
    if spec.multi_label:
        raise LabelErrorsUnsupported("label errors are checked for single-choice projects; multi-label is not yet")
    counts = np.bincount(targets(examples, spec), minlength=len(spec.labels)) if examples else np.zeros(0)
    if (counts >= FOLDS).sum() < 2:
        raise LabelErrorsUnsupported(
            f"need at least {FOLDS} annotations of each of two labels to cross-validate "
            f"(have {dict(zip(spec.labels, counts.tolist(), strict=False))})"
        )


def find_suspects(
    spec: TaskSpec,
    examples: Sequence[Example],
    x: np.ndarray,
    confirmed: Mapping[int, str] | None = None,
    neighbours: int = 3,
    max_given_prob: float = MAX_GIVEN_PROB,
) -> list[Suspect]:
    """The probable label errors, most suspicious first. ``x``: the examples' embeddings;
    ``confirmed``: task id → the label a reviewer kept (not flagged again while it is unchanged)."""
    return check_labels(
        spec, examples, x, confirmed=confirmed, neighbours=neighbours, max_given_prob=max_given_prob
    ).suspects


def check_labels(
    spec: TaskSpec,
    examples: Sequence[Example],
    x: np.ndarray,
    answers: Mapping[int, Mapping[str, str]] | None = None,
    confirmed: Mapping[int, str] | None = None,
    neighbours: int = 3,
    min_agreement: float = 0.5,
    max_given_prob: float = MAX_GIVEN_PROB,
) -> LabelCheck:
    """Confident learning over the examples' (winning) labels, kept where the calibrated probability
    of the given label is below ``max_given_prob``, plus, where ``answers`` (task id → annotator →
    label) holds several annotators for a task, their agreement: tasks where at most
    ``min_agreement`` of the annotators agree with the consensus are flagged as well."""
    check(spec, examples)
    y = targets(examples, spec)
    present = np.unique(y)
    index = {label: i for i, label in enumerate(present)}  # cleanlab wants labels 0..k-1, every one present
    y_local = np.array([index[v] for v in y])
    logits = out_of_sample_logits(x, y_local, len(present))
    probs = softmax(logits)
    calibrated = softmax(logits, fit_temperature(logits, y_local))
    # n_jobs=1: cleanlab's default forks a process pool, which can hang in a worker that has run torch
    flagged = find_label_issues(labels=y_local, pred_probs=probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    quality = get_label_quality_scores(y_local, probs)
    flagged = flagged[calibrated[flagged, y_local[flagged]] < max_given_prob]
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    confirmed = confirmed or {}

    def suspect(i: int, suggested: str, score: float, reason: str) -> Suspect | None:
        ex = examples[i]
        if ex.task_id is not None and confirmed.get(ex.task_id) == ex.labels[0]:
            return None
        same = np.flatnonzero(y == spec.labels.index(suggested))
        same = same[same != i]
        nearest = same[np.argsort(-(unit[same] @ unit[i]))][:neighbours]
        return Suspect(
            int(ex.task_id or i),
            ex.labels[0],
            suggested,
            round(float(score), 4),
            tuple(int(examples[j].task_id or j) for j in nearest),
            reason,
        )

    found = [
        suspect(int(i), spec.labels[int(present[int(probs[i].argmax())])], quality[i], "model disagrees")
        for i in flagged
    ]
    suspects = [s for s in found if s is not None]
    crowd = _crowd(spec, examples, answers or {}, present, probs, min_agreement)
    if crowd is not None:
        seen = {s.task_id for s in suspects}
        for i, consensus, score in crowd[0]:
            extra = suspect(i, consensus, score, "annotators disagree")
            if extra is not None and extra.task_id not in seen:
                suspects.append(extra)
        suspects.sort(key=lambda s: s.quality)
        return LabelCheck(suspects, crowd[1], crowd[2], crowd[3])
    return LabelCheck(suspects, [])


def _crowd(
    spec: TaskSpec,
    examples: Sequence[Example],
    answers: Mapping[int, Mapping[str, str]],
    present: np.ndarray,
    probs: np.ndarray,
    min_agreement: float,
) -> tuple[list[tuple[int, str, float]], list[Annotator], int, float] | None:
    """CROWDLAB over the tasks' answers: (low-agreement rows, annotators, tasks with several answers,
    mean agreement), or None when no task has two annotators' answers."""
    local = {int(c): j for j, c in enumerate(present)}  # spec index → cleanlab's 0..k-1
    people = sorted({a for ex in examples for a in answers.get(ex.task_id or -1, {})})
    matrix = np.full((len(examples), len(people)), np.nan)
    column = {a: j for j, a in enumerate(people)}
    for row, ex in enumerate(examples):
        for person, label in answers.get(ex.task_id or -1, {}).items():
            if label in spec.labels and spec.labels.index(label) in local:
                matrix[row, column[person]] = local[spec.labels.index(label)]
    counts = (~np.isnan(matrix)).sum(axis=1)
    if not people or (counts >= 2).sum() == 0:
        return None
    import pandas as pd  # cleanlab's own dependency; only this path needs it

    answered = np.flatnonzero(counts > 0)  # CROWDLAB needs an answer on every row
    result = get_label_quality_multiannotator(
        pd.DataFrame(matrix[answered], columns=people), probs[answered], verbose=False
    )
    quality, stats = result["label_quality"], result["annotator_stats"]
    multi = counts[answered] >= 2
    agreement = quality["annotator_agreement"].to_numpy(dtype=float)
    low = [
        (
            int(answered[j]),
            spec.labels[int(present[int(quality["consensus_label"].iloc[j])])],
            float(quality["consensus_quality_score"].iloc[j]),
        )
        for j in np.flatnonzero(multi & (agreement <= min_agreement))
    ]
    annotators = [
        Annotator(
            str(name),
            round(float(r["annotator_quality"]), 4),
            round(float(r["agreement_with_consensus"]), 4),
            int(r["num_examples_labeled"]),
        )
        for name, r in stats.iterrows()
    ]
    return low, annotators, int(multi.sum()), round(float(agreement[multi].mean()), 4)


def verdict(given: str, flagged_stamp: str, current: tuple[str, str] | None) -> str | None:
    """What a reviewer did with a flag on a task labeled ``given`` at annotation time
    ``flagged_stamp``, from the task's winning annotation now (``(label, stamp)``; None: the task
    has no annotation any more): ``changed``, ``kept``, ``removed``, or None while untouched."""
    if current is None:
        return "removed"
    label, stamp = current
    if label != given:
        return "changed"
    return "kept" if stamp != flagged_stamp else None


def ranking(spec: TaskSpec, examples: Sequence[Example], x: np.ndarray) -> np.ndarray:
    """Every example's label quality (lower = more suspicious), for measuring the detector."""
    check(spec, examples)
    y = targets(examples, spec)
    present = np.unique(y)
    y_local = np.searchsorted(present, y)
    return get_label_quality_scores(y_local, out_of_sample_probs(x, y_local, len(present)))
