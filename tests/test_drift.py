"""The drift detector: false alarms at the rate it is set for, and alarms on a mixture shift or a
class-prior shift (issue 16, item 3)."""

import numpy as np

from backend.monitoring.drift import DriftDetector


def _data(rng: np.random.Generator, n: int, shift: float = 0.0, prior: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of 4 classes (Gaussian blobs) and a fixed model's softmax over them."""
    classes = np.where(rng.random(n) < prior, 0, rng.integers(1, 4, n))
    centres = np.eye(4, 16) * 2.0
    x = centres[classes] + rng.normal(size=(n, 16)) + shift
    logits = x[:, :4] * 2.0
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True), x


def test_without_shift_it_alarms_at_most_at_its_rate():
    rng = np.random.default_rng(0)
    detector = DriftDetector(*_data(rng, 300), alpha=0.01, permutations=300, max_reference=300, seed=1)
    alarms = sum(detector.test(*_data(rng, 200)).alarm for _ in range(300))
    assert alarms <= 9  # expected <= 3 at alpha 0.01; 9 or more has probability < 0.5 %


def test_a_mixture_shift_and_a_class_prior_shift_raise_alarms():
    rng = np.random.default_rng(2)
    detector = DriftDetector(*_data(rng, 300), alpha=0.01, permutations=300, max_reference=300, seed=3)
    probs, x = _data(rng, 200)
    moved_probs, moved_x = _data(rng, 60, shift=1.0)  # 30 % of the window from elsewhere
    mixed = detector.test(np.vstack([probs[:140], moved_probs]), np.vstack([x[:140], moved_x]))
    assert mixed.alarm and mixed.p_embeddings < 0.005, mixed.line()
    prior = detector.test(*_data(rng, 200, prior=0.7))  # the same classes, in other proportions
    assert prior.alarm and prior.p_outputs < 0.005, prior.line()
    assert "DRIFT" in prior.line()
