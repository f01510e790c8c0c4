import numpy as np

from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.gate import decide, evaluate
from tests.support.payloads import AG_CONFIG, MULTI_CONFIG


def test_evaluate_single_label():
    spec = parse_label_config(AG_CONFIG)
    examples = [Example("a", ("World",)), Example("b", ("Sports",)), Example("c", ("Sports",))]
    probs = np.array([[0.9, 0.1, 0, 0], [0.2, 0.8, 0, 0], [0.6, 0.4, 0, 0]])
    metrics = evaluate(probs, examples, spec)
    assert metrics["accuracy"] == metrics["primary"] == 2 / 3
    assert 0 < metrics["macro_f1"] < 1


def test_evaluate_multi_label():
    spec = parse_label_config(MULTI_CONFIG)
    examples = [Example("a", ("World", "Sports")), Example("b", ("Business",))]
    probs = np.array([[0.9, 0.8, 0.1, 0.1], [0.1, 0.1, 0.2, 0.1]])
    metrics = evaluate(probs, examples, spec)
    assert metrics["subset_accuracy"] == 0.5
    assert metrics["micro_f1"] == metrics["primary"] == 0.8


def test_gate_decisions():
    good, bad = {"n": 50, "primary": 0.80}, {"n": 50, "primary": 0.70}
    assert decide(good, None, None, 0.01, 20).passed
    assert decide(good, bad, "v1", 0.01, 20).passed
    rejected = decide(bad, good, "v1", 0.01, 20)
    assert not rejected.passed and "kept v1" in rejected.reason
    assert decide({"n": 50, "primary": 0.795}, good, "v1", 0.01, 20).passed  # within the margin
    assert decide({"n": 5, "primary": 0.1}, good, "v1", 0.01, 20).passed  # too little evidence: more labels win


def test_with_few_held_out_tasks_the_gate_judges_task_by_task():
    """Issue 26: the gate judged nothing in 90 labels (it starts at 20 held-out tasks, about 140
    labels at 15 %). From 6 held-out tasks it compares the two versions on the same tasks and refuses
    a candidate only when it is significantly worse (McNemar's exact test)."""
    from backend.learning.gate import SliceRule

    rule = SliceRule()
    serving = {"n": 10, "primary": 0.9, "wrong": [9]}
    worse = {"n": 10, "primary": 0.3, "wrong": [0, 1, 2, 3, 4, 5, 9]}  # lost 6, gained 0: p = 1/64
    refused = decide(worse, serving, "v1", 0.01, 20, rule=rule)
    assert not refused.passed and "paired exact test p=0.016" in refused.reason and "kept v1" in refused.reason
    noisy = {"n": 10, "primary": 0.7, "wrong": [0, 1, 2]}  # lost 3, gained 1: could be chance
    kept = decide(noisy, serving, "v1", 0.01, 20, rule=rule)
    assert kept.passed and "judged on 10 held-out tasks" in kept.reason and "3 lost, 1 gained" in kept.reason
    better = {"n": 10, "primary": 1.0, "wrong": []}
    assert decide(better, serving, "v1", 0.01, 20, rule=rule).passed
    too_few = {"n": 5, "primary": 0.0, "wrong": [0, 1, 2, 3, 4]}
    assert "more labels win" in decide(too_few, {"n": 5, "primary": 1.0, "wrong": []}, "v1", 0.01, 20, rule=rule).reason
