"""Small model plug-ins for the tests: a word-centroid classifier that works, and ones that fail
in each way the loop must survive (``backend/plugin.py``)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from backend.plugin import ClassifierPlugin


class WordCentroids(ClassifierPlugin):
    """Per class, how often each word appears; a text's probabilities: softmax of its word overlaps."""

    def __init__(self, classes: Sequence[str]) -> None:
        super().__init__(classes)
        self.counts: dict[str, list[float]] = {}

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        self.counts = {}
        for text, label in zip(texts, labels, strict=True):
            for word in set(re.findall(r"\w+", text.lower())):
                self.counts.setdefault(word, [0.0] * len(self.classes))[self.classes.index(label)] += 1

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            z = np.zeros(len(self.classes))
            for word in set(re.findall(r"\w+", text.lower())):
                z += np.log1p(self.counts.get(word, [0.0] * len(self.classes)))
            e = np.exp(z - z.max())
            rows.append(e / e.sum())
        return np.array(rows).reshape(len(texts), len(self.classes))

    def save(self, folder: Path) -> None:
        (folder / "counts.json").write_text(json.dumps(self.counts))

    @classmethod
    def load(cls, folder: Path, classes: Sequence[str]) -> WordCentroids:
        plugin = cls(classes)
        plugin.counts = json.loads((folder / "counts.json").read_text())
        return plugin


class FitRaises(WordCentroids):
    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        raise ValueError("the model's own bug")


class FitHangs(WordCentroids):
    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        time.sleep(30)


class WrongShape(WordCentroids):
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return super().predict_proba(texts)[:, :-1]


class GivesNaN(WordCentroids):
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        probs = super().predict_proba(texts)
        probs[:, 0] = np.nan
        return probs


class FailsOnBoom(WordCentroids):
    """Answers every text but those that say "boom": one bad task among good ones."""

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if any("boom" in text for text in texts):
            raise RuntimeError("cannot read this one")
        return super().predict_proba(texts)


class NotAPlugin:
    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None: ...


class SlowOnCue(WordCentroids):
    """WordCentroids that takes its time while the JSON file named by HITL_TEST_CUE exists: ``fit``
    sleeps ``fit_s`` seconds and ``save`` adds ``pad_mb`` MiB to the version (a long upload), so a
    test can kill a host in the middle of a retrain or of a publish."""

    @staticmethod
    def _cue() -> dict:
        import os

        try:
            return json.loads(Path(os.environ["HITL_TEST_CUE"]).read_text())
        except (KeyError, OSError, ValueError):
            return {}

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        time.sleep(float(self._cue().get("fit_s", 0)))
        super().fit(texts, labels)

    def save(self, folder: Path) -> None:
        super().save(folder)
        pad = int(self._cue().get("pad_mb", 0))
        if pad:
            (folder / "padding.bin").write_bytes(np.random.default_rng(0).bytes(pad * 2**20))
