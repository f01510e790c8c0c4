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
from dataclasses import dataclass
from typing import Any

from backend.ids import JobKind, ProjectId
from backend.jobs.after_publish import head_runs_low, request_follow_ups
from backend.jobs.context import WorkerContext, context
from backend.jobs.outage import reaching_label_studio
from backend.jobs.proposals import held_back
from backend.jobs.queue import RetrainQueue
from backend.labeling import TaskSpec, UnsupportedConfig, parse_label_config
from backend.labeling.examples import Example, fingerprint
from backend.learning.candidates import Candidate, calibrate, choose_precision, fit_candidate, publish_candidate
from backend.learning.dataset import Dataset, build_dataset, split
from backend.learning.gate import GateDecision, SliceRule, decide, reported, score
from backend.models.classifier import TextClassifier
from backend.models.plugin_model import PluginClassifier
from backend.monitoring.routing_audit import check_routing
from backend.plugin import PluginError
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
    """One retrain, top to bottom: pull, check there is something new, fit, gate and publish."""
    started, kind = time.perf_counter(), JobKind(kind)
    settings = ctx.settings
    summary: dict[str, Any] = {"project_id": project_id, "kind": kind.value}
    pulled = _pull(ctx, project_id, summary)
    if pulled is None:
        return summary
    spec, data = pulled
    pulled_s = time.perf_counter() - started

    # dataset: enough to learn from, and something new since the serving version
    need = 1 if spec.is_ner else 2  # NER: at least one entity type seen; classification: two labels
    if len(data.examples) < settings.min_train_examples or len(_labels(data.examples)) < need:
        what = "one entity" if spec.is_ner else "2 labels"
        log.info("project %s: not training yet: %s", project_id, summary)
        return {**summary, "published": False, "reason": f"need >= {settings.min_train_examples} examples and {what}"}
    fp = fingerprint(data.examples)
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
    start_cache = ctx.cache_of(serving.model.encoder.float_weights) if on_version or warm_from else ctx.cache_for(spec)
    word_states = ctx.word_states() if spec.is_ner else None
    plugin = ctx.registry.model(project_id)
    try:
        candidate = fit_candidate(
            spec, kind, train, held, start_cache, settings, word_states, encoder_version=on_version, plugin=plugin
        )
    except PluginError as exc:  # the operator's model failed: its candidate is refused, the serving version serves on
        refused = {"passed": False, "reason": str(exc), "serving_version": serving.version}
        ctx.audit.record_version(
            project_id, versions.rejected(time.time()), kind.value, False, len(data.examples), fp, {}, refused
        )
        log.warning("project %s: candidate refused: %s", project_id, exc)
        return {**summary, "published": False, "reason": str(exc), "gate": refused}
    candidate, precision = choose_precision(candidate, spec, settings, ctx.cache_of)  # int8 where it is safe
    summary.update(metrics=reported(candidate.metrics), precision=precision)
    training = {
        "train_examples": len(train),
        "heldout_examples": len(held),
        "heldout_task_ids": sorted(ex.task_id for ex in held if ex.task_id is not None),
        "pull_s": round(pulled_s, 3),
        "train_s": round(time.perf_counter() - started - pulled_s, 3),
        **({"warm_start_from": warm_from} if warm_from else {}),
    }
    attempt = _Attempt(ctx, project_id, spec, kind, candidate, data.examples, fp, summary, started)
    version = attempt.gate_and_publish(serving, {"precision": precision}, training)
    if version is None:  # nothing new to serve; the queue may still need re-ranking
        low = head_runs_low(settings, project_id, {ex.task_id for ex in data.examples if ex.task_id is not None})
        if low is not None and summary.get("gate"):
            summary["sync_requested"] = RetrainQueue(settings).request(project_id, JobKind.SYNC, reason=low).status
            log.info("project %s: %s: sync requested", project_id, low)
        return summary

    # audit, then let the queue and the slow path follow
    summary.update(published=True, version=version, seconds=round(time.perf_counter() - started, 3))
    log.info("project %s: published %s (%s)", project_id, version, summary["gate"]["reason"])
    queue = RetrainQueue(settings)
    queue.record_duration(project_id, kind, "published", summary["seconds"])
    new_encoder = candidate.fine_tuned and isinstance(candidate.model, TextClassifier)
    summary.update(
        request_follow_ups(
            queue, ctx.registry, settings, project_id, spec, kind, version, new_encoder, len(data.examples)
        )
    )
    return summary


def _pull(ctx: WorkerContext, project_id: ProjectId, summary: dict[str, Any]) -> tuple[TaskSpec, Dataset] | None:
    """Label Studio is the source of truth: its annotated tasks become examples, every annotation
    goes to the audit trail, and new corrections are checked against auto_accept. None (with the
    reason in ``summary``) when the project's config cannot be trained on."""
    settings, ls = ctx.settings, ctx.label_studio()
    try:
        spec = parse_label_config(ls.label_config(project_id))
    except UnsupportedConfig as exc:  # retrying cannot help: record why and stop
        log.warning("project %s: not training: %s", project_id, exc)
        summary.update(published=False, reason=f"unsupported config: {exc}")
        return None
    tasks = list(ls.annotated_tasks(project_id))
    data = build_dataset(project_id, tasks, spec, settings.max_text_chars, settings.slice_field_names)
    summary.update(skipped=dict(data.skipped), new_corrections=ctx.audit.record_corrections(data.corrections))
    unconfirmed = held_back(tasks, ctx.audit.proposals(project_id), spec) if not spec.is_ner else set()
    if unconfirmed:  # recorded in the audit above, trained on once a person saves the task again
        data.examples = [ex for ex in data.examples if ex.task_id not in unconfirmed]
        summary["held_back"] = len(unconfirmed)
        log.warning(
            "project %s: %d annotations made by the bulk action from the model's prediction on proposal tasks "
            "(the label their correction rejected) are not trained on until a person saves them again",
            project_id,
            len(unconfirmed),
        )
    summary["examples"] = len(data.examples)
    if settings.slice_field_names:  # the report's correction rate per field value needs each task's values
        ctx.audit.record_task_fields(project_id, {ex.task_id: ex.slices for ex in data.examples if ex.task_id})
    if summary["new_corrections"] and settings.routing_target_precision > 0:  # does auto_accept hold up?
        routing = check_routing(ctx.audit, ctx.registry, project_id, settings.routing_target_precision)
        summary["routing_off"] = [r.model_version for r in routing if r.suspended]
    return spec, data


@dataclass
class _Attempt:
    """A fitted candidate on its way to the registry: gated against the serving version, calibrated,
    published with a compare-and-swap, and re-gated when another retrain published first."""

    ctx: WorkerContext
    project_id: ProjectId
    spec: TaskSpec
    kind: JobKind
    candidate: Candidate
    examples: list[Example]
    fp: str
    summary: dict[str, Any]
    started: float

    def gate_and_publish(self, serving: ServingVersion, extra: dict[str, Any], training: dict[str, Any]) -> str | None:
        """The published version's name; None when the gate refused it (the reason in the summary)."""
        calibration: dict[str, Any] | None = None
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            baseline = None if serving.version == versions.COLD_START else serving.version
            gate = self.judge(serving, baseline)
            if not gate.passed:
                self.record(versions.rejected(time.time()), gate.as_dict())
                log.info("project %s: candidate rejected: %s", self.project_id, gate.reason)
                RetrainQueue(self.ctx.settings).record_duration(
                    self.project_id, self.kind, "rejected", time.perf_counter() - self.started
                )
                self.summary.update(published=False, reason=gate.reason)
                return None
            calibration = (
                calibration if calibration is not None else calibrate(self.candidate, self.spec, self.ctx.settings)
            )
            # The shipped head is the candidate the gate judged: trained on the train side of the split only,
            # so the next retrain compares like with like on tasks no version has ever trained on.
            try:
                version = publish_candidate(
                    self.ctx.registry,
                    self.project_id,
                    self.spec,
                    self.candidate,
                    self.examples,
                    extra={**self.meta(serving, gate), **extra, **calibration},
                    training=training,
                    expected_current=baseline,
                )
            except BaselineChanged as exc:  # another retrain published meanwhile: judge against that one
                outcome = "re-gating" if attempt < PUBLISH_ATTEMPTS else "dropped"
                self.record(
                    versions.superseded(time.time()), {**gate.as_dict(), "passed": False, "reason": f"{exc}: {outcome}"}
                )
                log.info("project %s: %s; %s", self.project_id, exc, outcome)
                serving = _serving(self.ctx, self.project_id, self.spec)
                continue
            self.record(version, gate.as_dict(), published=True)
            return version
        self.summary.update(published=False, reason="the serving version kept changing during the gate: dropped")
        return None

    def judge(self, serving: ServingVersion, baseline: str | None) -> GateDecision:
        """The gate: the candidate and the serving version scored on the same held-out annotations."""
        settings = self.ctx.settings
        serving_metrics = None
        if serving.model is not None:
            plugin = isinstance(serving.model, PluginClassifier)
            cache = None if plugin else self.ctx.cache_of(serving.model.encoder)
            try:
                serving_metrics = score(
                    serving.model, self.candidate.held, self.spec, settings.multilabel_threshold, cache
                )
            except PluginError as exc:  # the serving plug-in cannot answer now: nothing to hold the candidate to
                log.warning("project %s: the serving version cannot be scored: %s", self.project_id, exc)
        gate = decide(
            self.candidate.metrics,
            serving_metrics,
            baseline,
            settings.gate_margin,
            settings.gate_min_eval,
            self.candidate.held,
            SliceRule(settings.slice_min_eval, settings.slice_margin, settings.slice_alpha, settings.gate_min_paired),
        )
        self.summary["gate"] = gate.as_dict()
        return gate

    def meta(self, serving: ServingVersion, gate: GateDecision) -> dict[str, Any]:
        """What the registry keeps beside the weights: scores, the gate's decision, the version family."""
        settings = self.ctx.settings
        family = next_family(
            serving.meta or None,
            "plugin" if isinstance(self.candidate.model, PluginClassifier) else self.kind,
            self.spec.fingerprint(),
            len(self.examples),
            settings.version_family_labels,
            settings.version_family_growth,
            settings.version_family_min_s,
            time.time(),
        )
        return {"metrics": reported(self.candidate.metrics), "gate": gate.as_dict(), **family}

    def record(self, name: str, gate: dict[str, Any], published: bool = False) -> None:
        """The candidate in the audit store, published or not."""
        metrics = reported(self.candidate.metrics)
        self.ctx.audit.record_version(
            self.project_id, name, self.kind.value, published, len(self.examples), self.fp, metrics, gate
        )


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
