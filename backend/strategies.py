"""Query strategies: which unlabeled task should a human see next?

Each strategy is a small class behind one interface: ``rank`` orders a pool (most informative
first) from the model's probabilities and the tasks' embeddings. ``scores`` turns that order into
the ``score`` Label Studio sorts on (lower = sooner).

Uncertainty strategies score with the same measure as /predict (``1 - uncertainty``), so a
prediction written by the sync and one fetched by Label Studio through /predict sort alike.
Diversity for the top of the queue comes from ``cluster`` ids (see ``clusters.py``): Label
Studio's uncertainty sampling serves an annotator the lowest score among the clusters they have
labeled least, so consecutive tasks come from different regions of the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from backend import uncertainty


class Strategy(Protocol):
    name: str
    needs_model: bool

    def scores(self, probs: np.ndarray | None, embeddings: np.ndarray, task_ids: np.ndarray) -> np.ndarray: ...


def rank(strategy: Strategy, probs: np.ndarray | None, embeddings: np.ndarray, task_ids: np.ndarray) -> np.ndarray:
    """Pool indices in serving order (stable: ties keep task-id order)."""
    scores = strategy.scores(probs, embeddings, task_ids)
    return np.lexsort((task_ids, scores))


@dataclass
class UncertaintyStrategy:
    measure: str = "margin"
    multi_label: bool = False
    needs_model: ClassVar[bool] = True

    @property
    def name(self) -> str:
        return self.measure

    def scores(self, probs: np.ndarray | None, embeddings: np.ndarray, task_ids: np.ndarray) -> np.ndarray:
        if probs is None:
            raise ValueError(f"strategy {self.name!r} needs a trained model")
        return uncertainty.served_score(probs, self.measure, self.multi_label)


@dataclass
class RandomStrategy:
    """The baseline every other strategy must beat. Seeded per task id: reruns agree."""

    seed: int = 0
    name: ClassVar[str] = "random"
    needs_model: ClassVar[bool] = False

    def scores(self, probs: np.ndarray | None, embeddings: np.ndarray, task_ids: np.ndarray) -> np.ndarray:
        mixed = (task_ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(self.seed)) % np.uint64(2**31)
        return mixed.astype(np.float64) / 2**31


@dataclass
class ColdStartStrategy:
    """No model yet: cover the pool. Greedy k-center over embeddings puts the task farthest from all
    earlier picks next, so the first labels span the data instead of its densest corner."""

    name: ClassVar[str] = "cold-start"
    needs_model: ClassVar[bool] = False
    limit: int = 2000

    def scores(self, probs: np.ndarray | None, embeddings: np.ndarray, task_ids: np.ndarray) -> np.ndarray:
        n = len(embeddings)
        scores = np.ones(n)
        if n == 0:
            return scores
        order = k_center_order(embeddings, min(n, self.limit))
        scores[order] = np.arange(len(order)) / max(n, 1)
        return scores


def k_center_order(embeddings: np.ndarray, k: int, start: int | None = None) -> np.ndarray:
    """Greedy farthest-first traversal (cosine distance on normalised embeddings)."""
    x = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    first = int(np.argmax(x @ x.mean(axis=0))) if start is None else start  # the most typical task first
    chosen = [first]
    distance = 1.0 - x @ x[first]
    for _ in range(1, k):
        distance[chosen[-1]] = -np.inf
        nxt = int(np.argmax(distance))
        if distance[nxt] == -np.inf:
            break
        chosen.append(nxt)
        distance = np.minimum(distance, 1.0 - x @ x[nxt])
    return np.array(chosen, dtype=np.int64)


STRATEGIES = ("margin", "entropy", "least_confidence", "random", "cold-start")


def make_strategy(name: str, multi_label: bool = False, seed: int = 0) -> Strategy:
    if name in uncertainty.MEASURES:
        return UncertaintyStrategy(name, multi_label)
    if name == "random":
        return RandomStrategy(seed)
    if name == "cold-start":
        return ColdStartStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
