"""Calibrated confidence: temperature scaling, expected calibration error, and a routing threshold.

Temperature scaling divides the head's logits by one number T fitted on held-out annotations
(never trained on), which keeps every ranking and decision and fixes over- or under-confidence.
The routing threshold is the lowest calibrated confidence at which held-out precision still meets
the target; predictions above it may skip review.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """T minimising the negative log-likelihood of ``labels`` (class indices) on held-out logits."""
    if len(labels) == 0:
        return 1.0
    z = torch.from_numpy(np.asarray(logits, dtype=np.float64))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(np.clip(np.exp(float(log_t.detach())), *bounds))


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) per non-empty equal-width confidence bin: the points of a
    reliability diagram."""
    if len(labels) == 0:
        return []
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    points = []
    for low, high in itertools.pairwise(np.linspace(0.0, 1.0, bins + 1)):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            points.append((float(confidence[in_bin].mean()), float(correct[in_bin].mean()), int(in_bin.sum())))
    return points


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    points = reliability(probs, labels, bins)
    return float(sum(n * abs(acc - conf) for conf, acc, n in points) / len(labels)) if points else 0.0


@dataclass(frozen=True)
class Routing:
    threshold: float | None  # None: no threshold meets the target on held-out data
    target_precision: float
    heldout_precision: float | None
    heldout_coverage: float


def routing_threshold(probs: np.ndarray, labels: np.ndarray, target_precision: float, min_support: int = 20) -> Routing:
    """The lowest confidence whose accepted share (confidence >= it) has precision >= target on held-out
    data, over at least ``min_support`` accepted tasks."""
    return precision_threshold(probs.max(axis=1), probs.argmax(axis=1) == labels, target_precision, min_support)


def precision_threshold(
    confidence: np.ndarray, correct: np.ndarray, target_precision: float, min_support: int = 20
) -> Routing:
    """``routing_threshold`` for any per-task confidence and correctness (e.g. a whole NER answer)."""
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    counts = np.arange(1, len(order) + 1)
    precision = hits / counts
    ok = np.flatnonzero((precision >= target_precision) & (counts >= min_support))
    if len(ok) == 0:
        return Routing(None, target_precision, None, 0.0)
    last = ok[-1]
    return Routing(
        float(confidence[order[last]]), target_precision, float(precision[last]), float(counts[last] / len(order))
    )


def coverage_at(probs: np.ndarray, labels: np.ndarray, threshold: float | None) -> tuple[float, float | None]:
    """Share of tasks at or above ``threshold`` and their precision (on any labeled set)."""
    if threshold is None or len(labels) == 0:
        return 0.0, None
    accepted = probs.max(axis=1) >= threshold
    if not accepted.any():
        return 0.0, None
    return float(accepted.mean()), float((probs.argmax(axis=1)[accepted] == labels[accepted]).mean())


def cross_fit_temperature(
    embeddings: np.ndarray,
    labels: np.ndarray,
    num_labels: int,
    heldout_logits: np.ndarray | None = None,
    heldout_labels: np.ndarray | None = None,
    folds: int = 5,
    seed: int = 0,
    min_heldout: int = 50,
    l2: float | None = None,
) -> float:
    """T fitted on the held-out annotations once there are ``min_heldout`` of them (the sync serves
    held-out tasks in random order, so they are an unbiased sample of the pool). Before that, on
    out-of-fold logits of the training examples plus the held-out ones: biased towards the hard
    cases active learning picks, but better than a handful of points. ``l2``: the served head's
    penalty, so the fold heads are fitted like it."""
    from backend.models.head import DEFAULT_L2, LinearHead

    if heldout_labels is not None and len(heldout_labels) >= min_heldout:
        return fit_temperature(heldout_logits, heldout_labels)  # an unbiased sample: use it alone
    n = len(labels)
    logits = [] if heldout_logits is None else [heldout_logits]
    targets = [] if heldout_labels is None else [heldout_labels]
    penalty = DEFAULT_L2 if l2 is None else l2
    if n >= 2 * folds:
        order = np.random.default_rng(seed).permutation(n)
        for fold in np.array_split(order, folds):
            rest = np.setdiff1d(order, fold)
            if len(np.unique(labels[rest])) < 2:
                continue
            head = LinearHead.fit(embeddings[rest], labels[rest], num_labels, multi_label=False, l2=penalty)
            logits.append(head.logits(embeddings[fold]))
            targets.append(labels[fold])
    if not logits:
        return 1.0
    return fit_temperature(np.concatenate(logits), np.concatenate(targets))
