import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.models import uncertainty


def test_uniform_is_most_uncertain_and_one_hot_least():
    uniform = np.full((1, 4), 0.25)
    one_hot = np.array([[0.0, 1.0, 0.0, 0.0]])
    for name in uncertainty.MEASURES:
        assert uncertainty.uncertainty(uniform, name)[0] == pytest.approx(1.0)
        assert uncertainty.uncertainty(one_hot, name)[0] == pytest.approx(0.0, abs=1e-6)


def test_margin_ranks_close_calls_first():
    probs = np.array([[0.9, 0.05, 0.05], [0.45, 0.44, 0.11], [0.6, 0.3, 0.1]])
    scores = uncertainty.queue_key(probs, "margin")
    assert list(np.argsort(scores)) == [1, 2, 0]  # lowest score = served first = the close call


def test_multilabel_uncertainty_peaks_at_half():
    probs = np.array([[0.5, 0.5], [0.99, 0.01], [0.7, 0.1]])
    u = uncertainty.uncertainty(probs, "margin", multi_label=True)
    assert u[0] == pytest.approx(1.0)
    assert u[1] < u[2] < u[0]


def test_unknown_measure_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown uncertainty measure"):
        uncertainty.uncertainty(np.full((1, 2), 0.5), "variance")


@given(st.lists(st.floats(0.001, 1.0), min_size=2, max_size=8), st.sampled_from(sorted(uncertainty.MEASURES)))
def test_every_measure_stays_in_unit_interval(weights, name):
    probs = np.array([weights]) / np.sum(weights)
    value = uncertainty.uncertainty(probs, name)[0]
    assert 0.0 <= value <= 1.0
    assert uncertainty.queue_key(probs, name)[0] == pytest.approx(1.0 - value)


def test_confidence_is_the_probability_that_the_pre_annotation_is_right():
    probs = np.array([[0.7, 0.2, 0.1], [0.34, 0.33, 0.33]])
    assert uncertainty.confidence(probs).tolist() == pytest.approx([0.7, 0.34])
    # multi-label: every yes/no decision must be right; the least sure one bounds the answer
    multi = np.array([[0.9, 0.05, 0.6], [0.99, 0.01, 0.02]])
    assert uncertainty.confidence(multi, multi_label=True).tolist() == pytest.approx([0.6, 0.98])
    # and it orders the opposite way to uncertainty: the task served first shows the lowest confidence
    assert np.argmin(uncertainty.confidence(probs)) == np.argmin(uncertainty.queue_key(probs, "least_confidence"))
