"""What learning is made of: an annotated task as an ``Example``, its targets, and a fingerprint of a
training set (below the models and learning layers, which both use them)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backend.labeling.spans import Span
from backend.labeling.spec import TaskSpec


@dataclass(frozen=True)
class Example:
    text: str
    labels: tuple[str, ...]
    task_id: int | None = None
    annotation_id: int | None = None
    spans: tuple[Span, ...] = ()  # NER: the entities; ``labels`` then holds their types
    slices: tuple[tuple[str, str], ...] = ()  # (task-data field, value) for the fields slices are named by


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
