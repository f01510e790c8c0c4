"""A retrain's candidate for each task kind: fit it, score it on the held-out annotations, and
(only if the gate lets it ship) calibrate it and find its routing threshold.

``jobs/retrain.py`` runs the job around these: pull, split, gate, publish.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from backend.calibration import (
    cross_fit_temperature,
    expected_calibration_error,
    fit_temperature,
    precision_threshold,
    reliability,
    routing_threshold,
    softmax,
)
from backend.gate import evaluate, evaluate_spans
from backend.labeling import TaskError, TaskSpec
from backend.models.embedding_cache import EmbeddingCache
from backend.models.finetune import finetune
from backend.models.head import LinearHead
from backend.models.head_selection import fit_selected_head
from backend.models.tagger import SpanTagger, answer_confidence, finetune_tagger, fit_tagger, tag_ids
from backend.settings import Settings
from backend.training import Example, targets

if TYPE_CHECKING:
    from backend.jobs.retrain import WorkerContext

log = logging.getLogger(__name__)


def fit_classifier_candidate(ctx: WorkerContext, spec: TaskSpec, kind: str, train: list[Example], held: list[Example]):  # type: ignore[no-untyped-def]
    """Candidate head (on a fine-tuned encoder for ``full``), its held-out metrics, and a deferred
    calibration step (run only for a candidate that passes the gate)."""
    settings = ctx.settings
    cache = ctx.cache_for(spec)
    encoder = cache.encoder
    if kind == "full" and spec.modality == "text":  # image encoders are not fine-tuned (yet): the head is
        encoder = finetune(ctx.encoder, spec, train, epochs=settings.finetune_epochs, seed=0)
        x_train, x_held = encoder.embed([ex.text for ex in train]), encoder.embed([ex.text for ex in held])
    else:
        train, x_train = embed_readable(cache, train)
        held, x_held = embed_readable(cache, held)
    y_train = targets(train, spec)
    y_held = targets(held, spec)
    choice = fit_selected_head(x_train, y_train, x_held, y_held, len(spec.labels), spec.multi_label)
    head = choice.head
    metrics = evaluate(head.proba(x_held), held, spec, settings.multilabel_threshold)

    def calibrate_candidate() -> dict[str, Any]:
        return {"head": choice.as_dict(), **calibrate(head, spec, x_train, y_train, x_held, held, settings,
                                                      l2=choice.l2)}  # fmt: skip

    return head, encoder, metrics, calibrate_candidate


def embed_readable(cache: EmbeddingCache, examples: list[Example]) -> tuple[list[Example], np.ndarray]:
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


def fit_tagger_candidate(ctx: WorkerContext, spec: TaskSpec, kind: str, train: list[Example], held: list[Example]):  # type: ignore[no-untyped-def]
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


def calibrate(head: LinearHead, spec, x_train, y_train, x_held, held, settings: Settings,  # type: ignore[no-untyped-def]
              l2: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Temperature-scale ``head`` in place and find the routing threshold (single-label only).
    ``l2``: the head's penalty, for the cross-fitted heads of a small project."""
    if spec.multi_label or len(y_train) < 10:
        return {}
    y_held = targets(held, spec)
    held_logits = head.logits(x_held) if len(held) else None
    t = cross_fit_temperature(x_train, y_train, len(spec.labels), held_logits, y_held if len(held) else None, l2=l2)
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
