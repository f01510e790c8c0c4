"""The retrain job: pull → dataset → candidate → gate → calibrate → publish → audit → sync.

A correction's path: ``server/events.py`` takes the webhook and ``jobs/queue.py`` enqueues a
coalesced job; ``retrain`` below pulls Label Studio's annotations (``learning/dataset.py``), fits
a candidate (``learning/candidates.py``), scores it and the serving version on the same held-out
annotations (``learning/gate.py``, the serving version loaded by ``serving/version.py``), and
publishes it with a compare-and-swap (``stores/registry.py``); the server serves it on its next
request, and the jobs that follow a publish are requested (``jobs/after_publish.py``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from backend.ids import JobKind, ProjectId
from backend.jobs.after_publish import request_follow_ups
from backend.jobs.context import WorkerContext, context
from backend.jobs.outage import reaching_label_studio
from backend.jobs.queue import RetrainQueue
from backend.labeling import UnsupportedConfig, parse_label_config
from backend.labeling.examples import Example, fingerprint
from backend.learning.candidates import calibrate, choose_precision, fit_candidate, publish_candidate
from backend.learning.dataset import build_dataset, split
from backend.learning.gate import SliceRule, decide, reported, score
from backend.models.classifier import TextClassifier
from backend.monitoring.routing_audit import check_routing
from backend.serving.predictor import ServingVersion, load_serving, use_caches
from backend.stores import versions
from backend.stores.registry import BaselineChanged, next_family

log = logging.getLogger(__name__)

PUBLISH_ATTEMPTS = 3  # a candidate is re-gated at most this many times when other retrains publish first


def retrain_job(project_id: ProjectId, kind: str = JobKind.HEAD, reason: str = "") -> dict[str, Any]:
    """RQ entry point: wait out the debounce window, then retrain on everything Label Studio has."""
    ctx, kind = context(), JobKind(kind)
    queue = RetrainQueue(ctx.settings)
    since = queue.pending_since(project_id, kind)
    if since is not None:
        delay = since + ctx.settings.retrain_debounce_s - time.time()
        if delay > 0:
            time.sleep(delay)
    queue.mark_running(project_id, kind)  # head retrains meanwhile do not ask for another fine-tune
    queue.take(project_id, kind)  # (marked first: no moment when neither the flag nor the mark is set)
    pulled_at, last_event = time.time(), queue.last_event(project_id)
    try:
        with reaching_label_studio(ctx.settings):
            summary = retrain(ctx, project_id, kind)
    finally:
        queue.mark_running(project_id, kind, running=False)
    if reason != "catch-up" and last_event is not None and pulled_at - last_event < ctx.settings.catch_up_s:
        summary["catch_up_job"] = queue.catch_up(project_id, ctx.settings.catch_up_s)
    return summary


def retrain(ctx: WorkerContext, project_id: ProjectId, kind: JobKind | str = JobKind.HEAD) -> dict[str, Any]:
    started, kind = time.perf_counter(), JobKind(kind)
    settings, queue = ctx.settings, RetrainQueue(ctx.settings)
    summary: dict[str, Any] = {"project_id": project_id, "kind": kind.value}

    # pull: Label Studio is the source of truth; every annotation also goes to the audit trail
    ls = ctx.label_studio()
    try:
        spec = parse_label_config(ls.label_config(project_id))
    except UnsupportedConfig as exc:  # retrying cannot help: record why and stop
        log.warning("project %s: not training: %s", project_id, exc)
        return {**summary, "published": False, "reason": f"unsupported config: {exc}"}
    data = build_dataset(
        project_id, ls.annotated_tasks(project_id), spec, settings.max_text_chars, settings.slice_field_names
    )
    summary.update(
        examples=len(data.examples),
        skipped=dict(data.skipped),
        new_corrections=ctx.audit.record_corrections(data.corrections),
    )
    if settings.slice_field_names:  # the report's correction rate per field value needs each task's values
        ctx.audit.record_task_fields(project_id, {ex.task_id: ex.slices for ex in data.examples if ex.task_id})
    if summary["new_corrections"] and settings.routing_target_precision > 0:  # does auto_accept hold up?
        routing = check_routing(ctx.audit, ctx.registry, project_id, settings.routing_target_precision)
        summary["routing_off"] = [r.model_version for r in routing if r.suspended]
    pulled_s = time.perf_counter() - started

    # dataset: enough to learn from, and something new since the serving version
    need = 1 if spec.is_ner else 2  # NER: at least one entity type seen; classification: two labels
    if len(data.examples) < settings.min_train_examples or len(_labels(data.examples)) < need:
        what = "one entity" if spec.is_ner else "2 labels"
        log.info("project %s: not training yet: %s", project_id, summary)
        return {**summary, "published": False, "reason": f"need >= {settings.min_train_examples} examples and {what}"}
    fp = fingerprint(data.examples)
    cache = ctx.cache_for(spec)
    serving = _serving(ctx, project_id, spec)
    if kind == JobKind.HEAD and (serving.meta.get("training") or {}).get("fingerprint") == fp:
        return {**summary, "published": False, "reason": f"no new annotations since {serving.version}"}
    train, held = split(data.examples, settings.holdout_fraction)
    if len(train) < 2 or len(_labels(train)) < need:
        train, held = list(data.examples), []

    # candidate, scored on the held-out annotations; after a fine-tune, head retrains build on its encoder
    # (and so does the next fine-tune, under HITL_FINETUNE_WARM_START)
    on_version = _fine_tuned_encoder(serving) if kind == JobKind.HEAD else None
    warm_from = _fine_tuned_encoder(serving) if kind == JobKind.FULL and settings.finetune_warm_start else None
    start_cache = ctx.cache_of(serving.model.encoder.float_weights) if on_version or warm_from else cache
    candidate = fit_candidate(
        spec,
        kind,
        train,
        held,
        start_cache,
        settings,
        ctx.word_states() if spec.is_ner else None,
        encoder_version=on_version,
    )
    candidate, precision = choose_precision(candidate, spec, settings, ctx.cache_of)  # int8 where it is safe
    summary.update(metrics=reported(candidate.metrics), precision=precision)

    # gate against the serving version, calibrate, publish; re-gated when another retrain published first
    calibration: dict[str, Any] | None = None
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        baseline = None if serving.version == versions.COLD_START else serving.version
        serving_metrics = None
        if serving.model is not None:
            serving_metrics = score(
                serving.model, candidate.held, spec, settings.multilabel_threshold, ctx.cache_of(serving.model.encoder)
            )
        gate = decide(
            candidate.metrics,
            serving_metrics,
            baseline,
            settings.gate_margin,
            settings.gate_min_eval,
            candidate.held,
            SliceRule(settings.slice_min_eval, settings.slice_margin, settings.slice_alpha, settings.gate_min_paired),
        )
        summary["gate"] = gate.as_dict()
        trained_s = time.perf_counter() - started
        if not gate.passed:
            ctx.audit.record_version(
                project_id,
                versions.rejected(time.time()),
                kind.value,
                False,
                len(data.examples),
                fp,
                reported(candidate.metrics),
                gate.as_dict(),
            )
            log.info("project %s: candidate rejected: %s", project_id, gate.reason)
            queue.record_duration(project_id, kind, "rejected", time.perf_counter() - started)
            return {**summary, "published": False, "reason": gate.reason}
        calibration = calibration if calibration is not None else calibrate(candidate, spec, settings)
        family = next_family(
            serving.meta or None,
            kind,
            spec.fingerprint(),
            len(data.examples),
            settings.version_family_labels,
            settings.version_family_growth,
            settings.version_family_min_s,
            time.time(),
        )
        # The shipped head is the candidate the gate judged: trained on the train side of the split only,
        # so the next retrain compares like with like on tasks no version has ever trained on.
        try:
            version = publish_candidate(
                ctx.registry,
                project_id,
                spec,
                candidate,
                data.examples,
                extra={
                    "metrics": reported(candidate.metrics),
                    "gate": gate.as_dict(),
                    "precision": precision,
                    **calibration,
                    **family,
                },
                training={
                    "train_examples": len(train),
                    "heldout_examples": len(held),
                    "heldout_task_ids": sorted(ex.task_id for ex in held if ex.task_id is not None),
                    "pull_s": round(pulled_s, 3),
                    "train_s": round(trained_s - pulled_s, 3),
                    **({"warm_start_from": warm_from} if warm_from else {}),
                },
                expected_current=baseline,
            )
            break
        except BaselineChanged as exc:  # another retrain published meanwhile: judge against that one
            outcome = "re-gating" if attempt < PUBLISH_ATTEMPTS else "dropped"
            ctx.audit.record_version(
                project_id,
                versions.superseded(time.time()),
                kind.value,
                False,
                len(data.examples),
                fp,
                reported(candidate.metrics),
                {**gate.as_dict(), "passed": False, "reason": f"{exc}: {outcome}"},
            )
            log.info("project %s: %s; %s", project_id, exc, outcome)
            serving = _serving(ctx, project_id, spec)
    else:
        return {**summary, "published": False, "reason": "the serving version kept changing during the gate: dropped"}

    # audit, then let the queue and the slow path follow
    ctx.audit.record_version(
        project_id, version, kind.value, True, len(data.examples), fp, reported(candidate.metrics), gate.as_dict()
    )
    summary.update(published=True, version=version, seconds=round(time.perf_counter() - started, 3))
    log.info("project %s: published %s (%s)", project_id, version, gate.reason)
    queue.record_duration(project_id, kind, "published", summary["seconds"])
    new_encoder = candidate.fine_tuned and isinstance(candidate.model, TextClassifier)
    summary.update(
        request_follow_ups(
            queue, ctx.registry, settings, project_id, spec, kind, version, new_encoder, len(data.examples)
        )
    )
    return summary


def _serving(ctx: WorkerContext, project_id: ProjectId, spec: Any) -> ServingVersion:
    """The version the candidate must beat, reading the caches when it runs on the base encoder."""
    serving = load_serving(ctx.registry, project_id, spec, ctx.cache_for(spec).encoder)
    if serving.model is not None:
        use_caches(serving.model, ctx.cache_for(spec), ctx.word_states() if spec.is_ner else None)
    return serving


def _fine_tuned_encoder(serving: ServingVersion) -> str | None:
    """The version whose fine-tuned encoder the serving text classifier runs on (None: the base)."""
    info = serving.meta.get("encoder") or {}
    if not isinstance(serving.model, TextClassifier) or info.get("source") != "version":
        return None
    return info.get("version") or serving.version


def _labels(examples: list[Example]) -> set[str]:
    return {label for ex in examples for label in ex.labels}
