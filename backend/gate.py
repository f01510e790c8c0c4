"""Evaluation on held-out annotations and the publish gate: a candidate ships only if it is not worse."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from backend.labeling import TaskSpec
from backend.training import Example, targets


def evaluate(
    probs: np.ndarray, examples: Sequence[Example], spec: TaskSpec, threshold: float = 0.5
) -> dict[str, float]:
    """accuracy and macro-F1 (single-label) or subset accuracy and micro-F1 (multi-label); ``primary``
    is the one the gate compares."""
    n = len(examples)
    if n == 0:
        return {"n": 0}
    y = targets(examples, spec)
    if spec.multi_label:
        pred = probs >= threshold
        truth = y >= 0.5
        tp = float((pred & truth).sum())
        fp = float((pred & ~truth).sum())
        fn = float((~pred & truth).sum())
        micro_f1 = 2 * tp / max(2 * tp + fp + fn, 1e-9)
        return {"n": n, "subset_accuracy": float((pred == truth).all(axis=1).mean()), "micro_f1": micro_f1,
                "primary": micro_f1}  # fmt: skip
    pred = probs.argmax(axis=1)
    accuracy = float((pred == y).mean())
    f1s = []
    for k in range(len(spec.labels)):
        tp = float(((pred == k) & (y == k)).sum())
        denom = float((pred == k).sum() + (y == k).sum())
        if (y == k).any():
            f1s.append(2 * tp / denom if denom else 0.0)
    return {"n": n, "accuracy": accuracy, "macro_f1": float(np.mean(f1s)) if f1s else 0.0, "primary": accuracy}


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    margin: float
    candidate: dict[str, float]
    serving: dict[str, float] | None
    serving_version: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    candidate: dict[str, float],
    serving: dict[str, float] | None,
    serving_version: str | None,
    margin: float,
    min_eval: int,
) -> GateDecision:
    def make(passed: bool, reason: str) -> GateDecision:
        return GateDecision(passed, reason, margin, candidate, serving, serving_version)

    if serving is None:
        return make(True, "no compatible version is serving: the first trained version replaces cold start")
    if candidate.get("n", 0) < min_eval:
        return make(True, f"only {candidate.get('n', 0)} held-out annotations (< {min_eval}): more labels win")
    c, s = candidate["primary"], serving["primary"]
    if c >= s - margin:
        return make(True, f"candidate {c:.4f} >= serving {s:.4f} - margin {margin}")
    return make(False, f"candidate {c:.4f} < serving {s:.4f} - margin {margin}: kept {serving_version}")
