"""What a model's output becomes in Label Studio: the pre-annotation ``result`` (built here for both
``/predict`` and the sync's bulk writes) and, for ``/predict``, the whole prediction item."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from backend.labeling import TaskSpec, choices_result
from backend.labeling.spans import spans_result
from backend.models import uncertainty
from backend.models.classifier import TextClassifier
from backend.models.tagger import SpanTagger, Tagged, answer_confidence, weakest_words
from backend.serving.routing import route


def results(
    spec: TaskSpec,
    model: TextClassifier | SpanTagger,
    texts: Sequence[str],
    probs: np.ndarray | None = None,
    tagged: Sequence[Tagged] | None = None,
    threshold: float = 0.5,
) -> list[list[dict[str, Any]]]:
    """The pre-annotation of each text: its entities (NER, from ``tagged``) or its choices (``probs``)."""
    if tagged is not None:
        return [spans_result(spec, t.spans, text) for t, text in zip(tagged, texts, strict=True)]
    assert isinstance(model, TextClassifier) and probs is not None
    return [choices_result(spec, labels) for labels in model.decide(probs, threshold)]


def classification_items(
    spec: TaskSpec,
    model: TextClassifier,
    label: str,
    probs: np.ndarray,
    threshold: float,
    accept_threshold: float | None,
    task_ids: Sequence[int | None] | None = None,
    audit_share: float = 0.0,
) -> list[dict[str, Any]]:
    """``/predict`` items: the choices, their calibrated confidence as ``score``, every uncertainty
    measure, why a person should (or need not) look (``hitl_reason``), and ``auto_accept`` when the
    version has a routing threshold (single-label only; false for the tasks drawn as audit samples)."""
    scores = uncertainty.confidence(probs, model.multi_label)
    measures = uncertainty.all_measures(probs, model.multi_label)
    answers = results(spec, model, [""] * len(probs), probs=probs, threshold=threshold)
    accept = None if model.multi_label else accept_threshold
    ids = task_ids if task_ids is not None else [None] * len(probs)
    return [_routed(_item(result, scores[row], label, measures, row), float(scores[row]), accept, ids[row],
                    audit_share) for row, result in enumerate(answers)]  # fmt: skip


def span_items(
    spec: TaskSpec,
    tagger: SpanTagger,
    label: str,
    texts: Sequence[str],
    measure: str,
    accept_threshold: float | None,
    task_ids: Sequence[int | None] | None = None,
    audit_share: float = 0.0,
) -> list[dict[str, Any]]:
    """NER ``/predict`` items: one region per entity with its own score; the task's score is the
    confidence that the whole answer is right (its least sure word's); ``auto_accept`` when that is
    above the routing threshold."""
    tagged = tagger.tag(list(texts))
    weakest = weakest_words(tagged, measure, len(tagger.tags))
    measures = uncertainty.all_measures(weakest)
    scores = confidence = answer_confidence(tagged)
    ids = task_ids if task_ids is not None else [None] * len(texts)
    return [_routed(_item(result, scores[row], label, measures, row), float(confidence[row]), accept_threshold,
                    ids[row], audit_share)
            for row, result in enumerate(results(spec, tagger, texts, tagged=tagged))]  # fmt: skip


def _routed(
    item: dict[str, Any], confidence: float, accept_threshold: float | None, task_id: int | None, audit_share: float
) -> dict[str, Any]:
    routed = route(confidence, accept_threshold, task_id, audit_share)
    item["hitl_reason"] = routed.reason
    if accept_threshold is not None:
        item["auto_accept"] = routed.auto_accept
    return item


def _item(
    result: list[dict[str, Any]], score: float, label: str, measures: dict[str, np.ndarray], row: int
) -> dict[str, Any]:
    return {
        "result": result,
        "score": round(float(score), 6),
        "model_version": label,
        "uncertainty": {name: round(float(v[row]), 6) for name, v in measures.items()},
    }
