"""A text classifier = a shared encoder + a light head, with the label names in head order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backend.models.encoder import TextEncoder
from backend.models.head import LinearHead


@dataclass
class TextClassifier:
    encoder: TextEncoder
    head: LinearHead
    labels: tuple[str, ...]

    @property
    def multi_label(self) -> bool:
        return self.head.multi_label

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities (n, k) in ``labels`` order."""
        return self.head.proba(self.encoder.embed(texts))

    def decide(self, probs: np.ndarray, threshold: float = 0.5) -> list[list[str]]:
        """The labels to pre-annotate: argmax, or every label above ``threshold`` for multi-label."""
        if self.multi_label:
            return [[self.labels[j] for j in np.flatnonzero(row >= threshold)] for row in probs]
        return [[self.labels[int(j)]] for j in probs.argmax(axis=1)]
