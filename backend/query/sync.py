"""Keep Label Studio's queue ordered by informativeness: score the unlabeled pool, write back in bulk.

``hitl sync --project ID`` (and the RQ job of the same name, run after every publish):

1. stream the project's unlabeled tasks page by page;
2. embed them through the embedding cache (after a head-only retrain this is a lookup, and the
   rescoring a matrix product; after a fine-tune ``jobs/pool_embedding.py`` has embedded them on
   the slow worker) and score them with the serving version and the chosen strategy;
3. assign each task a stable diversity cluster (k-means centroids kept per encoder) and let the
   top of the queue alternate between clusters (``strategies.diversify_top``);
4. write each task's pre-annotation with its calibrated confidence as ``score`` (what annotators
   see next to it): within a version family (see ``registry.next_family``) only the ones that
   changed, one call each; a new family's in bulk (one HTTP call per chunk, not per task), beside
   the old version's;
5. write the queue's order as a rank in the task data field ``hitl_rank``, for the head of the
   queue only and only where it changed (``writeback.plan_ranks``);
6. switch the project to this version as soon as every task holds its prediction (before the ranks
   and reasons of step 5 are written), keep the tab "Most informative first (hitl)" sorted by that
   rank as the project's first tab, and retire older versions' predictions.

Annotators who label from that tab ("Label Tasks As Displayed") get our order: the most
informative task, not ten near-duplicates in a row, with held-out tasks interleaved. "Label All
Tasks" and the API's ``/next`` use Label Studio's uncertainty sampling: least confident first.
An interrupted sync can simply be run again: it converges to the same queue.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from backend.labeling import TaskError, TaskSpec, labels_from_result, parse_label_config, task_text
from backend.models import uncertainty
from backend.models.classifier import TextClassifier
from backend.models.embedding_cache import EmbeddingCache
from backend.models.tagger import SpanTagger, Tagged, answer_confidence, weakest_words
from backend.query.clusters import ClusterModel, assign, default_k
from backend.query.drift_monitor import DriftMonitor
from backend.query.second_opinion import base_head_opinion, disagreements
from backend.query.stopping import StoppingState, answer_key, registry_curve
from backend.query.strategies import (
    ColdStartStrategy,
    diversify_top,
    interleave_audit,
    interleave_heldout,
    make_strategy,
)
from backend.query.writeback import RANK_FIELD, REASON_FIELD, REVIEW_FIELD, held_ranks, plan_ranks
from backend.serving.items import leaning, results
from backend.serving.predictor import class_probabilities, load_serving, own_cache, use_caches
from backend.serving.presentation import Presentation, header, level_in_force, present, shown_score
from backend.serving.reasons import Why, reason
from backend.serving.routing import RoutingPolicy, is_heldout, review_masks
from backend.settings import Settings
from backend.stores.audit import AuditStore
from backend.stores.labelstudio import LabelStudioClient, annotations_filter, data_filter
from backend.stores.registry import Registry, RegistryError

log = logging.getLogger(__name__)

VIEW_TITLE = "Most informative first (hitl)"
REVIEW_TITLE = "Confident: quick review (hitl)"  # pre-filled answers, not auto-accepted, least confident first
WRITERS = 2  # per-task writes in flight: Label Studio (one process) gained little from more (README)


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
    drift: dict[str, Any] | None = None  # the check of newly arrived tasks, when one ran (query/drift_monitor.py)
    input_drift: dict[str, Any] | None = None  # the check of /predict's inputs, when one ran
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    top_task_id: int | None = None
    top: list[tuple[int, int, float]] = field(default_factory=list)  # (task, cluster, score) of the first ten
    stopping: str = ""  # the stabilising-predictions criterion, in words (query/stopping.py)
    deferred: str = ""  # why nothing was scored: the pool waits for the new encoder's embeddings (what was done)

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["skipped"] = dict(self.skipped)
        return data

    def line(self) -> str:
        if self.deferred:
            return f"project {self.project_id}: {self.pool} unlabeled tasks; {self.model_version}: {self.deferred}"
        skipped = ", ".join(f"{n} {why}" for why, n in self.skipped.items()) or "none"
        return (
            f"project {self.project_id}: {self.pool} unlabeled tasks, {self.scored} scored, {self.written} written, "
            f"{self.up_to_date} up to date, {self.ranked} ranks written, skipped: {skipped}; version "
            f"{self.model_version}, strategy {self.strategy}; {self.seconds:.1f}s; next task: {self.top_task_id}"
        ) + "".join(
            f"\n{extra}"
            for extra in (
                self.stopping,
                self.drift and f"drift: {self.drift['line']}",
                self.disagreements
                and f"{self.disagreements} tasks where the fine-tuned model and the base encoder's head disagree",
                self.input_drift and f"drift of /predict inputs: {self.input_drift['line']}",
            )
            if extra
        )


class SyncState:
    """What the last sync wrote per task: the version Label Studio sees, a hash of text and
    pre-annotation, cluster, queue rank (None past the head), the strategy's score and the
    confidence Label Studio shows (SQLite beside the data)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS written (project INTEGER, task INTEGER, version TEXT, text_hash TEXT, "
            "cluster INTEGER, score REAL, PRIMARY KEY (project, task))"
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS explored (project INTEGER, identity TEXT, cluster INTEGER, "
            "PRIMARY KEY (project, identity, cluster))"
        )
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(written)")}
        for column, kind in (
            ("strategy_score", "REAL"),
            ("confidence", "REAL"),
            ("presentation", "TEXT"),
            ("leaning", "TEXT"),
        ):  # added after the first release
            if column not in columns:
                self.db.execute(f"ALTER TABLE written ADD COLUMN {column} {kind}")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS labels (project INTEGER, label TEXT, replaced_at REAL, "
            "PRIMARY KEY (project, label))"
        )

    def get(self, project: int) -> dict[int, tuple[str, str, int, float | None, float | None, str | None, str | None]]:
        """Per task: (version, hash, cluster, rank, confidence shown, presentation, leaning)."""
        rows = self.db.execute(
            "SELECT task, version, text_hash, cluster, score, confidence, presentation, leaning FROM written "
            "WHERE project = ?",
            (project,),
        )
        return {task: tuple(rest) for task, *rest in rows}  # type: ignore[misc]

    def put(self, project: int, rows: list[tuple[Any, ...]]) -> None:
        """Rows of (task, version, content hash, cluster, rank, strategy score, confidence shown[,
        presentation, leaning]): what the task's prediction of ``version`` carries."""
        self.db.executemany(
            "INSERT OR REPLACE INTO written (project, task, version, text_hash, cluster, score, strategy_score, "
            "confidence, presentation, leaning) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(project, *row, *([None] * (9 - len(row)))) for row in rows],
        )

    def replaced(self, project: int, label: str, at: float) -> None:
        """Label Studio stopped showing ``label`` at ``at`` (its predictions may still be open)."""
        self.db.execute("INSERT OR REPLACE INTO labels VALUES (?, ?, ?)", (project, label, at))

    def replaced_at(self, project: int) -> dict[str, float]:
        """When each label this backend wrote stopped being the project's version."""
        rows = self.db.execute("SELECT label, replaced_at FROM labels WHERE project = ?", (project,))
        return {str(label): float(at) for label, at in rows}

    def prune(self, project: int, pool: set[int], identity: str = "") -> int:
        """Forget tasks that left the pool (annotated or deleted): the report plots the queue as it is.
        Their clusters (under the cluster model of encoder ``identity``) count as explored."""
        rows = self.db.execute("SELECT task, cluster FROM written WHERE project = ?", (project,)).fetchall()
        gone = [(task, cluster) for task, cluster in rows if task not in pool]
        self.db.executemany("DELETE FROM written WHERE project = ? AND task = ?", [(project, t) for t, _ in gone])
        self.db.executemany(
            "INSERT OR IGNORE INTO explored VALUES (?, ?, ?)",
            [(project, identity, c) for _, c in gone if c is not None],
        )
        return len(gone)

    def explored(self, project: int, identity: str) -> set[int]:
        """Clusters that at least one task left the pool from (annotated, as a rule)."""
        query = "SELECT cluster FROM explored WHERE project = ? AND identity = ?"
        return {int(c) for (c,) in self.db.execute(query, (project, identity))}

    def strategy_scores(self, project: int) -> dict[str, list[float]]:
        """Per model version, the scores the strategy gave the pool at the last sync (lower = more
        informative; for uncertainty strategies 1 - uncertainty): what the report plots."""
        out: dict[str, list[float]] = {}
        query = "SELECT version, strategy_score FROM written WHERE project = ? AND strategy_score IS NOT NULL"
        for version, score in self.db.execute(query, (project,)):
            out.setdefault(version, []).append(float(score))
        return out

    def confidences(self, project: int) -> dict[str, list[float]]:
        """Per model version, the calibrated confidences shown on the pool at the last sync."""
        out: dict[str, list[float]] = {}
        query = "SELECT version, confidence FROM written WHERE project = ? AND confidence IS NOT NULL"
        for version, confidence in self.db.execute(query, (project,)):
            out.setdefault(version, []).append(float(confidence))
        return out

    def mean_confidence(self, project: int) -> dict[str, tuple[float, int]]:
        """Per model version, the mean calibrated confidence shown on the pool at the last sync, and
        over how many tasks: calibrated, it estimates the pre-annotations' accuracy without labels."""
        query = (
            "SELECT version, AVG(confidence), COUNT(*) FROM written WHERE project = ? AND confidence IS NOT NULL "
            "GROUP BY version"
        )
        return {version: (float(mean), int(n)) for version, mean, n in self.db.execute(query, (project,))}


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def sync_project(
    settings: Settings,
    ls: LabelStudioClient,
    cache: EmbeddingCache | Callable[[TaskSpec], EmbeddingCache],
    registry: Registry,
    project_id: int,
    strategy_name: str | None = None,
    progress: bool = True,
    chunk: int = 1000,
    predict_inputs: Callable[[], list[str]] | None = None,
    defer_embedding: Callable[[int, int], str] | None = None,
    audit_store: AuditStore | None = None,
) -> SyncSummary:
    """``audit_store``: where what each new prediction shows is recorded (default: the settings').
    ``predict_inputs``: takes the latest window of texts ``/predict`` was asked about
    (``jobs/inputs.py``), tested for drift beside the newly imported tasks. ``defer_embedding``
    (missing, pool) → what was done instead: called, and nothing scored or written, when the
    serving version's own (fine-tuned) encoder has not embedded more than ``HITL_SYNC_EMBED_LIMIT``
    of the pool's texts; without it the sync embeds them itself."""
    lock_path = settings.data_dir / "locks" / f"sync-{project_id}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one sync per project at a time (CLI and worker alike)
        return _sync(
            settings,
            ls,
            cache,
            registry,
            project_id,
            strategy_name,
            progress,
            chunk,
            predict_inputs,
            defer_embedding,
            audit_store or AuditStore.from_settings(settings),
        )


def _sync(
    settings: Settings,
    ls: LabelStudioClient,
    cache: EmbeddingCache | Callable[[TaskSpec], EmbeddingCache],
    registry: Registry,
    project_id: int,
    strategy_name: str | None,
    progress: bool,
    chunk: int,
    predict_inputs: Callable[[], list[str]] | None = None,
    defer_embedding: Callable[[int, int], str] | None = None,
    audit_store: AuditStore | None = None,
) -> SyncSummary:
    started = time.perf_counter()
    spec = parse_label_config(ls.label_config(project_id))
    cache = cache(spec) if callable(cache) else cache  # the text or the image encoder's cache
    serving = load_serving(registry, project_id, spec, cache.encoder)
    version, classifier, label = serving.version, serving.model, serving.label
    name = strategy_name or settings.sync_strategy
    if name == "badge" and (spec.multi_label or spec.is_ner):  # the setting is global; BADGE is single-label
        log.warning("project %s: strategy badge is for single-label projects; margin ranks this one", project_id)
        name = "margin"
    strategy = (
        ColdStartStrategy()
        if classifier is None
        else make_strategy(name, spec.multi_label, batch=settings.sync_diverse_top)
    )
    summary = SyncSummary(project_id, label, strategy.name)

    ids, texts, data, existing = [], [], [], {}
    for task in tqdm(ls.unlabeled_tasks(project_id), desc="reading tasks", unit="task", disable=not progress):
        summary.pool += 1
        try:
            texts.append(task_text(task, spec, settings.max_text_chars))
        except TaskError as exc:
            summary.skipped[str(exc).split(" (")[0]] += 1
            continue
        ids.append(int(task["id"]))
        data.append(dict(task.get("data") or {}))
        existing[int(task["id"])] = {p.get("model_version"): p for p in task.get("predictions") or []}
    if not ids:
        summary.seconds = time.perf_counter() - started
        return summary

    readable, embeddings = cache.embed_readable(texts, progress)
    if not readable.all():  # images that could not be fetched: counted, left out of this sync
        summary.skipped["unreadable image"] += int((~readable).sum())
        ids, texts, data = (
            [i for i, ok in zip(ids, readable, strict=True) if ok],
            [t for t, ok in zip(texts, readable, strict=True) if ok],
            [d for d, ok in zip(data, readable, strict=True) if ok],
        )
        embeddings = embeddings[readable]
        if not ids:
            summary.seconds = time.perf_counter() - started
            return summary
    task_ids = np.array(ids, dtype=np.int64)
    if classifier is not None:
        use_caches(classifier, cache)  # after a head retrain: lookups and a matrix product
    tagged = classifier.tag(texts) if isinstance(classifier, SpanTagger) else None
    fine_tuned = False
    if tagged is not None:  # NER: a task is as uncertain as its weakest word (see models/tagger.py)
        probs = weakest_words(tagged, getattr(strategy, "measure", settings.uncertainty), len(spec.tags))
    elif isinstance(classifier, TextClassifier):  # a fine-tuned encoder's embeddings have a cache of their own
        own = own_cache(classifier, cache)
        weights = getattr(classifier.encoder, "float_weights", classifier.encoder)  # an image encoder has no int8
        fine_tuned = weights.identity != cache.encoder.identity  # a new encoder, not the base's int8 twin
        if fine_tuned and defer_embedding is not None:  # a new encoder: minutes for a large pool
            missing = own.missing(texts)
            if missing > settings.sync_embed_limit:
                summary.deferred = defer_embedding(missing, len(texts))
                summary.seconds = time.perf_counter() - started
                log.info(summary.line())
                return summary
        if own is not cache:  # the new encoder's pass, through its cache (a progress bar on the CLI)
            own.embed_readable(texts, progress)
        probs = class_probabilities(classifier, texts, own, embeddings if own is cache else None)
    else:
        probs = None
    probes = np.zeros(len(ids), dtype=bool)
    drifting = False  # the last drift check (imports or /predict inputs) alarmed: humans review more
    if isinstance(classifier, TextClassifier) and spec.modality == "text" and settings.drift_window > 0:
        monitor = DriftMonitor(settings.data_dir / "drift", project_id, cache.encoder.identity)
        drift = monitor.check(
            ids,
            texts,
            embeddings,
            probs,
            cache.embed,
            lambda batch: class_probabilities(classifier, batch, own),
            settings.drift_window,
            settings.drift_alpha,
        )
        if drift is not None:
            summary.drift = {**dataclasses.asdict(drift), "alarm": drift.alarm, "line": drift.line()}
        if predict_inputs is not None and monitor.state:
            asked = monitor.check_inputs(
                predict_inputs(),
                cache.embed,
                lambda batch: class_probabilities(classifier, batch, own),
                settings.drift_alpha,
            )
            if asked is not None:
                summary.input_drift = {**dataclasses.asdict(asked), "alarm": asked.alarm, "line": asked.line()}
        probes = np.isin(task_ids, sorted(monitor.probes))
        drifting = monitor.alarmed
    clusters = _clusters(settings, project_id, cache, embeddings, len(spec.labels))
    opinion = base_head_opinion(registry, project_id, spec, cache.encoder, embeddings) if fine_tuned else None
    disagree = disagreements(probs, opinion) if opinion is not None and probs is not None else np.zeros(len(ids), bool)
    summary.disagreements = int(disagree.sum())
    strategy_scores = scores = strategy.scores(probs, embeddings, task_ids)
    confidence = _confidence(spec, classifier, probs, tagged, len(ids))
    heldout = audit = np.zeros(len(ids), dtype=bool)
    state = SyncState(settings.data_dir / "sync-state.sqlite3")
    previous = state.get(project_id)
    carried = _all_carried(spec, ids, existing, previous, label, heldout)
    threshold: float | None = None  # auto-accept's, while it is on
    preselect = level_in_force(serving.preselect_level, settings.preselect_precision)
    share = settings.audit_share
    if classifier is not None:
        if not strategy.diverse:  # a BADGE-like batch is spread out by its own picking
            scores = diversify_top(scores, clusters, settings.sync_diverse_top)
        # a share of what the router would let through goes to humans anyway (learning/routing_audit.py);
        # /predict routes by the same rule and reads the share in force from the registry
        threshold = None if registry.routing_suspended(project_id, label) else serving.accept_threshold
        share = min(0.5, share * (2 if drifting else 1))  # drift: twice the audit samples
        registry.set_audit_share(
            project_id, share, "drift alarm: twice HITL_AUDIT_SHARE" if drifting else "HITL_AUDIT_SHARE"
        )
        policy = RoutingPolicy(threshold, share, settings.holdout_fraction, preselect_level=preselect)
        heldout, audit = review_masks(ids, confidence, policy)
        # A prediction a person may have seen is never changed: a task that holds one of this version keeps
        # it; an audit sample already shown with its answer cannot measure the model blind, so it is none
        carried = _all_carried(spec, ids, existing, previous, label, heldout | audit)
        audit &= np.array([c is None or c[1] == Presentation.BLIND for c in carried], dtype=bool)
        done = _annotated_task_ids(registry, project_id, version)
        done_heldout = sum(is_heldout(t, settings.holdout_fraction) for t in done)
        scores = interleave_heldout(
            scores,
            heldout,
            settings.holdout_fraction,
            seed=project_id,
            annotated=len(done),
            annotated_heldout=done_heldout,
        )
        if audit.any():
            scores = interleave_audit(scores, audit, share, seed=project_id)
            summary.audit_samples = int(audit.sum())
        probes &= ~heldout & ~audit  # new data that drifted: humans label some of it first
        if probes.any():
            scores = interleave_audit(scores, probes, settings.drift_probe_share, seed=project_id + 1)
            summary.drift_probes = int(probes.sum())
    answers = (
        [[] for _ in ids]
        if classifier is None
        else results(spec, classifier, texts, probs=probs, tagged=tagged, threshold=settings.multilabel_threshold)
    )
    summary.scored = len(ids)
    order = np.lexsort((task_ids, scores))
    summary.top_task_id = int(task_ids[order[0]])
    summary.top = [(int(task_ids[i]), int(clusters[i]), round(float(scores[i]), 6)) for i in order[:10]]

    state.prune(project_id, set(ids), cache.encoder.identity)
    explored = state.explored(project_id, cache.encoder.identity)
    # no record of where annotations came from (a state from before this table): claim no region unexplored
    unexplored = ~np.isin(clusters, sorted(explored)) if explored or classifier is None else np.zeros(len(ids), bool)
    head = set(order[: settings.sync_exact_top].tolist())
    # tasks without a prediction of this version get one, shown as the presentation policy says
    # (serving/presentation.py): pre-selected, leaning only, or blind for held-out checks and audit samples
    rows, predictions = [], []
    shown: list[tuple[Presentation, str | None, float]] = []
    for i, task_id in enumerate(ids):
        lean = leaning(spec, answers[i]) if classifier is not None else None
        if carried[i] is not None:
            summary.up_to_date += 1
            score, presentation, lean = carried[i][0], carried[i][1], carried[i][2] or lean
        else:
            score = shown_score(confidence[i])
            presentation = present(confidence[i], bool(heldout[i] or audit[i]), preselect)
            predictions.append(
                {
                    "task": task_id,
                    "score": score,
                    "model_version": label,
                    "result": answers[i] if presentation == Presentation.PRESELECT else [],
                }
            )
        shown.append((presentation, lean, score))
        rows.append(
            [
                task_id,
                label,
                _hash(texts[i]),
                int(clusters[i]),
                None,
                round(float(strategy_scores[i]), 6),
                score,
                presentation.value,
                lean,
            ]
        )
    ranks, rank_now = plan_ranks(np.asarray(scores, dtype=float), held_ranks(data), settings.sync_exact_top)
    for i, row in enumerate(rows):
        row[4] = None if np.isnan(ranks[i]) else int(ranks[i])
    # the review queue: answers pre-filled and not auto-accepted, least confident first (likeliest to need a fix)
    reviewable = np.array(
        [
            classifier is not None and p == Presentation.PRESELECT and (threshold is None or score < threshold)
            for p, _, score in shown
        ],
        dtype=bool,
    )
    review, review_now = _review_ranks(
        reviewable, np.array([score for *_, score in shown]), held_ranks(data, REVIEW_FIELD), settings.sync_exact_top
    )
    review_head = set(np.flatnonzero(np.isfinite(review) & reviewable).tolist())

    # Annotators must never find the queue without predictions of the project's version: a new version's
    # predictions are imported in bulk beside the old ones (most informative first), then the project
    # switches to it, and only then are old versions retired.
    order_of = {task_id: k for k, task_id in enumerate(task_ids[order])}
    predictions.sort(key=lambda p: order_of[p["task"]])
    index = {task_id: i for i, task_id in enumerate(ids)}
    for start in tqdm(range(0, len(predictions), chunk), desc="writing", unit="chunk", disable=not progress):
        part = predictions[start : start + chunk]
        if audit_store is not None:  # recorded first: a prediction never exists without its record
            audit_store.record_shown(
                project_id,
                [
                    (
                        p["task"],
                        label,
                        shown[index[p["task"]]][0].value,
                        _answer(spec, answers[index[p["task"]]]),
                        p["score"],
                    )
                    for p in part
                ],
            )
        ls.import_predictions(project_id, part)
        summary.written += len(part)
    # every task now holds this version's prediction: switch before the ranks and headers, so a task
    # whose header already speaks of this version is never shown with the old version's pre-annotation
    replaced = ls.project(project_id).get("model_version")
    ls.use_uncertainty_sampling(project_id, label)
    if replaced and replaced != label:
        state.replaced(project_id, str(replaced), time.time())
    # the queue's order: the head's ranks, one call per task whose rank changed (see query/writeback.py)
    # ...and on top of each task of the head, what is pre-selected and why the task is there, in words
    kinds = (
        np.select(
            [audit, probes, heldout, disagree, unexplored],
            [Why.AUDIT, Why.DRIFT, Why.HELDOUT, Why.DISAGREE, Why.UNEXPLORED],
            Why.UNSURE,
        )
        if classifier is not None
        else np.full(len(ids), Why.COLD_START)
    )

    def second(i: int) -> tuple[str, str] | None:  # what each model answers, for a disagreement's sentence
        if not disagree[i] or opinion is None or probs is None:
            return None
        return spec.labels[int(probs[i].argmax())], spec.labels[int(opinion.labels[i])]

    def said_for(i: int) -> str:
        presentation, lean, score = shown[i]
        if presentation == Presentation.BLIND:  # written blind, it stays blind: nothing of the model's answer
            blind_why = Why.HELDOUT if heldout[i] else Why.AUDIT
            return header(presentation, None, score, reason(blind_why, score, threshold, share))
        # one number on the page: the confidence the task's prediction carries (its stored score)
        why = reason(Why(kinds[i]), None if classifier is None else score, threshold, share, second(i))
        return header(presentation, None if classifier is None else lean, score, why)

    def said_for_review(i: int) -> str:
        presentation, lean, score = shown[i]
        return header(presentation, lean, score, reason(Why.REVIEW, score, threshold, share))

    said = [
        said_for(i) if i in head and np.isfinite(ranks[i]) else said_for_review(i) if i in review_head else None
        for i in range(len(ids))
    ]
    # a task that left the head loses its sentence: a header only ever speaks of where the task stands now
    stale = np.array([said[i] is None and bool(data[i].get(REASON_FIELD)) for i in range(len(ids))], dtype=bool)
    rewrite = (
        rank_now
        | review_now
        | stale
        | np.array([said[i] is not None and data[i].get(REASON_FIELD) != said[i] for i in range(len(ids))], dtype=bool)
    )
    ranked = [(ids[i], _task_data(data[i], ranks[i], review[i], said[i])) for i in np.flatnonzero(rewrite)]
    summary.ranked += _each(ranked, lambda r: ls.update_task_data(*r), "ordering", progress)
    state.put(project_id, [tuple(row) for row in rows])
    if classifier is not None:  # does a new version still change its answers on the reference tasks?
        stopping = StoppingState(settings.data_dir / "sync-state.sqlite3")
        reference = stopping.stop_set(project_id, ids)
        kept = [i for i, t in enumerate(ids) if t in reference]
        uncertainty = float(np.mean([1 - confidence[i] for i in kept])) if kept else None
        stopping.record(project_id, version, {ids[i]: answer_key(answers[i]) for i in kept}, uncertainty)
        curve = registry_curve(registry, project_id, settings.gate_min_eval)
        summary.stopping = stopping.status(project_id, curve).message

    ls.ensure_view(project_id, VIEW_TITLE, order_by=f"tasks:data.{RANK_FIELD}")
    if classifier is not None:
        ls.ensure_view(
            project_id,
            REVIEW_TITLE,
            order_by=f"tasks:data.{REVIEW_FIELD}",
            first=False,
            filters=[annotations_filter("equal"), data_filter(REVIEW_FIELD, "greater", 0)],
        )
    if settings.sync_retire_versions:
        _retire_old_versions(ls, state, project_id, label, settings.sync_retire_grace_s)
    summary.seconds = time.perf_counter() - started
    log.log(logging.DEBUG if progress else logging.INFO, summary.line())  # the CLI prints it; workers log it
    return summary


def _task_data(data: dict[str, Any], rank: float, review: float, said: str | None) -> dict[str, Any]:
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


def _each(items: list[Any], write: Callable[[Any], None], what: str, progress: bool) -> int:
    """One Label Studio call per item, ``WRITERS`` at a time; how many were written."""
    with ThreadPoolExecutor(WRITERS) as pool:
        for _ in tqdm(
            pool.map(write, items), total=len(items), desc=what, unit="task", disable=not progress or not items
        ):
            pass
    return len(items)


def _confidence(
    spec: TaskSpec, model: Any, probs: np.ndarray | None, tagged: list[Tagged] | None, n: int
) -> np.ndarray:
    """The calibrated confidence of each pre-annotation: the ``score`` annotators see beside it
    (0 in a cold start, where there is no pre-annotation)."""
    if tagged is not None:
        return answer_confidence(tagged)
    if model is None or probs is None:
        return np.zeros(n)
    return uncertainty.confidence(probs, spec.multi_label)


def _retire_old_versions(ls: LabelStudioClient, state: SyncState, project_id: int, label: str, grace_s: float) -> None:
    """Delete the predictions of versions older than the one Label Studio showed before ``label``,
    once they were replaced ``grace_s`` ago. A task opened meanwhile keeps its pre-annotation: Label
    Studio refuses to save an annotation whose parent prediction was deleted while the task was
    open. Only versions this backend wrote and switched away from are ever deleted."""
    replaced = state.replaced_at(project_id)
    latest = max(replaced, key=lambda name: replaced[name], default=None)
    now = time.time()
    for old in ls.model_versions(project_id):
        if old in (label, latest) or old not in replaced or now - replaced[old] < grace_s:
            continue
        ls.delete_model_version(project_id, old)


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
    spec: TaskSpec,
    ids: list[int],
    existing: dict[int, dict[Any, Any]],
    previous: dict[int, tuple[Any, ...]],
    label: str,
    blind: np.ndarray,
) -> list[tuple[float, Presentation, str | None] | None]:
    """``_carried`` for each task of the pool."""
    return [_carried(spec, existing[t].get(label), previous.get(t), label, bool(blind[i])) for i, t in enumerate(ids)]


def _carried(
    spec: TaskSpec, prediction: dict[str, Any] | None, written: tuple[Any, ...] | None, label: str, blind: bool
) -> tuple[float, Presentation, str | None] | None:
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


def _annotated_task_ids(registry: Registry, project: int, version: str) -> list[int]:
    """The annotated tasks the serving version was trained and gated on (its pull of Label Studio)."""
    try:
        return list(registry.meta(project, version).get("training", {}).get("task_ids") or [])
    except (RegistryError, OSError, ValueError):
        return []


def _clusters(settings: Settings, project: int, cache: EmbeddingCache, x: np.ndarray, num_labels: int) -> np.ndarray:
    model = ClusterModel(settings.data_dir / "clusters" / f"{project}.json")
    centroids = model.centroids(cache.encoder.identity)
    if centroids is None:
        centroids = model.fit(x, default_k(len(x), num_labels), cache.encoder.identity)
    return assign(x, centroids)
