"""What a model's output becomes in Label Studio: the pre-annotation ``result`` (built here for both
``/predict`` and the sync's bulk writes) and, for ``/predict``, the whole prediction item."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from backend.labeling import TaskSpec, choices_result, labels_from_result
from backend.labeling.spans import spans_result
from backend.models import uncertainty
from backend.models.classifier import TextClassifier
from backend.models.plugin_model import PluginClassifier
from backend.models.tagger import SpanTagger, Tagged, answer_confidence, weakest_words
from backend.serving.presentation import Presentation, header, present, shown_score
from backend.serving.routing import RoutingPolicy, route


def results(
    spec: TaskSpec,
    model: TextClassifier | SpanTagger | PluginClassifier,
    texts: Sequence[str],
    probs: np.ndarray | None = None,
    tagged: Sequence[Tagged] | None = None,
    threshold: float = 0.5,
) -> Sequence[list[dict[str, Any]]]:
    """The pre-annotation of each text: its entities (NER, from ``tagged``) or its choices (``probs``)."""
    if tagged is not None:
        return [spans_result(spec, t.spans, text) for t, text in zip(tagged, texts, strict=True)]
    assert isinstance(model, TextClassifier | PluginClassifier) and probs is not None
    return ChoiceResults(spec, model.decide(probs, threshold))


class ChoiceResults(Sequence[list[dict[str, Any]]]):
    """Each text's choices result, built when it is read: a sync of a large pool reads only those it
    writes or words a header for."""

    def __init__(self, spec: TaskSpec, decided: list[list[str]]) -> None:
        self.spec, self.decided = spec, decided

    def __len__(self) -> int:
        return len(self.decided)

    def __getitem__(self, row: int) -> list[dict[str, Any]]:  # type: ignore[override]
        return choices_result(self.spec, self.decided[row])


def classification_items(
    spec: TaskSpec,
    model: TextClassifier | PluginClassifier,
    label: str,
    probs: np.ndarray,
    threshold: float,
    policy: RoutingPolicy,
    task_ids: Sequence[int | None] | None = None,
) -> list[dict[str, Any]]:
    """``/predict`` items: the choices, their calibrated confidence as ``score``, every uncertainty
    measure, why a person should (or need not) look (``hitl_reason``), and ``auto_accept`` when the
    version has a routing threshold (single-label only; false for held-out tasks and audit samples,
    ``serving/routing.py``)."""
    scores = uncertainty.confidence(probs, model.multi_label)
    measures = uncertainty.all_measures(probs, model.multi_label)
    answers = results(spec, model, [""] * len(probs), probs=probs, threshold=threshold)
    if model.multi_label:  # a multi-label answer is never routed past review
        policy = dataclasses.replace(
            policy, threshold=None, no_threshold="a multi-label answer always goes to a person"
        )
    ids = task_ids if task_ids is not None else [None] * len(probs)
    return [
        _routed(spec, _item(result, scores[row], label, measures, row), float(scores[row]), ids[row], policy)
        for row, result in enumerate(answers)
    ]


def span_items(
    spec: TaskSpec,
    tagger: SpanTagger,
    label: str,
    texts: Sequence[str],
    measure: str,
    policy: RoutingPolicy,
    task_ids: Sequence[int | None] | None = None,
) -> list[dict[str, Any]]:
    """NER ``/predict`` items: one region per entity with its own score; the task's score is the
    confidence that the whole answer is right (its least sure word's); ``hitl_reason`` and
    ``auto_accept`` as for classification."""
    tagged = tagger.tag(list(texts))
    weakest = weakest_words(tagged, measure, len(tagger.tags))
    measures = uncertainty.all_measures(weakest)
    scores = confidence = answer_confidence(tagged)
    ids = task_ids if task_ids is not None else [None] * len(texts)
    return [
        _routed(spec, _item(result, scores[row], label, measures, row), float(confidence[row]), ids[row], policy)
        for row, result in enumerate(results(spec, tagger, texts, tagged=tagged))
    ]


def _routed(
    spec: TaskSpec, item: dict[str, Any], confidence: float, task_id: int | None, policy: RoutingPolicy
) -> dict[str, Any]:
    """Route the item, and show it as the presentation policy says: the answer stays in the result
    only where it is pre-selected; the header names the leaning where it is not (none when blind)."""
    routed = route(confidence, task_id, policy)
    shown = present(confidence, routed.blind, policy.preselect_level)
    lean = leaning(spec, item["result"])
    item["hitl_answer"] = item["result"]  # the model's answer for API clients (Label Studio keeps only result)
    if shown != Presentation.PRESELECT:
        item["result"] = []
    item["hitl_presentation"] = shown.value
    item["hitl_reason"] = routed.reason
    item["hitl_header"] = header(shown, None if shown == Presentation.BLIND else lean, item["score"], routed.reason)
    if policy.threshold is not None:
        item["auto_accept"] = routed.auto_accept
    return item


def leaning(spec: TaskSpec, result: list[dict[str, Any]]) -> str | None:
    """The model's answer in words: its choices, or how many entities it marks."""
    if spec.is_ner:
        return f"{len(result)} entit{'y' if len(result) == 1 else 'ies'} marked" if result else "no entity"
    labels = labels_from_result(spec, result)
    return ", ".join(labels) if labels else None


def _item(
    result: list[dict[str, Any]], score: float, label: str, measures: dict[str, np.ndarray], row: int
) -> dict[str, Any]:
    return {
        "result": result,
        "score": shown_score(score),  # what the header reads out (serving/presentation.py)
        "model_version": label,
        "uncertainty": {name: round(float(v[row]), 6) for name, v in measures.items()},
    }
