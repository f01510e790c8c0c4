"""Does newly imported data look like the data the project started with? The sync keeps, per
project, a reference sample of the pool from its first scored sync, and tests every batch of
tasks that arrived since (task ids above the last one checked) once it has ``HITL_DRIFT_WINDOW``
of them (``monitoring.drift``: calibrated outputs and embeddings). Fresh arrivals are tested before
annotators deplete them, so the queue's own selection does not look like drift. After an alarm
the drifted window's tasks become drift probes: the sync interleaves them into the queue so
humans label some of the new data first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from backend.models.classifier import TextClassifier
from backend.models.embedding_cache import EmbeddingCache
from backend.models.plugin_model import PluginClassifier
from backend.monitoring import INPUT_DRIFT, Finding
from backend.monitoring.drift import DriftDetector, DriftResult
from backend.serving.predictor import class_probabilities
from backend.settings import Settings
from backend.stores.documents import Documents

REFERENCE_SIZE = 500


class DriftMonitor:
    """The project's drift reference and progress, kept in ``documents`` (kind "drift")."""

    def __init__(self, documents: Documents, project: int, encoder: str) -> None:
        self.documents, self.project, self.encoder = documents, project, encoder
        self.state = self._load()

    def _load(self) -> dict:
        state = self.documents.read(self.project) or {}
        return state if state.get("encoder") == self.encoder else {}  # another encoder: a new reference

    def _save(self) -> None:
        self.documents.write(self.project, self.state)

    @property
    def probes(self) -> set[int]:
        """Tasks of the last window that raised an alarm (empty when the last check found none)."""
        return set(self.state.get("probes") or [])

    def check(
        self,
        ids: Sequence[int],
        texts: Sequence[str],
        embeddings: np.ndarray,
        probs: np.ndarray,
        embed: Callable[[list[str]], np.ndarray],
        probabilities: Callable[[list[str]], np.ndarray],
        window: int,
        alpha: float,
    ) -> DriftResult | None:
        """Test the tasks that arrived since the last check, once there are ``window`` of them;
        the first call takes the reference instead. ``embed`` (the cache) and ``probabilities``
        (the model serving now, as for the window's ``probs``) score the reference's texts."""
        task_ids = np.asarray(ids)
        if not self.state:
            keep = np.random.default_rng(self.project).permutation(len(task_ids))[:REFERENCE_SIZE]
            self.state = {
                "encoder": self.encoder,
                "reference_texts": [texts[i] for i in keep],
                "checked_up_to": int(task_ids.max(initial=0)),
                "probes": [],
            }
            self._save()
            return None
        fresh = np.flatnonzero(task_ids > self.state["checked_up_to"])
        if len(fresh) < window:
            return None
        fresh = fresh[np.argsort(task_ids[fresh])][-window:]  # the latest arrivals
        result = self._detector(embed, probabilities, alpha).test(probs[fresh], embeddings[fresh])
        self.state["checked_up_to"] = int(task_ids.max())
        self.state["probes"] = task_ids[fresh].tolist() if result.alarm else []
        self._save()
        return result

    def check_inputs(
        self,
        texts: list[str],
        embed: Callable[[list[str]], np.ndarray],
        probabilities: Callable[[list[str]], np.ndarray],
        alpha: float,
    ) -> DriftResult | None:
        """Test a window of ``/predict`` inputs (``jobs/inputs.py``) against the reference (None
        before the reference is taken)."""
        if not self.state or not texts:
            return None
        result = self._detector(embed, probabilities, alpha).test(probabilities(texts), embed(texts))
        self.state["inputs_alarm"] = bool(result.alarm)
        self._save()
        return result

    @property
    def alarmed(self) -> bool:
        """The last check of imported tasks or of ``/predict`` inputs found drift."""
        return bool(self.probes) or bool(self.state.get("inputs_alarm"))

    def _detector(
        self, embed: Callable[[list[str]], np.ndarray], probabilities: Callable[[list[str]], np.ndarray], alpha: float
    ) -> DriftDetector:
        reference_texts = list(self.state["reference_texts"])
        return DriftDetector(probabilities(reference_texts), embed(reference_texts), alpha=alpha, seed=self.project)


def check_pool(
    settings: Settings,
    project_id: int,
    cache: EmbeddingCache,
    classifier: TextClassifier | PluginClassifier,
    own: EmbeddingCache,
    ids: Sequence[int],
    texts: Sequence[str],
    embeddings: np.ndarray,
    probs: np.ndarray | None,
    predict_inputs: Callable[[], list[str]] | None,
) -> tuple[set[int], bool, list[Finding]]:
    """The sync's drift checks: of the pool's newly arrived tasks, and of ``/predict``'s latest
    inputs; the tasks to probe, whether the last check alarmed (then humans review more), and what
    was found."""
    monitor = DriftMonitor(Documents.for_settings(settings, "drift"), project_id, cache.encoder.identity)

    def predict(batch: list[str]) -> np.ndarray:
        return class_probabilities(classifier, batch, own)

    found = []
    drift = monitor.check(
        ids, texts, embeddings, probs, cache.embed, predict, settings.drift_window, settings.drift_alpha
    )
    if drift is not None:
        found.append(drift.finding())
    if predict_inputs is not None and monitor.state:
        asked = monitor.check_inputs(predict_inputs(), cache.embed, predict, settings.drift_alpha)
        if asked is not None:
            found.append(asked.finding(INPUT_DRIFT))
    return monitor.probes, monitor.alarmed, found
