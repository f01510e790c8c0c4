"""A second opinion on the queue's head once a fine-tuned encoder serves: the project's last head
on the base encoder.

Where the fine-tuned model and that head answer differently, one of them learned the task wrong,
and an annotator's label settles which (the two-member committee of query-by-committee). The sync
says so in the task's reason (``serving/reasons.py`` ``Why.DISAGREE``); the ranking is unchanged.
The head reads the base encoder's float embeddings the sync already has for the clusters, so the
second opinion costs one matrix product; a head that was fitted on int8 embeddings reads them as
float here, which can move a near tie but not a clear answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.ids import ProjectId
from backend.labeling import TaskSpec
from backend.models.classifier import TextClassifier
from backend.monitoring import SECOND_OPINION, Finding
from backend.serving.predictor import load_serving
from backend.stores.registry import Registry, RegistryError


@dataclass(frozen=True)
class SecondOpinion:
    version: str  # the base-encoder head's version
    labels: np.ndarray  # its answer (label index) for each task, in the sync's order


def base_head_opinion(
    registry: Registry, project_id: ProjectId, spec: TaskSpec, base_encoder: object, embeddings: np.ndarray
) -> SecondOpinion | None:
    """The newest published single-label head on the base encoder, applied to the base encoder's
    ``embeddings`` of the pool; None when there is none (no fine-tune yet serves, or a new label set)."""
    if spec.multi_label or spec.is_ner or spec.modality != "text":
        return None
    for version in reversed(registry.versions(project_id)):
        try:
            encoder = registry.meta(project_id, version).get("encoder") or {}
        except (RegistryError, OSError, ValueError):  # an unreadable version is skipped, never fatal to a sync
            continue
        if encoder.get("source") != "base":
            continue
        loaded = load_serving(registry, project_id, spec, base_encoder, version)
        if not isinstance(loaded.model, TextClassifier):
            return None  # trained for another label set, or unreadable: no opinion rather than a wrong one
        return SecondOpinion(version, loaded.model.head.proba(embeddings).argmax(axis=1))
    return None


def disagreements(served_probs: np.ndarray, opinion: SecondOpinion | None) -> np.ndarray:
    """Where the serving model's top label differs from the second opinion's."""
    if opinion is None:
        return np.zeros(len(served_probs), dtype=bool)
    return served_probs.argmax(axis=1) != opinion.labels


def disagreement_finding(disagree: np.ndarray, opinion: SecondOpinion) -> Finding:
    """How many tasks of the pool the two models answer differently (they lead the queue's head)."""
    n = int(np.sum(disagree))
    line = f"{n} tasks where the fine-tuned model and the base encoder's head ({opinion.version}) disagree"
    return Finding(SECOND_OPINION, False, line, {"tasks": n, "base_version": opinion.version})
