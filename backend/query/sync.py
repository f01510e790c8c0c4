"""Keep Label Studio's queue ordered by informativeness: score the unlabeled pool, write back in bulk.

``hitl sync --project ID`` (and the RQ job of the same name, run after every publish):

1. stream the project's unlabeled tasks page by page, or only those Label Studio changed since the
   last sync (``query/pool.py``);
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

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm import tqdm

from backend.labeling import TaskSpec, parse_label_config
from backend.memory import collector_paused
from backend.models.classifier import TextClassifier
from backend.models.embedding_cache import EmbeddingCache
from backend.models.plugin_model import PluginClassifier
from backend.monitoring.drift_monitor import check_pool
from backend.monitoring.second_opinion import base_head_opinion, disagreement_finding, disagreements
from backend.monitoring.stopping import StoppingState, answer_key, registry_curve
from backend.query.clusters import pool_clusters
from backend.query.plan import Findings, QueuePlan, Scored, plan_queue
from backend.query.pool import Pool, read_pool, remember
from backend.query.retire import each, retire_old_versions
from backend.query.scoring import confidence_of, score_pool, strategy_for
from backend.query.strategies import Strategy
from backend.query.summary import SyncSummary
from backend.query.writeback import RANK_FIELD, REVIEW_FIELD
from backend.serving.items import results
from backend.serving.predictor import ServingVersion, load_serving, use_caches
from backend.serving.routing import is_heldout, policy_for, sync_audit_share
from backend.settings import Settings
from backend.stores.audit import AuditStore
from backend.stores.documents import Documents
from backend.stores.labelstudio import LabelStudioClient, annotations_filter, data_filter
from backend.stores.locks import exclusive
from backend.stores.queue_state import PoolSnapshot, SyncState, queue_state_location
from backend.stores.registry import Registry, RegistryError

log = logging.getLogger(__name__)

VIEW_TITLE = "Most informative first (hitl)"
REVIEW_TITLE = "Confident: quick review (hitl)"  # pre-filled answers, not auto-accepted, least confident first


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
    dry_run: bool = False,
    when_busy: Callable[[], None] | None = None,
    full_read: bool = False,
) -> SyncSummary:
    """``audit_store``: where what each new prediction shows is recorded (default: the settings').
    ``predict_inputs``: takes the latest window of texts ``/predict`` was asked about
    (``jobs/inputs.py``), tested for drift beside the newly imported tasks. ``defer_embedding``
    (missing, pool) → what was done instead: called, and nothing scored or written, when the
    serving version's own (fine-tuned) encoder has not embedded more than ``HITL_SYNC_EMBED_LIMIT``
    of the pool's texts; without it the sync embeds them itself. ``dry_run``: plan only; nothing is
    written to Label Studio, the registry or the state (``summary.plan`` says what would be).
    ``when_busy``: where another sync of the project runs (on any host), this one does not wait for
    it: ``when_busy`` is called (to ask for a sync after it) and nothing is done. ``full_read``: read
    the whole pool from Label Studio, not only what changed since the last sync (``query/pool.py``)."""
    # one sync per project at a time, on every host
    with exclusive(settings, f"sync-{project_id}", or_else=when_busy) as held:
        if not held:
            summary = SyncSummary(project_id, "", "", gave_way=True)
            summary.deferred = "another sync of this project is running; a new one follows it"
            return summary
        started = time.perf_counter()
        detail = ls.project(project_id)
        spec = parse_label_config(str(detail["label_config"]))
        cache = cache(spec) if callable(cache) else cache  # the text or the image encoder's cache
        serving = load_serving(registry, project_id, spec, cache.encoder)
        strategy = strategy_for(settings, spec, serving, strategy_name, project_id)
        summary = SyncSummary(project_id, serving.label, strategy.name)
        snapshot = PoolSnapshot(queue_state_location(settings.data_dir, settings.database_url))
        every = 0.0 if full_read else settings.sync_full_read_s
        pool = read_pool(
            ls,
            project_id,
            spec,
            cache,
            settings.max_text_chars,
            progress,
            snapshot,
            serving.label,
            every,
            overlap_s=settings.sync_change_overlap_s,
            origin=f"{ls.url} {detail.get('created_at')}",  # a project id reused elsewhere is another pool
        )
        summary.pool, summary.skipped, summary.read = pool.size, pool.skipped, pool.read.how
        if not dry_run:
            remember(snapshot, project_id, pool.read, serving.label)
        plan = None
        if len(pool):
            plan = _sync(
                settings,
                ls,
                cache,
                registry,
                project_id,
                spec,
                serving,
                strategy,
                pool,
                summary,
                progress,
                chunk,
                predict_inputs,
                defer_embedding,
                None if dry_run else audit_store or AuditStore.from_settings(settings),
                dry_run,
            )
        if not dry_run and pool.read.mark is not None:  # our own writes in, the snapshot agrees again
            if plan is not None:
                snapshot.wrote(project_id, plan.predictions, plan.task_writes)
            snapshot.set_mark(project_id, pool.read.mark)
        summary.seconds = time.perf_counter() - started
        log.log(logging.DEBUG if progress else logging.INFO, summary.line())  # the CLI prints it; workers log it
        return summary


def _sync(
    settings: Settings,
    ls: LabelStudioClient,
    cache: EmbeddingCache,
    registry: Registry,
    project_id: int,
    spec: TaskSpec,
    serving: ServingVersion,
    strategy: Strategy,
    pool: Pool,
    summary: SyncSummary,
    progress: bool,
    chunk: int,
    predict_inputs: Callable[[], list[str]] | None,
    defer_embedding: Callable[[int, int], str] | None,
    audit_store: AuditStore | None,
    dry_run: bool,
) -> QueuePlan | None:
    """Score the pool, ask the monitors, plan the queue, and (unless ``dry_run``) apply the plan:
    the plan, None where the pool waits for its embeddings."""
    classifier, label = serving.model, serving.label
    if classifier is not None:
        use_caches(classifier, cache)  # after a head retrain: lookups and a matrix product
    scoring = score_pool(settings, spec, classifier, cache, pool, strategy, progress, defer_embedding)
    if isinstance(scoring, str):  # the pool waits for its new encoder's embeddings
        summary.deferred = scoring
        return None
    probs, tagged, own, fine_tuned = scoring
    with collector_paused():  # a list, a tuple and a row per task of the pool: see backend/memory.py
        probes, drifting = np.zeros(len(pool), dtype=bool), False
        if isinstance(classifier, TextClassifier | PluginClassifier) and spec.modality == "text" and not dry_run:
            probes, drifting = _drift(
                settings, project_id, cache, classifier, own, pool, probs, predict_inputs, summary
            )
        documents = Documents.for_settings(settings, "clusters")
        clusters = pool_clusters(documents, project_id, cache.encoder.identity, pool.embeddings, len(spec.labels))
        disagree, second = _second_opinion(registry, project_id, spec, cache, pool, probs, fine_tuned, summary)
        answers = (
            [[] for _ in pool.ids]
            if classifier is None
            else results(
                spec, classifier, pool.texts, probs=probs, tagged=tagged, threshold=settings.multilabel_threshold
            )
        )
        scored = Scored(
            label,
            classifier is not None,
            answers,
            confidence_of(spec, classifier, probs, tagged, len(pool)),
            strategy.scores(probs, pool.embeddings, pool.task_ids),
            strategy.diverse,
            clusters,
            disagree,
            second,
        )
        policy = None
        if classifier is not None:  # /predict routes by the same rule and reads the share in force from the registry
            share, why = sync_audit_share(settings, drifting)
            if not dry_run:
                registry.set_audit_share(project_id, share, why)
            policy = policy_for(
                settings, registry, project_id, label, serving.accept_threshold, serving.preselect_level, share
            )
        state = SyncState(queue_state_location(settings.data_dir, settings.database_url))
        if not dry_run:
            state.prune(project_id, set(pool.ids), cache.encoder.identity)
        done = _annotated_task_ids(registry, project_id, serving.version)
        findings = Findings(
            probes,
            state.explored(project_id, cache.encoder.identity),
            len(done),
            sum(is_heldout(t, settings.holdout_fraction) for t in done),
            state.get(project_id),
        )
        plan = plan_queue(project_id, pool, spec, scored, policy, findings, settings)
        summary.planned(pool.ids, clusters, plan)
    if dry_run:
        summary.plan = plan.summary(pool.ids, spec)
        return plan
    _apply(
        settings,
        ls,
        registry,
        state,
        audit_store,
        project_id,
        serving,
        pool,
        scored,
        plan,
        findings.previous,
        summary,
        progress,
        chunk,
    )
    return plan


def _drift(
    settings: Settings,
    project_id: int,
    cache: EmbeddingCache,
    classifier: TextClassifier | PluginClassifier,
    own: EmbeddingCache,
    pool: Pool,
    probs: np.ndarray | None,
    predict_inputs: Callable[[], list[str]] | None,
    summary: SyncSummary,
) -> tuple[np.ndarray, bool]:
    """The drift checks (``HITL_DRIFT_WINDOW`` 0: none): the pool's tasks to probe, whether an alarm stands."""
    if settings.drift_window <= 0:
        return np.zeros(len(pool), dtype=bool), False
    texts, x = pool.texts, pool.embeddings
    probed, drifting, found = check_pool(
        settings, project_id, cache, classifier, own, pool.ids, texts, x, probs, predict_inputs
    )
    summary.findings.extend(found)
    return np.isin(pool.task_ids, sorted(probed)), drifting


def _second_opinion(
    registry: Registry,
    project_id: int,
    spec: TaskSpec,
    cache: EmbeddingCache,
    pool: Pool,
    probs: np.ndarray | None,
    fine_tuned: bool,
    summary: SyncSummary,
) -> tuple[np.ndarray, list[tuple[str, str] | None]]:
    """After a fine-tune, where it and the base encoder's head answer differently (those tasks lead
    the queue's head), and per task the two answers; nothing otherwise."""
    opinion = base_head_opinion(registry, project_id, spec, cache.encoder, pool.embeddings) if fine_tuned else None
    if opinion is None or probs is None:
        return np.zeros(len(pool), dtype=bool), [None] * len(pool)
    disagree = disagreements(probs, opinion)
    summary.disagreements = int(disagree.sum())
    if summary.disagreements:
        summary.findings.append(disagreement_finding(disagree, opinion))
    answers = [(spec.labels[int(p.argmax())], spec.labels[int(o)]) for p, o in zip(probs, opinion.labels, strict=True)]
    return disagree, [pair if differ else None for pair, differ in zip(answers, disagree, strict=True)]


def _apply(
    settings: Settings,
    ls: LabelStudioClient,
    registry: Registry,
    state: SyncState,
    audit_store: AuditStore | None,
    project_id: int,
    serving: ServingVersion,
    pool: Pool,
    scored: Scored,
    plan: QueuePlan,
    previous: dict[int, tuple[Any, ...]],
    summary: SyncSummary,
    progress: bool,
    chunk: int,
) -> None:
    """Write the plan. Annotators must never find the queue without predictions of the project's
    version: a new version's predictions are imported in bulk beside the old ones (most informative
    first), then the project switches to it, and only then are old versions retired."""
    label = serving.label
    for start in tqdm(range(0, len(plan.predictions), chunk), desc="writing", unit="chunk", disable=not progress):
        if audit_store is not None:  # recorded first: a prediction never exists without its record
            audit_store.record_shown(project_id, plan.records[start : start + chunk])
        ls.import_predictions(project_id, plan.predictions[start : start + chunk])
        summary.written += len(plan.predictions[start : start + chunk])
    # every task now holds this version's prediction: switch before the ranks and headers, so a task
    # whose header already speaks of this version is never shown with the old version's pre-annotation
    replaced = ls.project(project_id).get("model_version")
    ls.use_uncertainty_sampling(project_id, label)
    if replaced and replaced != label:
        state.replaced(project_id, str(replaced), time.time())
    # the queue's order (the head's ranks, see query/writeback.py), the review tab's, and the headers
    summary.ranked += each(plan.task_writes, lambda w: ls.update_task_data(*w), "ordering", progress)
    state.save(project_id, plan.state_rows, previous)  # what moved: after a head refresh, the head's ranks
    if serving.model is not None:  # does a new version still change its answers on the reference tasks?
        stopping = StoppingState(queue_state_location(settings.data_dir, settings.database_url))
        reference = stopping.stop_set(project_id, pool.ids)
        kept = [i for i, t in enumerate(pool.ids) if t in reference]
        mean = float(np.mean([1 - scored.confidence[i] for i in kept])) if kept else None
        stopping.record(project_id, serving.version, {pool.ids[i]: answer_key(scored.answers[i]) for i in kept}, mean)
        curve = registry_curve(registry, project_id, settings.gate_min_eval)
        summary.findings.append(stopping.status(project_id, curve).finding())
    ls.ensure_view(project_id, VIEW_TITLE, order_by=f"tasks:data.{RANK_FIELD}")
    if serving.model is not None:
        ls.ensure_view(
            project_id,
            REVIEW_TITLE,
            order_by=f"tasks:data.{REVIEW_FIELD}",
            first=False,
            filters=[annotations_filter("equal"), data_filter(REVIEW_FIELD, "greater", 0)],
        )
    if settings.sync_retire_versions:
        retire_old_versions(ls, state, project_id, label, settings.sync_retire_grace_s)


def _annotated_task_ids(registry: Registry, project: int, version: str) -> list[int]:
    """The annotated tasks the serving version was trained and gated on (its pull of Label Studio)."""
    try:
        return list(registry.meta(project, version).get("training", {}).get("task_ids") or [])
    except (RegistryError, OSError, ValueError):
        return []
