"""The queue plan: from the scored pool, the routing policy and the monitors' findings, what the
sync writes to Label Studio. A pure function (no Label Studio, no files), so every decision about
the queue can be tested, and printed by ``hitl sync --dry-run``, without writing anything.

What it decides, per task of the pool:

- its place: the strategy's score, the head spread over diversity clusters, held-out tasks
  interleaved at random (the gate's unbiased sample), audit samples and drift probes mixed in;
  ranks for the queue's head only, moved as few as possible (``writeback.plan_ranks``);
- its prediction: one a person may have seen is never changed (a task holding one of this
  version keeps it); a new one is shown as ``serving/presentation.py`` says: pre-selected,
  leaning only, or blind (held-out checks and audit samples);
- the review tab: pre-filled answers not auto-accepted, least confident first;
- the header over it: what is pre-selected and why the task is there, in words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.labeling import TaskSpec, labels_from_result
from backend.models.embedding_cache import text_key
from backend.query.pool import Pool
from backend.query.strategies import diversify_top, interleave_audit, interleave_heldout
from backend.query.writeback import RANK_FIELD, REASON_FIELD, REVIEW_FIELD, held_ranks, plan_ranks
from backend.serving.items import leaning
from backend.serving.presentation import Presentation, header, present, shown_score
from backend.serving.reasons import Why, reason
from backend.serving.routing import RoutingPolicy, review_masks
from backend.settings import Settings

Shown = tuple[Presentation, str | None, float]  # how a task's prediction shows: presentation, leaning, score


@dataclass
class Scored:
    """The serving version's view of the pool, aligned with it. ``has_model`` False: a cold start
    (no answers, the strategy orders for coverage)."""

    label: str  # the version as Label Studio knows it
    has_model: bool
    answers: Sequence[list[dict[str, Any]]]  # each task's pre-annotation result (read by index)
    confidence: np.ndarray  # calibrated: the score annotators see
    strategy_scores: np.ndarray  # lower = more informative
    diverse: bool  # the strategy spreads its own batch (BADGE-like): no cluster round-robin on top
    clusters: np.ndarray
    disagree: np.ndarray  # the fine-tuned model and the base encoder's head answer differently
    second: list[tuple[str, str] | None] = field(default_factory=list)  # per disagreement: (model's, base head's)


@dataclass
class Findings:
    """What the monitors and the history say about the pool."""

    probes: np.ndarray  # tasks of a drifted window, mixed into the queue
    explored: set[int]  # clusters annotations already came from
    annotated: int = 0  # tasks the serving version trained and was gated on
    annotated_heldout: int = 0
    previous: dict[int, tuple[Any, ...]] = field(default_factory=dict)  # the last sync's record per task


@dataclass
class QueuePlan:
    """What to write, and the figures a summary needs."""

    order: np.ndarray  # pool positions, most informative first
    scores: np.ndarray
    predictions: list[dict[str, Any]]  # new predictions, most informative first
    records: list[tuple[int, str, str, list[str], float]]  # their audit rows, aligned: what each shows
    task_writes: list[tuple[int, dict[str, Any]]]  # task data with its rank, review rank and header
    state_rows: list[tuple[Any, ...]]  # the sync state's record of every task
    heldout: np.ndarray
    audit: np.ndarray
    probes: np.ndarray
    review: np.ndarray  # review ranks (NaN: not in the review tab)
    headers: list[str | None]
    up_to_date: int = 0

    def summary(self, ids: list[int], spec: TaskSpec) -> dict[str, Any]:
        """The plan in figures (``hitl sync --dry-run``)."""
        shown = [r[2] for r in self.records]
        return {
            "predictions_to_write": len(self.predictions),
            "kept": self.up_to_date,
            "presentations": {p.value: shown.count(p.value) for p in Presentation if p.value in shown},
            "task_data_writes": len(self.task_writes),
            "held_out": int(self.heldout.sum()),
            "audit_samples": int(self.audit.sum()),
            "drift_probes": int(self.probes.sum()),
            "review_tab": int(np.isfinite(self.review).sum()),
            "head": [
                {"task": ids[i], "header": self.headers[i]} for i in self.order[:10] if self.headers[i] is not None
            ],
        }


def plan_queue(
    project_id: int,
    pool: Pool,
    spec: TaskSpec,
    scored: Scored,
    policy: RoutingPolicy | None,
    findings: Findings,
    settings: Settings,
) -> QueuePlan:
    """The queue plan for ``pool``; ``policy`` None in a cold start (nothing is routed). The random
    interleaving is seeded by the project: the same inputs give the same plan."""
    ids = pool.ids
    scores, heldout, audit, probes, carried = _place(project_id, pool, spec, scored, policy, findings, settings)
    order = np.lexsort((pool.task_ids, scores))
    shown, predictions = _show(pool, spec, scored, carried, heldout | audit, policy)
    ranks, rank_now = plan_ranks(scores, held_ranks(pool.data), settings.sync_exact_top)
    threshold = policy.threshold if policy is not None else None
    shown_scores = np.array([s for *_, s in shown], dtype=float)
    reviewable = np.array([p is Presentation.PRESELECT for p, _, _ in shown], dtype=bool) & scored.has_model
    if threshold is not None:
        reviewable &= shown_scores < threshold
    review, review_now = _review_ranks(
        reviewable, shown_scores, held_ranks(pool.data, REVIEW_FIELD), settings.sync_exact_top
    )
    records = []
    if predictions:  # after a head refresh of the family there are none: no per-task maps to build
        position = {task_id: k for k, task_id in enumerate(pool.task_ids[order])}
        predictions.sort(key=lambda p: position[p["task"]])  # written most informative first
        index = {task_id: i for i, task_id in enumerate(ids)}
        records = [_record(spec, scored, shown, index[p["task"]], p) for p in predictions]
    heads = _headers(
        scored, policy, shown, ranks, review, reviewable, order, heldout, audit, probes, findings, settings
    )
    # a task that left the head loses its sentence: a header only ever speaks of where the task stands now
    said = [data.get(REASON_FIELD) for data in pool.data]
    reworded = np.array([bool(s) if h is None else s != h for s, h in zip(said, heads, strict=True)], dtype=bool)
    rewrite = rank_now | review_now | reworded
    return QueuePlan(
        order=order,
        scores=scores,
        predictions=predictions,
        records=records,
        task_writes=[(ids[i], task_data(pool.data[i], ranks[i], review[i], heads[i])) for i in np.flatnonzero(rewrite)],
        state_rows=_state_rows(pool, scored, shown, ranks),
        heldout=heldout,
        audit=audit,
        probes=probes,
        review=review,
        headers=heads,
        up_to_date=sum(c is not None for c in carried),
    )


Carried = tuple[float, Presentation, str | None] | None  # what a task's prediction of this version shows


def _place(
    seed: int,
    pool: Pool,
    spec: TaskSpec,
    scored: Scored,
    policy: RoutingPolicy | None,
    findings: Findings,
    settings: Settings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Carried]]:
    """Each task's place (lower first) and which tasks are held out, audit samples and drift probes;
    and what each task's prediction of this version already shows (``carried``)."""
    n = len(pool)
    scores = np.asarray(scored.strategy_scores, dtype=float)
    heldout = audit = probes = np.zeros(n, dtype=bool)
    if not scored.has_model or policy is None:
        return scores, heldout, audit, probes, _all_carried(spec, pool, findings.previous, scored.label, heldout)
    if not scored.diverse:
        scores = diversify_top(scores, scored.clusters, settings.sync_diverse_top)
    heldout, audit = review_masks(pool.ids, scored.confidence, policy)
    # a prediction a person may have seen is never changed: a task that holds one of this version keeps
    # it; an audit sample already shown with its answer cannot measure the model blind, so it is none
    carried = _all_carried(spec, pool, findings.previous, scored.label, heldout | audit)
    audit &= np.array([c is None or c[1] == Presentation.BLIND for c in carried], dtype=bool)
    scores = interleave_heldout(
        scores,
        heldout,
        policy.holdout_fraction,
        seed=seed,
        annotated=findings.annotated,
        annotated_heldout=findings.annotated_heldout,
    )
    if audit.any():
        scores = interleave_audit(scores, audit, policy.audit_share, seed=seed)
    probes = np.asarray(findings.probes, dtype=bool) & ~heldout & ~audit  # drifted new data: humans label some first
    if probes.any():
        scores = interleave_audit(scores, probes, settings.drift_probe_share, seed=seed + 1)
    return np.asarray(scores, dtype=float), heldout, audit, probes, carried


def _show(
    pool: Pool,
    spec: TaskSpec,
    scored: Scored,
    carried: list[Carried],
    blind: np.ndarray,
    policy: RoutingPolicy | None,
) -> tuple[list[Shown], list[dict[str, Any]]]:
    """How each task's prediction shows, and the new predictions to write. A task that holds this
    version's prediction keeps what it shows."""
    preselect = policy.preselect_level if policy is not None else None
    shown: list[Shown] = []
    predictions = []
    for i, kept in enumerate(carried):
        if kept is not None:
            score, presentation, lean = kept  # the leaning it shows, read from the result only if unknown
            if not lean and scored.has_model:
                lean = leaning(spec, scored.answers[i])
        else:
            lean = leaning(spec, scored.answers[i]) if scored.has_model else None
            score = shown_score(scored.confidence[i])
            presentation = present(scored.confidence[i], bool(blind[i]), preselect)
            result = scored.answers[i] if presentation == Presentation.PRESELECT else []
            predictions.append({"task": pool.ids[i], "score": score, "model_version": scored.label, "result": result})
        shown.append((presentation, lean, score))
    return shown, predictions


def _state_rows(pool: Pool, scored: Scored, shown: list[Shown], ranks: np.ndarray) -> list[tuple[Any, ...]]:
    """The sync state's record of every task, built a column at a time (a pool may hold 1M tasks)."""
    n = len(pool)
    strategy = np.round(np.asarray(scored.strategy_scores, dtype=float), 6).tolist()
    rank = [None if r != r else int(r) for r in ranks.tolist()]  # NaN: none
    return list(
        zip(
            pool.ids,
            [scored.label] * n,
            [content_hash(text) for text in pool.texts],
            np.asarray(scored.clusters).astype(int).tolist(),
            rank,
            strategy,
            [score for *_, score in shown],
            [_VALUES[presentation] for presentation, _, _ in shown],
            [lean for _, lean, _ in shown],
            strict=True,
        )
    )


def _record(
    spec: TaskSpec, scored: Scored, shown: list[Shown], i: int, prediction: dict[str, Any]
) -> tuple[int, str, str, list[str], float]:
    """The audit's row for a new prediction: what it shows, and the model's answer even where hidden."""
    presentation = shown[i][0].value
    return prediction["task"], scored.label, presentation, _answer(spec, scored.answers[i]), prediction["score"]


def _headers(
    scored: Scored,
    policy: RoutingPolicy | None,
    shown: list[Shown],
    ranks: np.ndarray,
    review: np.ndarray,
    reviewable: np.ndarray,
    order: np.ndarray,
    heldout: np.ndarray,
    audit: np.ndarray,
    probes: np.ndarray,
    findings: Findings,
    settings: Settings,
) -> list[str | None]:
    """The sentence on top of each task of the queue's head and of the review tab (None elsewhere):
    one number on the page, the confidence the task's prediction carries (its stored score)."""
    threshold = policy.threshold if policy is not None else None
    share = policy.audit_share if policy is not None else settings.audit_share
    n = len(shown)
    clusters = scored.clusters
    unexplored = (
        ~np.isin(clusters, sorted(findings.explored))
        if findings.explored or not scored.has_model
        else np.zeros(n, dtype=bool)  # no record of where annotations came from: claim no region unexplored
    )
    kinds = (
        np.select(
            [audit, probes, heldout, scored.disagree, unexplored],
            [Why.AUDIT, Why.DRIFT, Why.HELDOUT, Why.DISAGREE, Why.UNEXPLORED],
            Why.UNSURE,
        )
        if scored.has_model
        else np.full(n, Why.COLD_START)
    )
    head = set(order[: settings.sync_exact_top].tolist())
    review_head = set(np.flatnonzero(np.isfinite(review) & reviewable).tolist())
    out: list[str | None] = [None] * n  # only the queue's head and the review tab carry a header
    for i in sorted(head | review_head):
        presentation, lean, score = shown[i]
        if i in head and np.isfinite(ranks[i]):
            if presentation == Presentation.BLIND:  # written blind, it stays blind: nothing of the model's answer
                why = reason(Why.HELDOUT if heldout[i] else Why.AUDIT, score, threshold, share)
                out[i] = header(presentation, None, score, why)
                continue
            second = scored.second[i] if scored.second else None
            why = reason(Why(kinds[i]), score if scored.has_model else None, threshold, share, second)
            out[i] = header(presentation, lean if scored.has_model else None, score, why)
        elif i in review_head:
            out[i] = header(presentation, lean, score, reason(Why.REVIEW, score, threshold, share))
    return out


def task_data(data: dict[str, Any], rank: float, review: float, said: str | None) -> dict[str, Any]:
    """A task's data with its queue rank (kept as it is where there is none to write), its review
    rank (removed where it has none: the review tab lists only tasks that hold one) and its header
    (removed where there is none: the labeling page then shows nothing)."""
    out = {key: value for key, value in data.items() if key not in (REASON_FIELD, REVIEW_FIELD)}
    if np.isfinite(rank):  # whole numbers as written; a rank kept from an older release as it was
        out[RANK_FIELD] = int(rank) if float(rank).is_integer() else float(rank)
    if np.isfinite(review):
        out[REVIEW_FIELD] = int(review)
    if said is not None:
        out[REASON_FIELD] = said
    return out


def content_hash(text: str) -> str:
    """What the sync state keeps of a task's text: enough to see it changed (the embedding cache's
    key, cut: its SHA-256 is computed once per text)."""
    return text_key(text)[:16]


def _review_ranks(
    eligible: np.ndarray, score: np.ndarray, held: np.ndarray, head: int
) -> tuple[np.ndarray, np.ndarray]:
    """Review-queue ranks (NaN: not in it) and which tasks to write: the eligible tasks, least
    confident first, ranked as few writes as the queue tab takes (``writeback.plan_ranks``); a task
    no longer eligible loses its rank."""
    final, write = np.full(len(score), np.nan), np.zeros(len(score), dtype=bool)
    rows = np.flatnonzero(eligible)
    if len(rows):
        final[rows], write[rows] = plan_ranks(score[rows], held[rows], head)
    gone = ~eligible & ~np.isnan(held)
    write |= gone
    return final, write


def _answer(spec: TaskSpec, result: list[dict[str, Any]]) -> list[str]:
    """The model's answer in a result, as the audit keeps it: its choices, or its spans' keys (NER)."""
    if spec.is_ner:
        return sorted(
            f"{r['value']['start']}:{r['value']['end']}:{r['value']['labels'][0]}"
            for r in result
            if (r.get("value") or {}).get("labels")
        )
    return sorted(labels_from_result(spec, result) or [])


def _all_carried(
    spec: TaskSpec, pool: Pool, previous: dict[int, tuple[Any, ...]], label: str, blind: np.ndarray
) -> list[Carried]:
    """``carried`` for each task of the pool; the common case of a large pool (our record of this
    version's prediction) inline."""
    out: list[Carried] = []
    for task, is_blind in zip(pool.ids, blind.tolist(), strict=True):
        prediction = pool.predictions[task].get(label)
        written = previous.get(task)
        if prediction is not None and written is not None and written[0] == label and written[5]:
            out.append((float(prediction.get("score") or 0.0), _PRESENTATIONS[written[5]], written[6]))
        else:
            out.append(carried(spec, prediction, written, label, is_blind))
    return out


_PRESENTATIONS = {p.value: p for p in Presentation}
_VALUES = {p: p.value for p in Presentation}


def carried(
    spec: TaskSpec, prediction: dict[str, Any] | None, written: tuple[Any, ...] | None, label: str, blind: bool
) -> Carried:
    """What a task's prediction of ``label`` shows (score, presentation, leaning), None where it has
    none. Our record says how it was written; without one (``/predict`` wrote it, or it predates the
    record) its result says whether the answer is pre-selected, and an empty one on a task that is
    ``blind`` now (held out, audit sample) says nothing of the model either."""
    if prediction is None:
        return None
    score = float(prediction.get("score") or 0.0)
    if written is not None and written[0] == label and written[5]:
        return score, Presentation(written[5]), written[6]
    if prediction.get("result"):
        return score, Presentation.PRESELECT, leaning(spec, prediction["result"])
    return score, Presentation.BLIND if blind else Presentation.LEAN, None
