import numpy as np

from backend.learning.calibration import (
    coverage_at,
    expected_calibration_error,
    fit_temperature,
    routing_threshold,
    softmax,
)


def _overconfident(n=3000, k=4, seed=0, scale=4.0):
    """Logits whose true temperature is `scale`: softmax(logits / scale) is calibrated by construction."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(size=(n, k)) * 1.5
    p = softmax(true_logits)
    labels = np.array([rng.choice(k, p=row) for row in p])
    return true_logits * scale, labels


def test_temperature_scaling_recovers_the_true_temperature_and_lowers_ece():
    logits, labels = _overconfident()
    t = fit_temperature(logits[:2000], labels[:2000])
    assert 3.0 < t < 5.0
    before = expected_calibration_error(softmax(logits[2000:]), labels[2000:])
    after = expected_calibration_error(softmax(logits[2000:], t), labels[2000:])
    assert before > 0.1 and after < 0.05
    assert (softmax(logits, t).argmax(1) == softmax(logits).argmax(1)).all()  # decisions unchanged


def test_ece_is_zero_for_perfect_confident_predictions():
    probs = np.eye(3)[[0, 1, 2, 1]]
    assert expected_calibration_error(probs, np.array([0, 1, 2, 1])) == 0.0
    assert expected_calibration_error(probs, np.array([1, 1, 2, 1])) == 0.25


def test_routing_threshold_meets_the_target_on_held_out_data():
    logits, labels = _overconfident(seed=1)
    t = fit_temperature(logits[:1500], labels[:1500])
    route = routing_threshold(softmax(logits[:1500], t), labels[:1500], target_precision=0.9)
    assert route.threshold is not None and route.heldout_precision >= 0.9 and 0 < route.heldout_coverage < 1
    coverage, precision = coverage_at(softmax(logits[1500:], t), labels[1500:], route.threshold)
    assert 0 < coverage < 1 and precision > 0.85  # carries over to new data
    impossible = routing_threshold(softmax(logits[:100]), (labels[:100] + 1) % 4, target_precision=0.99)
    assert impossible.threshold is None and coverage_at(softmax(logits), labels, None) == (0.0, None)
