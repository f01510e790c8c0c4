"""Uncertainty measures over predicted probabilities, all scaled to [0, 1] (1 = most uncertain).

Two numbers come out of them and must not be confused: ``queue_key`` (``1 - uncertainty``,
lower = more informative = served sooner) orders the queue, and ``confidence`` (the calibrated
probability that the pre-annotation is right) is the ``score`` an annotator sees next to it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Measure = Callable[[np.ndarray], np.ndarray]


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """1 - max p, rescaled so a uniform distribution scores 1."""
    k = probs.shape[1]
    if k < 2:
        return np.zeros(len(probs))
    return np.clip((1.0 - probs.max(axis=1)) * k / (k - 1), 0.0, 1.0)


def margin(probs: np.ndarray) -> np.ndarray:
    """1 - (p_top1 - p_top2): small gaps between the two best labels mean high uncertainty."""
    if probs.shape[1] < 2:
        return np.zeros(len(probs))
    top2 = np.sort(probs, axis=1)[:, -2:]
    return np.clip(1.0 - (top2[:, 1] - top2[:, 0]), 0.0, 1.0)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy divided by log k."""
    k = probs.shape[1]
    if k < 2:
        return np.zeros(len(probs))
    p = np.clip(probs, 1e-12, 1.0)
    return np.clip(-(p * np.log(p)).sum(axis=1) / np.log(k), 0.0, 1.0)


def multilabel(probs: np.ndarray) -> np.ndarray:
    """Independent yes/no decisions: mean over labels of 1 - |2p - 1| (1 when p = 0.5)."""
    if probs.shape[1] == 0:
        return np.zeros(len(probs))
    return np.clip(1.0 - np.abs(2.0 * probs - 1.0), 0.0, 1.0).mean(axis=1)


MEASURES: dict[str, Measure] = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
}


def all_measures(probs: np.ndarray, multi_label: bool = False) -> dict[str, np.ndarray]:
    """Every measure for a batch, for logs, metrics and strategies."""
    if multi_label:
        return {"multilabel": multilabel(probs)}
    return {name: fn(probs) for name, fn in MEASURES.items()}


def uncertainty(probs: np.ndarray, measure: str, multi_label: bool = False) -> np.ndarray:
    if multi_label:
        return multilabel(probs)
    try:
        return MEASURES[measure](probs)
    except KeyError:
        raise ValueError(f"unknown uncertainty measure {measure!r}; choose one of {sorted(MEASURES)}") from None


def queue_key(probs: np.ndarray, measure: str, multi_label: bool = False) -> np.ndarray:
    """The key the queue is sorted on: lower = more informative = served sooner."""
    return 1.0 - uncertainty(probs, measure, multi_label)


def confidence(probs: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """The probability that the pre-annotation is right, from calibrated ``probs``: the top label's
    (single-label), or the least sure label's yes/no decision (multi-label: every decision must be
    right). This is what an annotator sees as the prediction's score."""
    if probs.shape[1] == 0:
        return np.ones(len(probs))
    if multi_label:
        return np.maximum(probs, 1.0 - probs).min(axis=1)
    return probs.max(axis=1)
