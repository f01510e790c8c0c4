"""The serving version of a project: the one place that loads it and runs it on inputs.

The server (per request, cached in memory by ``predictor.py``), the sync (per pool) and the gate
(the baseline a candidate must beat) all go through ``load_serving``, so the three agree on what
"serving" means: the registry's CURRENT version, checked against the project's labeling config
and base encoder, or cold start when there is none or it cannot be read.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.ids import ProjectId
from backend.labeling import TaskSpec
from backend.models.classifier import TextClassifier
from backend.models.embedding_cache import EmbeddingCache
from backend.models.persist import Model, load_version
from backend.models.tagger import SpanTagger
from backend.models.word_state_cache import WordStateCache
from backend.stores.registry import COLD_START, Registry, served_name

log = logging.getLogger(__name__)


@dataclass
class ServingVersion:
    """A loaded version (``model`` None = cold start, or a version whose files cannot serve)."""

    version: str  # the registry's name, or COLD_START
    model: Model | None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # why a version that exists cannot serve

    @property
    def label(self) -> str:
        """The name Label Studio sees: the version's family (``registry.served_name``)."""
        return served_name(self.meta) if self.model is not None and self.meta else COLD_START

    @property
    def accept_threshold(self) -> float | None:
        """Calibrated confidence at or above which review may be skipped (None: never)."""
        return (self.meta.get("routing") or {}).get("threshold")


def load_serving(
    registry: Registry, project: ProjectId, spec: TaskSpec, base: Any, version: str | None = None
) -> ServingVersion:
    """The project's current version (or ``version``) on the ``base`` encoder, never raising for a
    version that cannot serve: that comes back with ``model`` None and the reason in ``error``."""
    version = version or registry.current(project)
    if version is None or version == COLD_START:
        return ServingVersion(COLD_START, None)
    meta: dict[str, Any] = {}
    try:
        meta = registry.meta(project, version)
        model = load_version(registry.version_dir(project, version), meta, spec, base)
    except Exception as exc:  # a broken or incompatible version never fails a request or a job
        log.warning("project %s: version %s cannot serve: %s", project, version, exc)
        return ServingVersion(version, None, meta, error=str(exc))
    return ServingVersion(version, model, meta)


def use_caches(model: Model, cache: EmbeddingCache, word_states: WordStateCache | None = None) -> None:
    """Let a version that runs on the cached base encoder (a head-only version) read its inputs
    from the caches: after a head retrain, scoring a pool is lookups and a matrix product."""
    if isinstance(model, SpanTagger) and model.encoder is cache.encoder:
        model.cache = word_states or WordStateCache(cache.folder, cache.encoder.identity, cache.encoder.dim)


def class_probabilities(
    model: TextClassifier,
    texts: Sequence[str],
    cache: EmbeddingCache | None = None,
    embeddings: np.ndarray | None = None,
) -> np.ndarray:
    """Class probabilities, from the cache's ``embeddings`` of ``texts`` when the version runs on
    the cached encoder, else from its own (fine-tuned) encoder."""
    if cache is not None and model.encoder is cache.encoder:
        return model.head.proba(cache.embed(list(texts)) if embeddings is None else embeddings)
    return model.predict_proba(list(texts))
