"""Has the data the model sees moved away from the data it was checked on? Two tests per window of
tasks against a reference sample, with p-values rather than fixed cut-offs:

- on the model's calibrated class probabilities (black-box shift detection): per-class
  two-sample Kolmogorov-Smirnov tests (scipy), Bonferroni-combined;
- on the encoder's embeddings: maximum mean discrepancy with a Gaussian kernel (bandwidth from
  the median pairwise distance) and a permutation test.

A window alarms when either p-value is below ``alpha / 2``, so the false-alarm rate per window
stays under ``alpha``. alibi-detect has both tests, but pulls numba, OpenCV and scikit-image into
the product; the permutation test is a few lines of numpy over one kernel matrix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.stats import ks_2samp

from backend.monitoring import DRIFT, Finding


@dataclass(frozen=True)
class DriftResult:
    p_outputs: float  # class probabilities (KS, Bonferroni over classes)
    p_embeddings: float  # embeddings (MMD permutation test)
    alpha: float
    size: int  # tasks in the window

    @property
    def alarm(self) -> bool:
        return min(self.p_outputs, self.p_embeddings) < self.alpha / 2

    def finding(self, monitor: str = DRIFT) -> Finding:
        return Finding(monitor, self.alarm, self.line(), dataclasses.asdict(self))

    def line(self) -> str:
        verdict = "DRIFT" if self.alarm else "no drift"
        return (
            f"{verdict}: {self.size} tasks vs the reference; p = {self.p_outputs:.3g} (predicted "
            f"probabilities), {self.p_embeddings:.3g} (embeddings); alarm below {self.alpha / 2:.3g}"
        )


class DriftDetector:
    """Tests windows of tasks against a reference sample (at most ``max_reference`` tasks)."""

    def __init__(
        self,
        probs: np.ndarray,
        embeddings: np.ndarray,
        alpha: float = 0.01,
        permutations: int = 500,
        max_reference: int = 500,
        seed: int = 0,
    ) -> None:
        rng = np.random.default_rng(seed)
        keep = rng.permutation(len(probs))[:max_reference]
        self.probs, self.embeddings = np.asarray(probs)[keep], np.asarray(embeddings, dtype=np.float64)[keep]
        self.alpha, self.permutations, self.rng = alpha, permutations, rng

    def test(self, probs: np.ndarray, embeddings: np.ndarray) -> DriftResult:
        return DriftResult(
            outputs_p_value(self.probs, np.asarray(probs)),
            mmd_p_value(self.embeddings, np.asarray(embeddings, dtype=np.float64), self.permutations, self.rng),
            self.alpha,
            len(probs),
        )


def outputs_p_value(reference: np.ndarray, window: np.ndarray) -> float:
    """Smallest per-class KS p-value times the number of classes (Bonferroni), at most 1."""
    k = reference.shape[1]
    p = min(ks_2samp(reference[:, c], window[:, c]).pvalue for c in range(k))
    return float(min(1.0, p * k))


def mmd_p_value(x: np.ndarray, y: np.ndarray, permutations: int, rng: np.random.Generator) -> float:
    """Permutation p-value of the (biased) MMD² between ``x`` and ``y``: each permutation's
    statistic is sᵀKs for a signed weight vector s, so all of them are one matrix product."""
    pooled = np.vstack([x, y])
    squared = (pooled**2).sum(axis=1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2 * pooled @ pooled.T, 0)
    bandwidth = np.median(distances[np.triu_indices(len(pooled), 1)]) or 1.0
    kernel = np.exp(-distances / bandwidth)
    n, m = len(x), len(y)
    signs = np.concatenate([np.full(n, 1 / n), np.full(m, -1 / m)])
    weights = np.column_stack([signs] + [signs[rng.permutation(n + m)] for _ in range(permutations)])
    stats = np.einsum("ij,ij->j", weights, kernel @ weights)
    return float((1 + np.sum(stats[1:] >= stats[0])) / (1 + permutations))
