"""The bundled model written as a plug-in: the MiniLM encoder (HITL_MODEL_NAME) with a logistic
head, through the same interface as any other model. It shows the interface carries a model with
vectors of its own (``embed``); the backend's built-in path adds what a plug-in does not get:
int8, fine-tuning and the embedding cache.

    HITL_MODEL=examples.bundled_encoder.model:EncoderWithHead hitl run
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from backend.models.encoder import encoder_from_settings
from backend.models.head import LinearHead
from backend.plugin import ClassifierPlugin
from backend.settings import get_settings

HEAD_FILE = "head.safetensors"


class EncoderWithHead(ClassifierPlugin):
    def __init__(self, classes: Sequence[str]) -> None:
        super().__init__(classes)
        self.encoder = encoder_from_settings(get_settings())
        self.head: LinearHead | None = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.embed(list(texts))

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        y = np.array([self.classes.index(label) for label in labels])
        self.head = LinearHead.fit(self.embed(texts), y, len(self.classes), multi_label=False)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        assert self.head is not None, "fit or load first"
        return self.head.proba(self.embed(texts))

    def save(self, folder: Path) -> None:
        assert self.head is not None, "fit first"
        self.head.save(folder / HEAD_FILE)

    @classmethod
    def load(cls, folder: Path, classes: Sequence[str]) -> EncoderWithHead:
        plugin = cls(classes)
        plugin.head = LinearHead.load(folder / HEAD_FILE)
        return plugin
