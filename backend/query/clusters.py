"""Stable cluster ids for Label Studio's ``cluster`` field.

Centroids are fitted once per (project, encoder) with k-means and stored, so a task keeps its
cluster across syncs and only new or changed tasks need writing.
"""

from __future__ import annotations

import numpy as np

from backend.stores.documents import Documents


def kmeans(x: np.ndarray, k: int, iterations: int = 25, seed: int = 0) -> np.ndarray:
    """Centroids by Lloyd's algorithm with k-means++ seeding (numpy only)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    k = max(1, min(k, n))
    centroids = [x[rng.integers(n)]]
    closest = ((x - centroids[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        probs = closest / closest.sum() if closest.sum() > 0 else np.full(n, 1 / n)
        centroids.append(x[rng.choice(n, p=probs)])
        closest = np.minimum(closest, ((x - centroids[-1]) ** 2).sum(axis=1))
    c = np.array(centroids)
    for _ in range(iterations):
        labels = assign(x, c)
        moved = np.array([x[labels == j].mean(axis=0) if (labels == j).any() else c[j] for j in range(len(c))])
        if np.allclose(moved, c):
            break
        c = moved
    return c


def assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    d = (x**2).sum(axis=1, keepdims=True) - 2 * x @ centroids.T + (centroids**2).sum(axis=1)
    return d.argmin(axis=1)


def default_k(pool_size: int, num_labels: int) -> int:
    return int(max(2, min(50, max(2 * num_labels, round(np.sqrt(pool_size / 4))))))


class ClusterModel:
    """A project's centroids, kept in ``documents`` (kind "clusters")."""

    def __init__(self, documents: Documents, project: int) -> None:
        self.documents, self.project = documents, project

    def centroids(self, encoder_identity: str) -> np.ndarray | None:
        stored = self.documents.read(self.project) or {}
        if stored.get("encoder") != encoder_identity or "centroids" not in stored:
            return None
        return np.array(stored["centroids"], dtype=np.float32)

    def fit(self, x: np.ndarray, k: int, encoder_identity: str) -> np.ndarray:
        c = kmeans(x, k)
        self.documents.write(self.project, {"encoder": encoder_identity, "centroids": c.tolist()})
        return c


def pool_clusters(documents: Documents, project: int, encoder: str, x: np.ndarray, num_labels: int) -> np.ndarray:
    """Each pool task's cluster under the project's centroids for ``encoder`` (fitted on this pool
    the first time, then kept: a task keeps its cluster across syncs)."""
    model = ClusterModel(documents, project)
    centroids = model.centroids(encoder)
    if centroids is None:
        centroids = model.fit(x, default_k(len(x), num_labels), encoder)
    return assign(x, centroids)
