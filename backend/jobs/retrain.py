"""The retrain job: pull annotations from Label Studio, train, evaluate, gate, publish.

This is the whole path of a correction after its webhook: ``server/events.py`` enqueues
(``jobs/queue.py``), this job builds the training set (``dataset.py``), fits a candidate for the
task kind (``candidates.py``: ``training.py``'s head, ``models/finetune.py``, ``models/tagger.py``),
compares it with the serving version (``gate.py``) and publishes
(``registry.py``); the server serves the new version on its next request (``predictor.py``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from backend.audit import AuditStore
from backend.candidates import embed_readable, fit_classifier_candidate, fit_tagger_candidate
from backend.dataset import build_dataset, split
from backend.gate import decide, evaluate, evaluate_spans
from backend.jobs.queue import RetrainQueue
from backend.jobs.scheduled import finetune_due
from backend.labeling import TaskSpec, UnsupportedConfig, parse_label_config
from backend.labelstudio import LabelStudioClient, unavailable_as_one_line
from backend.models.embedding_cache import EmbeddingCache
from backend.models.encoder import TextEncoder, default_encoder_path, load_encoder
from backend.models.image_encoder import load_image_encoder
from backend.models.persist import IncompatibleVersion, load_version
from backend.models.tagger import SpanTagger
from backend.models.word_state_cache import WordStateCache
from backend.registry import BaselineChanged, Registry, RegistryError, next_family
from backend.settings import Settings, get_settings
from backend.training import Example, fingerprint, publish_head

log = logging.getLogger(__name__)

PUBLISH_ATTEMPTS = 3  # a candidate is re-gated at most this many times when other retrains publish first


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
        return LabelStudioClient.from_settings(self.settings)


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
    pulled_at, last_event = time.time(), queue.last_event(project_id)
    with unavailable_as_one_line(ctx.settings.label_studio_url or "?"):
        summary = retrain(ctx, project_id, kind)
    if reason != "catch-up" and last_event is not None and pulled_at - last_event < ctx.settings.catch_up_s:
        summary["catch_up_job"] = queue.catch_up(project_id, ctx.settings.catch_up_s)
    return summary


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

    serving = _meta(ctx.registry, project_id, ctx.registry.current(str(project_id)))
    if kind == "head" and serving and (serving.get("training") or {}).get("fingerprint") == fingerprint(data.examples):
        summary.update(published=False, reason=f"no new annotations since {serving['version']}")
        return summary

    train, held = split(data.examples, settings.holdout_fraction)
    if len(train) < 2 or len(_labels(train)) < need:
        train, held = list(data.examples), []

    if spec.is_ner:
        candidate, encoder, candidate_metrics, calibrate = fit_tagger_candidate(ctx, spec, kind, train, held)
    else:
        candidate, encoder, candidate_metrics, calibrate = fit_classifier_candidate(ctx, spec, kind, train, held)

    fp = fingerprint(data.examples)
    calibration: dict[str, Any] | None = None
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        serving_version, serving_metrics = _serving_metrics(ctx, project_id, spec, held)
        gate = decide(candidate_metrics, serving_metrics, serving_version, settings.gate_margin, settings.gate_min_eval)
        trained_s = time.perf_counter() - started
        summary.update(gate=gate.as_dict(), metrics=candidate_metrics)
        if not gate.passed:
            ctx.audit.record_version(project_id, f"rejected-{int(time.time())}", kind, False, len(data.examples), fp,
                                     candidate_metrics, gate.as_dict())  # fmt: skip
            summary.update(published=False, reason=gate.reason)
            log.info("project %s: candidate rejected: %s", project_id, gate.reason)
            RetrainQueue(settings).record_duration(project_id, kind, "rejected", time.perf_counter() - started)
            return summary
        if calibration is None:
            calibration = calibrate()
        family = next_family(_meta(ctx.registry, project_id, serving_version), kind, spec.fingerprint(),
                             len(data.examples), settings.version_family_labels)  # fmt: skip
        # The shipped head is the candidate the gate judged: trained on the train side of the split only,
        # so the next retrain compares like with like on tasks no version has ever trained on.
        try:
            version = publish_head(
                ctx.registry, str(project_id), spec, encoder, candidate, data.examples,
                extra={"metrics": candidate_metrics, "gate": gate.as_dict(), **calibration, **family},
                training={
                    "train_examples": len(train),
                    "heldout_examples": len(held),
                    "heldout_task_ids": sorted(ex.task_id for ex in held if ex.task_id is not None),
                    "pull_s": round(pulled_s, 3),
                    "train_s": round(trained_s - pulled_s, 3),
                },
                fine_tuned=kind == "full" and spec.modality == "text",
                expected_current=serving_version,
            )  # fmt: skip
            break
        except BaselineChanged as exc:  # another retrain published meanwhile: judge against that one
            outcome = "re-gating" if attempt < PUBLISH_ATTEMPTS else "dropped"
            ctx.audit.record_version(project_id, f"superseded-{int(time.time() * 1000)}", kind, False,
                                     len(data.examples), fp, candidate_metrics,
                                     {**gate.as_dict(), "passed": False, "reason": f"{exc}: {outcome}"})  # fmt: skip
            log.info("project %s: %s; %s", project_id, exc, outcome)
    else:
        summary.update(published=False, reason="the serving version kept changing during the gate: dropped")
        return summary
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


def _meta(registry: Registry, project_id: int, version: str | None) -> dict[str, Any] | None:
    try:
        return registry.meta(str(project_id), version) if version else None
    except (RegistryError, OSError, ValueError):
        return None


def _labels(examples: list[Example]) -> set[str]:
    return {label for ex in examples for label in ex.labels}


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
        return current, None  # still the baseline of the compare-and-swap
    if isinstance(classifier, SpanTagger):
        if classifier.encoder is ctx.encoder:
            classifier.cache = ctx.word_states()
        return current, evaluate_spans([t.spans for t in classifier.tag([ex.text for ex in held])], held)
    cache = ctx.cache_for(spec)
    if classifier.encoder is cache.encoder:
        held, x_held = embed_readable(cache, held)  # the same unreadable inputs the candidate left out
        probs = classifier.head.proba(x_held)
    else:
        probs = classifier.predict_proba([ex.text for ex in held])
    return current, evaluate(probs, held, spec, ctx.settings.multilabel_threshold)
