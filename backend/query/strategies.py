"""Query strategies: which unlabeled task should a human see next?

Each strategy is a small class behind one interface: ``rank`` orders a pool (most informative
first) from the model's probabilities and the tasks' embeddings. ``scores`` turns that order into
the ``score`` Label Studio sorts on (lower = sooner).

Uncertainty strategies score with the same measure as /predict (``1 - uncertainty``), so a
prediction written by the sync and one fetched by Label Studio through /predict sort alike.
Diversity for the top of the queue: ``diversify_top`` reorders the most informative tasks
round-robin over embedding clusters (see ``clusters.py``) and gives them the lowest scores, so
the next N tasks are not N near-duplicates. (Label Studio's own ``cluster`` field
would do this too, but its bulk prediction import drops ``cluster`` in 1.23.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from backend.models import uncertainty

TOP_BAND = 0.01  # the scores a spread-out head of the queue gets, below every other task's


class Strategy(Protocol):
    name: str
    diverse: bool  # its own order already spreads the head (the sync then leaves it as it is)

    def scores(self, probs: np.ndarray | None, embeddings: np.ndarray, task_ids: np.ndarray) -> np.ndarray: ...


def rank(strategy: Strategy, probs: np.ndarray | None, embeddings: np.ndarray, task_ids: np.ndarray) -> np.ndarray:
    """Pool indices in serving order (stable: ties keep task-id order)."""
    scores = strategy.scores(probs, embeddings, task_ids)
    return np.lexsort((task_ids, scores))


@dataclass
class UncertaintyStrategy:
    measure: str = "margin"
    multi_label: bool = False
    diverse: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return self.measure

    def scores(self, probs: np.ndarray | None, embeddings: np.ndarray, task_ids: np.ndarray) -> np.ndarray:
        if probs is None:
            raise ValueError(f"strategy {self.name!r} needs a trained model")
        return uncertainty.queue_key(probs, self.measure, self.multi_label)


@dataclass
class RandomStrategy:
    """The baseline every other strategy must beat. Seeded per task id: reruns agree."""

    seed: int = 0
    name: ClassVar[str] = "random"
    diverse: ClassVar[bool] = False

    def scores(self, probs: np.ndarray | None, embeddings: np.ndarray, task_ids: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):  # uint64 arithmetic wraps on purpose
            z = task_ids.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15) * np.uint64(self.seed + 1)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)  # splitmix64 finaliser
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
        return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


@dataclass
class ColdStartStrategy:
    """No model yet: label typical tasks of every region first. k-means over the embeddings; the task
    nearest each centroid comes first (largest clusters first), then the rest, farthest from any
    representative first. Farthest-first alone would start with outliers."""

    name: ClassVar[str] = "cold-start"
    diverse: ClassVar[bool] = True
    representatives: int = 50
    seed: int = 0

    def scores(self, probs: np.ndarray | None, embeddings: np.ndarray, task_ids: np.ndarray) -> np.ndarray:
        from backend.query.clusters import assign, kmeans

        n = len(embeddings)
        if n == 0:
            return np.ones(0)
        x = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
        centroids = kmeans(x, min(self.representatives, n), seed=self.seed)
        labels = assign(x, centroids)
        sizes = np.bincount(labels, minlength=len(centroids))
        chosen: list[int] = []
        for c in np.argsort(-sizes, kind="stable"):
            members = np.flatnonzero(labels == c)
            if len(members):
                chosen.append(int(members[np.argmax(x[members] @ centroids[c])]))
        rest = np.setdiff1d(np.arange(n), chosen)
        nearest = (x[rest] @ x[chosen].T).max(axis=1) if len(rest) else np.zeros(0)
        order = np.concatenate([np.array(chosen, dtype=np.int64), rest[np.argsort(nearest, kind="stable")]])
        scores = np.empty(n)
        scores[order] = np.arange(n) / max(n - 1, 1)
        return scores


@dataclass
class BadgeStrategy:
    """BADGE-like batches (Ash et al. 2020): each task's loss gradient for the last layer, were the
    model's own answer its label, is ``(p - onehot(argmax p)) ⊗ x``: long for uncertain tasks,
    pointing apart for tasks unlike each other. k-means++ seeding in that space picks a batch that is
    both uncertain and diverse. ``x`` is the embedding the strategy is given: the base encoder's,
    as for the clusters, which stands in for the head's own input once a fine-tuned encoder serves.
    Inner products of such outer products factor
    (``<g_i, g_j> = <r_i, r_j> <x_i, x_j>``), so the gradients are never built. Only the
    ``candidates × batch`` least-margin tasks are considered, which bounds the cost on a large
    pool; the batch comes first, in picking order, the rest follow by margin. Single-label only."""

    batch: int = 50
    seed: int = 0
    candidates: int = 20
    name: ClassVar[str] = "badge"
    diverse: ClassVar[bool] = True

    def scores(self, probs: np.ndarray | None, embeddings: np.ndarray, task_ids: np.ndarray) -> np.ndarray:
        if probs is None:
            raise ValueError("strategy 'badge' needs a trained model")
        margin = uncertainty.queue_key(probs, "margin")
        n = len(margin)
        out = TOP_BAND + (1.0 - TOP_BAND) * np.clip(margin, 0.0, 1.0)
        if n == 0 or self.batch <= 0:
            return out
        pool = np.lexsort((task_ids, margin))[: self.candidates * self.batch]
        picked = pool[kmeans_pp_gradients(probs[pool], embeddings[pool], min(self.batch, len(pool)), self.seed)]
        out[picked] = TOP_BAND * np.arange(len(picked)) / len(picked)
        return out


def kmeans_pp_gradients(probs: np.ndarray, x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means++ seeding over the last-layer gradient embeddings ``(p - onehot) ⊗ x`` (indices in
    picking order): the longest gradient first, then each next with probability ∝ its squared
    distance to the nearest already picked."""
    r = probs.astype(np.float64).copy()
    r[np.arange(len(r)), r.argmax(axis=1)] -= 1.0
    x = x.astype(np.float64)
    norms = (r * r).sum(axis=1) * (x * x).sum(axis=1)  # ||g||²
    rng = np.random.default_rng(seed)
    chosen = [int(np.argmax(norms))]
    distance = norms + norms[chosen[0]] - 2.0 * (r @ r[chosen[0]]) * (x @ x[chosen[0]])
    for _ in range(1, k):
        distance = np.maximum(distance, 0.0)
        distance[chosen] = 0.0
        total = distance.sum()
        if total <= 0:
            break
        nxt = int(rng.choice(len(distance), p=distance / total))
        chosen.append(nxt)
        distance = np.minimum(distance, norms + norms[nxt] - 2.0 * (r @ r[nxt]) * (x @ x[nxt]))
    return np.array(chosen, dtype=np.int64)


def diversify_top(scores: np.ndarray, clusters: np.ndarray, n: int, candidates: int = 5) -> np.ndarray:
    """Scores in [0, 1] where the ``n`` first tasks alternate between clusters.

    Among the ``candidates * n`` most informative tasks, take the best remaining task of each
    cluster in turn (clusters ordered by their best task). Those ``n`` get scores in
    [0, TOP_BAND) in that order; every other score is squeezed into [TOP_BAND, 1] keeping its
    order. (Label Studio 1.23 silently drops imported predictions with a negative score.)
    """
    out = scores.astype(np.float64).copy()
    if n <= 0 or len(scores) == 0:
        return out
    out = TOP_BAND + (1.0 - TOP_BAND) * np.clip(out, 0.0, 1.0)
    pool = np.argsort(scores, kind="stable")[: candidates * n]
    queues: dict[int, list[int]] = {}
    for index in pool:  # best first within each cluster
        queues.setdefault(int(clusters[index]), []).append(int(index))
    picked: list[int] = []
    while len(picked) < min(n, len(pool)):
        for cluster in sorted(queues, key=lambda c: scores[queues[c][0]] if queues[c] else np.inf):
            if queues[cluster] and len(picked) < n:
                picked.append(queues[cluster].pop(0))
    top = len(picked)
    out[picked] = TOP_BAND * np.arange(top) / top
    return out


def interleave_heldout(
    scores: np.ndarray,
    heldout: np.ndarray,
    fraction: float,
    seed: int = 0,
    annotated: int = 0,
    annotated_heldout: int = 0,
) -> np.ndarray:
    """Rank-encoded scores in [0, 1] where held-out tasks (``heldout`` mask) come one in every
    1/fraction, in random order, and the others keep the strategy's order. Annotations of held-out
    tasks are then an unbiased sample of the pool, which the gate and the temperature fit need.

    The queue is re-ranked after nearly every annotation and annotators take its head, so the
    interleave continues the project's history instead of restarting: with ``annotated`` tasks
    done, ``annotated_heldout`` of them held out, the next held-out task comes as soon as the
    held-out share of annotations falls behind ``fraction`` (at rank 0 when it already has)."""
    n = len(scores)
    if n == 0 or fraction <= 0 or not heldout.any() or heldout.all():
        return scores
    rest, held = np.flatnonzero(~heldout), np.flatnonzero(heldout)
    done_rest = max(annotated - annotated_heldout, 0)
    position = np.empty(n)  # the annotation index (counting from the project's first) each task is due at
    position[rest[np.argsort(scores[rest], kind="stable")]] = (done_rest + np.arange(len(rest)) + 0.5) / (1 - fraction)
    shuffled = held[np.random.default_rng(seed + annotated_heldout).permutation(len(held))]
    position[shuffled] = (annotated_heldout + np.arange(len(held)) + 0.5) / fraction
    rank = np.empty(n)
    rank[np.argsort(position, kind="stable")] = np.arange(n)
    return rank / max(n - 1, 1)


def interleave_audit(scores: np.ndarray, audit: np.ndarray, share: float, seed: int = 0) -> np.ndarray:
    """Rank-encoded scores in [0, 1] where audit samples (``audit`` mask) come one in every
    1/share, in random order, and the others keep their order: humans keep checking a share of
    what the router would let through (``monitoring/routing_audit.py`` reads the outcomes)."""
    n = len(scores)
    if n == 0 or share <= 0 or not audit.any() or audit.all():
        return scores
    rest, picked = np.flatnonzero(~audit), np.flatnonzero(audit)
    position = np.empty(n)
    position[rest[np.argsort(scores[rest], kind="stable")]] = (np.arange(len(rest)) + 0.5) / (1 - share)
    position[picked[np.random.default_rng(seed).permutation(len(picked))]] = (np.arange(len(picked)) + 0.5) / share
    rank = np.empty(n)
    rank[np.argsort(position, kind="stable")] = np.arange(n)
    return rank / max(n - 1, 1)


STRATEGIES = ("margin", "entropy", "least_confidence", "badge", "random", "cold-start")


def make_strategy(name: str, multi_label: bool = False, seed: int = 0, batch: int = 50) -> Strategy:
    """``batch``: the tasks a BADGE-like batch spans (the sync: the head it spreads,
    ``HITL_SYNC_DIVERSE_TOP``)."""
    if name in uncertainty.MEASURES:
        return UncertaintyStrategy(name, multi_label)
    if name == "badge":
        if multi_label:
            raise ValueError("strategy 'badge' is for single-label projects; use margin for multi-label")
        return BadgeStrategy(batch=batch, seed=seed)
    if name == "random":
        return RandomStrategy(seed)
    if name == "cold-start":
        return ColdStartStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
