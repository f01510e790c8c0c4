"""Batch correction: the unlabeled tasks one correction obviously also applies to.

When an annotator changes a pre-annotation from ``wrong`` to ``right``, the tasks near the
corrected one in embedding space that the serving model still labels ``wrong`` are candidates for
the same fix. "Near" is calibrated per project on its annotated pairs: the lowest cosine similarity
above which pairs of annotated tasks share their label at least ``target`` of the time (with a
minimum number of such pairs as evidence); with too few pairs, a radius of half the median nearest-
neighbour distance. A candidate must also have, among all annotated tasks, a nearest one labeled
``right`` (usually the corrected task itself): a task that sits closer to an annotation of another
label is left to a human; and the serving model's second choice for it must be ``right`` (the model
itself hesitates between the two labels the correction is about). Nothing here writes anything;
``jobs/proposals.py`` proposes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_PAIRS = 30  # pairs above the threshold needed to trust its share of same-label pairs
MAX_ROWS = 3000  # annotated tasks sampled for the pairs (3000² / 2 pairs is a few MB of work)


@dataclass(frozen=True)
class Threshold:
    similarity: float  # cosine similarity at or above which a pool task counts as near
    source: str  # "pairs" (calibrated) or "radius" (too few annotated pairs: the fallback)
    pairs: int  # annotated pairs at or above it
    same_label: float | None  # the share of them sharing a label


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def similarity_threshold(
    x: np.ndarray, y: np.ndarray, target: float = 0.95, min_pairs: int = MIN_PAIRS, seed: int = 0
) -> Threshold:
    """The project's "near": calibrated on annotated pairs (``x`` embeddings, ``y`` labels)."""
    if len(y) > MAX_ROWS:
        rows = np.random.default_rng(seed).choice(len(y), MAX_ROWS, replace=False)
        x, y = x[rows], y[rows]
    u = unit(np.asarray(x, dtype=np.float64))
    sims = u @ u.T
    upper = np.triu_indices(len(y), k=1)
    pair_sims, same = sims[upper], (y[:, None] == y[None, :])[upper]
    order = np.argsort(-pair_sims, kind="stable")
    share = np.cumsum(same[order]) / np.arange(1, len(order) + 1)
    ok = np.flatnonzero((share >= target) & (np.arange(1, len(order) + 1) >= min_pairs))
    if len(ok):
        k = int(ok[-1])  # the most pairs (the lowest similarity) that still meets the target
        return Threshold(float(pair_sims[order[k]]), "pairs", k + 1, round(float(share[k]), 4))
    if len(y) < 2:
        return Threshold(1.0, "radius", 0, None)  # nothing to compare with: propose only duplicates
    np.fill_diagonal(sims, -np.inf)
    nearest = np.sqrt(np.maximum(2 - 2 * sims.max(axis=1), 0))  # distance of unit vectors
    radius = 0.5 * float(np.median(nearest))
    return Threshold(1 - radius**2 / 2, "radius", 0, None)


def propose(
    corrected: np.ndarray,
    right: int,
    wrong: int,
    pool_x: np.ndarray,
    pool_probs: np.ndarray,
    annotated_x: np.ndarray,
    annotated_y: np.ndarray,
    threshold: float,
) -> np.ndarray:
    """Rows of the pool to propose ``right`` for: near the corrected task (cosine ≥ ``threshold``),
    labeled ``wrong`` by the serving model (``pool_probs``) with ``right`` as its second choice,
    and nearest to an annotated task labeled ``right``. Most similar first."""
    if not len(pool_x):
        return np.zeros(0, dtype=np.int64)
    pool = unit(np.asarray(pool_x, dtype=np.float64))
    sims = pool @ unit(np.asarray(corrected, dtype=np.float64)[None, :])[0]
    ranked = np.argsort(-pool_probs, axis=1, kind="stable")
    second = ranked[:, 1] if pool_probs.shape[1] > 1 else ranked[:, 0]
    rows = np.flatnonzero((sims >= threshold) & (ranked[:, 0] == wrong) & (second == right))
    if len(rows) and len(annotated_y):
        nearest = (pool[rows] @ unit(np.asarray(annotated_x, dtype=np.float64)).T).argmax(axis=1)
        rows = rows[annotated_y[nearest] == right]
    return rows[np.argsort(-sims[rows], kind="stable")]
