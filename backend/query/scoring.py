"""The serving version's view of the pool: which query strategy ranks it, the version's
probabilities on it (NER: its weakest words), and the calibrated confidence each pre-annotation
carries. After a head retrain scoring is cache lookups and a matrix product; a fine-tuned encoder
reads its own cache, and a large pool it has not embedded waits for the slow worker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from backend.labeling import TaskSpec
from backend.models import uncertainty
from backend.models.classifier import TextClassifier
from backend.models.embedding_cache import EmbeddingCache
from backend.models.plugin_model import PluginClassifier
from backend.models.tagger import SpanTagger, Tagged, answer_confidence, weakest_words
from backend.query.pool import Pool
from backend.query.strategies import ColdStartStrategy, Strategy, make_strategy
from backend.serving.predictor import ServingVersion, class_probabilities, own_cache
from backend.settings import Settings

log = logging.getLogger(__name__)


def strategy_for(
    settings: Settings, spec: TaskSpec, serving: ServingVersion, name: str | None, project_id: int
) -> Strategy:
    """The query strategy asked for (``HITL_SYNC_STRATEGY`` by default); coverage in a cold start."""
    if serving.model is None:
        return ColdStartStrategy()
    name = name or settings.sync_strategy
    if name == "badge" and (spec.multi_label or spec.is_ner):  # the setting is global; BADGE is single-label
        log.warning("project %s: strategy badge is for single-label projects; margin ranks this one", project_id)
        name = "margin"
    return make_strategy(name, spec.multi_label, batch=settings.sync_diverse_top)


def score_pool(
    settings: Settings,
    spec: TaskSpec,
    classifier: Any,
    cache: EmbeddingCache,
    pool: Pool,
    strategy: Strategy,
    progress: bool,
    defer_embedding: Callable[[int, int], str] | None,
) -> tuple[np.ndarray | None, list[Tagged] | None, EmbeddingCache, bool] | str:
    """The serving version's probabilities on the pool (NER: its weakest words' tags), the cache of
    the encoder it runs on and whether that is fine-tuned; or, for a new encoder that has not seen
    most of a large pool, what was done instead (``defer_embedding``)."""
    if isinstance(classifier, SpanTagger):  # NER: a task is as uncertain as its weakest word (see models/tagger.py)
        tagged = classifier.tag(pool.texts)
        return (
            weakest_words(tagged, getattr(strategy, "measure", settings.uncertainty), len(spec.tags)),
            tagged,
            cache,
            False,
        )
    if isinstance(classifier, PluginClassifier):  # the operator's model; the pool's vectors stay the base encoder's
        return classifier.predict_proba(pool.texts), None, cache, False
    if not isinstance(classifier, TextClassifier):
        return None, None, cache, False
    own = own_cache(classifier, cache)  # a fine-tuned encoder's embeddings have a cache of their own
    weights = getattr(classifier.encoder, "float_weights", classifier.encoder)  # an image encoder has no int8
    fine_tuned = weights.identity != cache.encoder.identity  # a new encoder, not the base's int8 twin
    if fine_tuned and defer_embedding is not None:  # a new encoder: minutes for a large pool
        missing = own.missing(pool.texts)
        if missing > settings.sync_embed_limit:
            return defer_embedding(missing, len(pool))
    if own is not cache:  # the new encoder's pass, through its cache (a progress bar on the CLI)
        own.embed_readable(pool.texts, progress)
    probs = class_probabilities(classifier, pool.texts, own, pool.embeddings if own is cache else None)
    return probs, None, own, fine_tuned


def confidence_of(
    spec: TaskSpec, model: Any, probs: np.ndarray | None, tagged: list[Tagged] | None, n: int
) -> np.ndarray:
    """The calibrated confidence of each pre-annotation: the ``score`` annotators see beside it
    (0 in a cold start, where there is no pre-annotation)."""
    if tagged is not None:
        return answer_confidence(tagged)
    if model is None or probs is None:
        return np.zeros(n)
    return uncertainty.confidence(probs, spec.multi_label)
