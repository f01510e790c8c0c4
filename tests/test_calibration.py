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


def _held_out(seed: int = 3, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated confidences (right with probability = confidence), many of them in 0.7-0.9: a
    routing threshold at 98 % on average falls there, below a pre-select level of 0.9."""
    rng = np.random.default_rng(seed)
    confidence = np.concatenate([rng.uniform(0.99, 1.0, n // 2), rng.uniform(0.7, 0.9, n // 2)])
    return confidence, rng.random(n) < confidence


def test_auto_accept_starts_no_lower_than_the_pre_select_level():
    from backend.learning.calibration import precision_threshold
    from backend.learning.candidates import review_levels
    from backend.settings import Settings

    confidence, correct = _held_out()
    settings = Settings(routing_target_precision=0.95, preselect_precision=0.9)
    raw = precision_threshold(confidence, correct, 0.95).threshold
    levels = review_levels(confidence, correct, settings)
    level = levels["preselect"]["level"]
    assert raw is not None and level is not None and raw < level  # the case the rule is for
    routing = levels["routing"]
    assert routing["threshold"] == level and routing["raised_to_preselect_level"]
    above = confidence >= level
    assert routing["heldout_coverage"] == above.mean() and routing["heldout_precision"] == correct[above].mean()


def test_a_threshold_above_the_level_is_kept_and_none_without_a_level():
    from backend.learning.calibration import precision_threshold
    from backend.learning.candidates import review_levels
    from backend.settings import Settings

    confidence, correct = _held_out()
    sure = confidence >= 0.99  # right, the others wrong: 99.9 % is met at 0.99, above the level
    strict = review_levels(confidence, sure, Settings(routing_target_precision=0.999, preselect_precision=0.9))
    assert strict["routing"]["threshold"] > strict["preselect"]["level"]
    assert not strict["routing"]["raised_to_preselect_level"]
    # too few held-out answers for a pre-select level: nothing skips review either
    settings = Settings(routing_target_precision=0.95, preselect_min_support=50)
    few = review_levels(confidence[:40], np.ones(40, dtype=bool), settings)
    assert precision_threshold(confidence[:40], np.ones(40, dtype=bool), 0.95).threshold is not None
    assert few["preselect"]["level"] is None and few["routing"]["threshold"] is None
    # pre-selecting always (HITL_PRESELECT_PRECISION=0) leaves the threshold as found
    always = review_levels(confidence, correct, Settings(routing_target_precision=0.95, preselect_precision=0))
    assert not always["routing"]["raised_to_preselect_level"] and always["routing"]["threshold"] < 0.9
    off = review_levels(confidence, correct, Settings(routing_target_precision=0))
    assert "routing" not in off and off["preselect"]["level"] is not None
