"""The retrain job: pull annotations from Label Studio, train, evaluate, gate, publish.

This is the whole path of a correction after its webhook: ``server/events.py`` enqueues
(``jobs/queue.py``), this job builds the training set (``dataset.py``), trains (``training.py`` or
``models/finetune.py``), compares with the serving version (``gate.py``) and publishes
(``registry.py``); the server serves the new version on its next request (``predictor.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.audit import AuditStore
from backend.calibration import (
    cross_fit_temperature,
    expected_calibration_error,
    fit_temperature,
    precision_threshold,
    reliability,
    routing_threshold,
    softmax,
)
from backend.dataset import build_dataset, split
from backend.gate import decide, evaluate, evaluate_spans
from backend.jobs.queue import RetrainQueue
from backend.jobs.scheduled import finetune_due
from backend.labeling import TaskError, TaskSpec, UnsupportedConfig, parse_label_config
from backend.labelstudio import LabelStudioClient
from backend.models.embedding_cache import EmbeddingCache
from backend.models.encoder import TextEncoder, default_encoder_path, load_encoder
from backend.models.finetune import finetune
from backend.models.head import LinearHead
from backend.models.image_encoder import load_image_encoder
from backend.models.persist import IncompatibleVersion, load_version
from backend.models.tagger import SpanTagger, answer_confidence, finetune_tagger, fit_tagger, tag_ids
from backend.models.word_state_cache import WordStateCache
from backend.registry import Registry, RegistryError
from backend.settings import Settings, get_settings
from backend.training import Example, fingerprint, publish_head, targets

log = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    """What a worker process keeps between jobs: the encoder, its embedding cache, the stores."""

    settings: Settings
    encoder: TextEncoder
    cache: EmbeddingCache
    registry: Registry
    audit: AuditStore
    _image_cache: EmbeddingCache | None = None
    _word_states: WordStateCache | None = None

    @classmethod
    def create(cls, settings: Settings) -> WorkerContext:
        encoder = load_encoder(
            settings.model_name or default_encoder_path(), settings.max_length, settings.batch_size, settings.precision
        )
        return cls(
            settings=settings,
            encoder=encoder,
            cache=EmbeddingCache(settings.data_dir / "cache", encoder),
            registry=Registry(settings.registry_dir),
            audit=AuditStore.from_settings(settings),
        )

    def cache_for(self, spec: TaskSpec) -> EmbeddingCache:
        """The embedding cache of the encoder that reads this spec's input (text or image)."""
        if spec.modality != "image":
            return self.cache
        if self._image_cache is None:
            self._image_cache = EmbeddingCache(self.settings.data_dir / "cache", load_image_encoder(self.settings))
        return self._image_cache

    def word_states(self) -> WordStateCache:
        """NER: frozen word states of the base encoder, on disk beside the embedding cache."""
        if self._word_states is None:
            folder, encoder = self.settings.data_dir / "cache", self.encoder
            self._word_states = WordStateCache(folder, encoder.identity, encoder.dim)
        return self._word_states

    def label_studio(self) -> LabelStudioClient:
        key = self.settings.label_studio_api_key
        return LabelStudioClient(self.settings.label_studio_url, key.get_secret_value() if key else None)


_context: WorkerContext | None = None


def context() -> WorkerContext:
    global _context
    if _context is None:
        _context = WorkerContext.create(get_settings())
    return _context


def retrain_job(project_id: int, kind: str = "head", reason: str = "") -> dict[str, Any]:
    """RQ entry point: wait out the debounce window, then retrain on everything Label Studio has."""
    ctx = context()
    queue = RetrainQueue(ctx.settings)
    since = queue.pending_since(project_id, kind)
    if since is not None:
        delay = since + ctx.settings.retrain_debounce_s - time.time()
        if delay > 0:
            time.sleep(delay)
    queue.take(project_id, kind)
    return retrain(ctx, project_id, kind)


def retrain(ctx: WorkerContext, project_id: int, kind: str = "head") -> dict[str, Any]:
    started = time.perf_counter()
    settings = ctx.settings
    ls = ctx.label_studio()
    try:
        spec = parse_label_config(ls.label_config(project_id))
    except UnsupportedConfig as exc:  # retrying cannot help: record why and stop
        log.warning("project %s: not training: %s", project_id, exc)
        return {"project_id": project_id, "kind": kind, "published": False, "reason": f"unsupported config: {exc}"}
    data = build_dataset(project_id, ls.annotated_tasks(project_id), spec, settings.max_text_chars)
    new_corrections = ctx.audit.record_corrections(data.corrections)
    pulled_s = time.perf_counter() - started
    summary: dict[str, Any] = {
        "project_id": project_id,
        "kind": kind,
        "examples": len(data.examples),
        "skipped": dict(data.skipped),
        "new_corrections": new_corrections,
    }
    need = 1 if spec.is_ner else 2  # NER: at least one entity type seen; classification: two labels
    if len(data.examples) < settings.min_train_examples or len(_labels(data.examples)) < need:
        what = "one entity" if spec.is_ner else "2 labels"
        summary.update(published=False, reason=f"need >= {settings.min_train_examples} examples and {what}")
        log.info("project %s: not training yet: %s", project_id, summary)
        return summary

    train, held = split(data.examples, settings.holdout_fraction)
    if len(train) < 2 or len(_labels(train)) < need:
        train, held = list(data.examples), []

    if spec.is_ner:
        candidate, encoder, candidate_metrics, calibration = _fit_tagger(ctx, spec, kind, train, held)
    else:
        candidate, encoder, candidate_metrics, calibration = _fit_classifier(ctx, spec, kind, train, held)

    serving_version, serving_metrics = _serving_metrics(ctx, project_id, spec, held)
    gate = decide(candidate_metrics, serving_metrics, serving_version, settings.gate_margin, settings.gate_min_eval)
    trained_s = time.perf_counter() - started
    summary.update(gate=gate.as_dict(), metrics=candidate_metrics)
    fp = fingerprint(data.examples)
    if not gate.passed:
        ctx.audit.record_version(project_id, f"rejected-{int(time.time())}", kind, False, len(data.examples), fp,
                                 candidate_metrics, gate.as_dict())  # fmt: skip
        summary.update(published=False, reason=gate.reason)
        log.info("project %s: candidate rejected: %s", project_id, gate.reason)
        RetrainQueue(settings).record_duration(project_id, kind, "rejected", time.perf_counter() - started)
        return summary

    # The shipped head is the candidate the gate judged: trained on the train side of the split only,
    # so the next retrain compares like with like on tasks no version has ever trained on.
    version = publish_head(
        ctx.registry, str(project_id), spec, encoder, candidate, data.examples,
        extra={"metrics": candidate_metrics, "gate": gate.as_dict(), **calibration()},
        training={
            "train_examples": len(train),
            "heldout_examples": len(held),
            "heldout_task_ids": sorted(ex.task_id for ex in held if ex.task_id is not None),
            "pull_s": round(pulled_s, 3),
            "train_s": round(trained_s - pulled_s, 3),
        },
        fine_tuned=kind == "full" and spec.modality == "text",
    )  # fmt: skip
    ctx.audit.record_version(project_id, version, kind, True, len(data.examples), fp, candidate_metrics,
                             gate.as_dict())  # fmt: skip
    summary.update(published=True, version=version, seconds=round(time.perf_counter() - started, 3))
    log.info("project %s: published %s (%s)", project_id, version, gate.reason)
    queue = RetrainQueue(settings)
    queue.record_duration(project_id, kind, "published", summary["seconds"])
    if settings.sync_after_publish:
        summary["sync_requested"] = queue.request(project_id, kind="sync", reason=f"published {version}").status
    if kind == "head" and finetune_due(ctx.registry, str(project_id), len(data.examples), settings.finetune_every):
        summary["finetune_requested"] = queue.request(project_id, kind="full", reason="new labels").status
    return summary


def _labels(examples: list[Example]) -> set[str]:
    return {label for ex in examples for label in ex.labels}


def _fit_classifier(ctx: WorkerContext, spec: TaskSpec, kind: str, train: list[Example], held: list[Example]):  # type: ignore[no-untyped-def]
    """Candidate head (on a fine-tuned encoder for ``full``), its held-out metrics, and a deferred
    calibration step (run only for a candidate that passes the gate)."""
    settings = ctx.settings
    cache = ctx.cache_for(spec)
    encoder = cache.encoder
    if kind == "full" and spec.modality == "text":  # image encoders are not fine-tuned (yet): the head is
        encoder = finetune(ctx.encoder, spec, train, epochs=settings.finetune_epochs, seed=0)
        x_train, x_held = encoder.embed([ex.text for ex in train]), encoder.embed([ex.text for ex in held])
    else:
        train, x_train = _embed_readable(cache, train)
        held, x_held = _embed_readable(cache, held)
    y_train = targets(train, spec)
    head = LinearHead.fit(x_train, y_train, len(spec.labels), spec.multi_label)
    metrics = evaluate(head.proba(x_held), held, spec, settings.multilabel_threshold)
    return head, encoder, metrics, lambda: calibrate(head, spec, x_train, y_train, x_held, held, settings)


def _embed_readable(cache: EmbeddingCache, examples: list[Example]) -> tuple[list[Example], np.ndarray]:
    """Embeddings through the cache; an example whose input cannot be read (an image that cannot be
    fetched) is left out with a warning rather than failing the whole retrain."""
    try:
        return examples, cache.embed([ex.text for ex in examples])
    except TaskError:
        kept, rows = [], []
        for ex in examples:
            try:
                rows.append(cache.embed([ex.text])[0])
                kept.append(ex)
            except TaskError as exc:
                log.warning("task %s left out of training: %s", ex.task_id, exc)
        return kept, np.stack(rows) if rows else np.zeros((0, cache.encoder.dim), dtype=np.float32)


def _fit_tagger(ctx: WorkerContext, spec: TaskSpec, kind: str, train: list[Example], held: list[Example]):  # type: ignore[no-untyped-def]
    """NER candidate: a tag head on frozen word states (``head``) or a fine-tuned tagger (``full``),
    scored by entity-level F1 on the held-out annotations, calibrated if it ships."""
    texts, spans = [ex.text for ex in train], [ex.spans for ex in train]
    if kind == "full":
        tagger = finetune_tagger(ctx.encoder, spec, texts, spans, epochs=ctx.settings.finetune_epochs, seed=0)
    else:
        tagger = fit_tagger(ctx.encoder, spec, texts, spans, cache=ctx.word_states())
    metrics = evaluate_spans([t.spans for t in tagger.tag([ex.text for ex in held])], held)
    return tagger.head, tagger.encoder, metrics, lambda: calibrate_tagger(tagger, spec, held, ctx.settings)


def calibrate_tagger(tagger: SpanTagger, spec: TaskSpec, held: list[Example], settings: Settings) -> dict[str, Any]:
    """Temperature-scale the tag head on the held-out annotations' word tags (an unbiased sample:
    the sync serves held-out tasks in random order), then find the routing threshold on whole
    answers: the lowest answer confidence (its least sure word) at which held-out answers are
    exactly right (every entity's start, end and type) at the target precision."""
    if len(held) < 10:
        return {}
    words, inputs = tagger.word_inputs([ex.text for ex in held])
    logits = [tagger.head.logits(x) for x in inputs if len(x)]
    gold = [tag_ids(spec, w, ex.spans) for w, x, ex in zip(words, inputs, held, strict=True) if len(x)]
    if not logits:
        return {}
    z, y = np.concatenate(logits), np.concatenate(gold)
    t = fit_temperature(z, y)
    tagger.head.temperature = t
    result: dict[str, Any] = {"calibration": {
        "temperature": round(t, 4), "method": "temperature on held-out word tags",
        "heldout_word_ece_before": round(expected_calibration_error(softmax(z), y), 4),
        "heldout_word_ece_after": round(expected_calibration_error(softmax(z, t), y), 4),
        "reliability_after": [[round(c, 4), round(a, 4), n] for c, a, n in reliability(softmax(z, t), y, bins=10)],
    }}  # fmt: skip
    if settings.routing_target_precision > 0:
        tagged = tagger.tag([ex.text for ex in held])
        exact = np.array([{s.key for s in t.spans} == {s.key for s in ex.spans} for t, ex in zip(tagged, held,
                                                                                              strict=True)])
        route = precision_threshold(answer_confidence(tagged), exact, settings.routing_target_precision)
        result["routing"] = dataclasses.asdict(route)
    return result


def calibrate(head: LinearHead, spec, x_train, y_train, x_held, held, settings: Settings) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Temperature-scale ``head`` in place and find the routing threshold (single-label only)."""
    if spec.multi_label or len(y_train) < 10:
        return {}
    y_held = targets(held, spec)
    held_logits = head.logits(x_held) if len(held) else None
    t = cross_fit_temperature(x_train, y_train, len(spec.labels), held_logits, y_held if len(held) else None)
    head.temperature = t
    result: dict[str, Any] = {"calibration": {"temperature": round(t, 4), "method": "cross-fitted temperature"}}
    if held_logits is not None and settings.routing_target_precision > 0:
        before, after = softmax(held_logits), softmax(held_logits, t)
        result["calibration"].update(
            heldout_ece_before=round(expected_calibration_error(before, y_held), 4),
            heldout_ece_after=round(expected_calibration_error(after, y_held), 4),
            reliability_after=[[round(c, 4), round(a, 4), n] for c, a, n in reliability(after, y_held, bins=10)],
        )
        route = routing_threshold(after, y_held, settings.routing_target_precision)
        result["routing"] = dataclasses.asdict(route)
    return result


def _serving_metrics(ctx: WorkerContext, project_id: int, spec, held):  # type: ignore[no-untyped-def]
    current = ctx.registry.current(str(project_id))
    if current is None:
        return None, None
    try:
        folder = ctx.registry.version_dir(str(project_id), current)
        base = ctx.cache_for(spec).encoder
        classifier = load_version(folder, ctx.registry.meta(str(project_id), current), spec, base)
    except (IncompatibleVersion, RegistryError, OSError, KeyError, ValueError) as exc:
        log.info("project %s: serving version %s not comparable: %s", project_id, current, exc)
        return None, None
    if isinstance(classifier, SpanTagger):
        if classifier.encoder is ctx.encoder:
            classifier.cache = ctx.word_states()
        return current, evaluate_spans([t.spans for t in classifier.tag([ex.text for ex in held])], held)
    cache = ctx.cache_for(spec)
    if classifier.encoder is cache.encoder:
        probs = classifier.head.proba(cache.embed([ex.text for ex in held]))
    else:
        probs = classifier.predict_proba([ex.text for ex in held])
    return current, evaluate(probs, held, spec, ctx.settings.multilabel_threshold)
