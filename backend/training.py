"""Training examples → a fitted head → a published registry version (the fast path of learning)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.labeling.spans import Span
from backend.labeling.spec import TaskSpec
from backend.models.encoder import TextEncoder
from backend.models.head import LinearHead
from backend.models.persist import write_version
from backend.registry import ANY_BASELINE, Registry


@dataclass(frozen=True)
class Example:
    text: str
    labels: tuple[str, ...]
    task_id: int | None = None
    annotation_id: int | None = None
    spans: tuple[Span, ...] = ()  # NER: the entities; ``labels`` then holds their types


def targets(examples: Sequence[Example], spec: TaskSpec) -> np.ndarray:
    """Class indices (single-label) or a 0/1 matrix (multi-label) in the spec's label order."""
    index = {label: i for i, label in enumerate(spec.labels)}
    if spec.multi_label:
        y = np.zeros((len(examples), len(spec.labels)), dtype=np.float32)
        for row, ex in enumerate(examples):
            for label in ex.labels:
                y[row, index[label]] = 1.0
        return y
    return np.array([index[ex.labels[0]] for ex in examples], dtype=np.int64)


def fingerprint(examples: Sequence[Example]) -> str:
    """Order-independent hash of the training set: which texts with which labels."""
    digest = hashlib.sha256()
    def row(ex: Example) -> str:
        spans = "|".join(f"{s.start}:{s.end}:{s.label}" for s in sorted(ex.spans, key=lambda s: s.key))
        return f"{ex.task_id}\x1f{ex.text}\x1f{'|'.join(sorted(ex.labels))}\x1f{spans}"

    for row_text in sorted(row(ex) for ex in examples):
        digest.update(row_text.encode())
        digest.update(b"\x1e")
    return digest.hexdigest()[:16]


def fit_head(
    encoder: TextEncoder, spec: TaskSpec, examples: Sequence[Example], embeddings: np.ndarray | None = None
) -> LinearHead:
    if embeddings is None:
        embeddings = encoder.embed([ex.text for ex in examples])
    return LinearHead.fit(embeddings, targets(examples, spec), len(spec.labels), spec.multi_label)


def publish_head(
    registry: Registry,
    project: str,
    spec: TaskSpec,
    encoder: TextEncoder,
    head: LinearHead,
    examples: Sequence[Example],
    extra: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    fine_tuned: bool = False,
    make_current: bool = True,
    expected_current: str | object | None = ANY_BASELINE,
) -> str:
    """Publish ``head`` (and the encoder, when fine-tuned) as a new version; ``examples`` are the
    annotations this version accounts for, ``training`` adds to its training record."""

    def write(folder):  # type: ignore[no-untyped-def]
        meta = write_version(folder, head, spec, encoder, fine_tuned=fine_tuned)
        meta["training"] = {
            "kind": "full" if fine_tuned else "head",
            "examples": len(examples),
            "fingerprint": fingerprint(examples),
            "task_ids": sorted({ex.task_id for ex in examples if ex.task_id is not None}),
            "annotation_ids": sorted({ex.annotation_id for ex in examples if ex.annotation_id is not None}),
            **(training or {}),
        }
        meta.update(extra or {})
        return meta

    return registry.publish(project, write, make_current=make_current, expected_current=expected_current)
