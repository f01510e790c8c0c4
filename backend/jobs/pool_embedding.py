"""A new encoder's embeddings of a project's unlabeled pool, made on the slow worker before the sync.

A fine-tune changes every embedding: re-ranking the pool then needs a forward pass per task
(minutes for 100k), not the lookups and matrix product of a head retrain. Done inside a sync, that
pass would sit on the fast queue ahead of every correction's head retrain. So a published
fine-tune requests this job instead of a sync; it fills the serving version's own embedding cache
(``models/embedding_cache.py``, on disk, shared by the workers) and then requests the sync, which
finds the pool cached. It embeds the annotated tasks too, with the float weights head retrains
train on (and their int8 twin, which ``choose_precision`` compares), so the first correction after
a fine-tune is as quick as the next. Meanwhile
``/predict`` already serves the fine-tune and the queue keeps the previous version's order. A sync
that finds more than ``HITL_SYNC_EMBED_LIMIT`` texts missing (say a head retrain on the new
encoder published first) requests this job and stops (``query/sync.py``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from backend.ids import JobKind, ProjectId
from backend.jobs.context import WorkerContext, context
from backend.jobs.outage import reaching_label_studio
from backend.jobs.queue import RetrainQueue
from backend.labeling import TaskError, parse_label_config, task_text
from backend.learning.dataset import build_dataset
from backend.models.classifier import TextClassifier
from backend.models.encoder import int8_allowed
from backend.serving.predictor import load_serving

log = logging.getLogger(__name__)

CHUNK = 2048  # texts per step, so the log shows progress


def embed_pool_job(project_id: ProjectId, kind: str = JobKind.EMBED, reason: str = "") -> dict[str, Any]:
    """RQ entry point: embed the pool with the serving version's encoder, then request the sync."""
    ctx = context()
    queue = RetrainQueue(ctx.settings)
    queue.take(project_id, JobKind.EMBED)
    with reaching_label_studio(ctx.settings):
        summary = embed_pool(ctx, project_id)
    summary["sync_requested"] = queue.request(project_id, JobKind.SYNC, reason="pool embedded").status
    return summary


def embed_pool(ctx: WorkerContext, project_id: ProjectId) -> dict[str, Any]:
    """Embed every unlabeled task's text the serving text classifier's encoder has not embedded yet."""
    started = time.perf_counter()
    ls = ctx.label_studio()
    spec = parse_label_config(ls.label_config(project_id))
    serving = load_serving(ctx.registry, project_id, spec, ctx.cache_for(spec).encoder)
    summary: dict[str, Any] = {"project_id": project_id, "version": serving.version, "pool": 0, "embedded": 0}
    if not isinstance(serving.model, TextClassifier) or spec.modality != "text":
        return {**summary, "reason": "only a text classifier's encoder embeds the pool"}
    annotated = build_dataset(project_id, ls.annotated_tasks(project_id), spec, ctx.settings.max_text_chars)
    tuned = serving.model.encoder.float_weights  # what head retrains fit on, and their int8 twins (choose_precision)
    for encoder in (tuned, tuned.quantized()) if int8_allowed(ctx.settings.precision) else (tuned,):
        ctx.cache_of(encoder).embed_readable([ex.text for ex in annotated.examples])
    texts = []
    for task in ls.unlabeled_tasks(project_id):
        try:
            texts.append(task_text(task, spec, ctx.settings.max_text_chars))
        except TaskError:  # the sync counts and reports these
            continue
    own = ctx.cache_of(serving.model.encoder)
    missing = own.missing(texts)
    summary.update(pool=len(texts), embedded=missing, annotated=len(annotated.examples))
    for start in range(0, len(texts), CHUNK):
        own.embed(texts[start : start + CHUNK])
        if missing > CHUNK:
            log.info(
                "project %s: embedding the pool for %s: %d of %d texts",
                project_id,
                serving.version,
                min(start + CHUNK, len(texts)),
                len(texts),
            )
    summary["seconds"] = round(time.perf_counter() - started, 3)
    log.info(
        "project %s: %s embedded %d new pool texts of %d in %.1fs",
        project_id,
        serving.version,
        missing,
        len(texts),
        summary["seconds"],
    )
    return summary
