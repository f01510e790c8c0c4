"""The head's L2 strength, picked on the held-out annotations of each retrain.

One fixed penalty suits one project size only: a strong one helps a few hundred labels and hurts
thousands (README, "Choosing the head's penalty": ``hitl bench head``).
The held-out annotations are an unbiased sample of the pool (the sync serves them in random
order), so they can decide: one head per strength in ``L2_GRID``, and the one with the lowest
held-out log-loss *as served* (after temperature scaling, for single-label) wins. With fewer than
``MIN_HELDOUT`` held-out annotations the choice would be noise, so the default strength is used.
The gate later scores the winner on the same held-out set: with five candidates that optimism is
small next to the gate's own noise, and calibration is fitted there anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from backend.learning.calibration import fit_temperature
from backend.models.head import DEFAULT_L2, LinearHead

L2_GRID = (3e-3, 1e-3, 3e-4, 1e-4, 3e-5)
MIN_HELDOUT = 50


@dataclass(frozen=True)
class HeadChoice:
    head: LinearHead
    l2: float
    heldout_log_loss: dict[float, float] = field(default_factory=dict)  # empty: too few held-out annotations

    def as_dict(self) -> dict[str, object]:
        return {"l2": self.l2, "heldout_log_loss": {f"{k:g}": round(v, 5) for k, v in self.heldout_log_loss.items()}}


def served_log_loss(head: LinearHead, x: np.ndarray, y: np.ndarray) -> float:
    """Held-out log-loss of the probabilities /predict would serve: softmax after a temperature
    fitted on these logits (single-label), plain sigmoids (multi-label, not temperature-scaled)."""
    z = torch.from_numpy(np.asarray(head.logits(x), dtype=np.float64))
    if head.multi_label:
        target = torch.from_numpy(np.asarray(y, dtype=np.float64))
        return float(torch.nn.functional.binary_cross_entropy_with_logits(z, target))
    t = fit_temperature(z.numpy(), y)
    return float(torch.nn.functional.cross_entropy(z / t, torch.from_numpy(np.asarray(y, dtype=np.int64))))


def fit_selected_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_held: np.ndarray,
    y_held: np.ndarray,
    num_labels: int,
    multi_label: bool,
    grid: tuple[float, ...] = L2_GRID,
    min_heldout: int = MIN_HELDOUT,
) -> HeadChoice:
    """The head for ``x_train``, its L2 strength chosen on ``(x_held, y_held)`` (see module doc)."""
    if len(y_held) < min_heldout:
        return HeadChoice(LinearHead.fit(x_train, y_train, num_labels, multi_label, l2=DEFAULT_L2), DEFAULT_L2)
    heads = {l2: LinearHead.fit(x_train, y_train, num_labels, multi_label, l2=l2) for l2 in grid}
    losses = {l2: served_log_loss(head, x_held, y_held) for l2, head in heads.items()}
    best = min(grid, key=lambda l2: (losses[l2], -l2))  # ties: the stronger penalty
    return HeadChoice(heads[best], best, losses)
