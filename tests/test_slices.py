"""Slices: per-class and per-field held-out scores, and a gate that refuses a candidate which makes
a guarded slice significantly worse even when its overall score improves."""

import numpy as np

from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.dataset import build_dataset
from backend.learning.gate import SliceRule, decide, evaluate
from backend.learning.slices import regressions, slice_scores
from backend.oversight.report import ProjectData, render
from tests.support.payloads import AG_CONFIG

SPEC = parse_label_config(AG_CONFIG)


def _held(n_minority: int = 40, n_majority: int = 160) -> list[Example]:
    minority = [Example(f"m{i}", ("World",), i, slices=(("source", "forum"),)) for i in range(n_minority)]
    majority = [Example(f"s{i}", ("Sports",), 1000 + i, slices=(("source", "news"),)) for i in range(n_majority)]
    return minority + majority


def test_field_values_reach_examples_and_scores_per_slice():
    tasks = [{"id": i, "data": {"text": f"t{i}", "source": src, "meta": {"x": 1}},
              "annotations": [{"id": 100 + i, "result": [{"from_name": "topic", "to_name": "text", "type": "choices",
                                                            "value": {"choices": [label]}}]}]}
             for i, (src, label) in enumerate([("forum", "World"), ("news", "Sports"), ("news", "World")])]  # fmt: skip
    examples = build_dataset(1, tasks, SPEC, 1000, ["source", "meta", "missing"]).examples
    assert [ex.slices for ex in examples] == [(("source", "forum"),), (("source", "news"),), (("source", "news"),)]
    scores = slice_scores(examples, wrong=[2])  # the third task (news, World) was missed
    assert scores["source: news"] == {"n": 2, "accuracy": 0.5}
    assert scores["label: World"] == {"n": 2, "accuracy": 0.5}
    assert scores["source: forum"]["accuracy"] == scores["label: Sports"]["accuracy"] == 1.0


def test_evaluate_reports_recall_and_precision_per_class():
    examples = [Example("a", ("World",)), Example("b", ("Sports",)), Example("c", ("Sports",))]
    probs = np.array([[0.9, 0.1, 0, 0], [0.2, 0.8, 0, 0], [0.6, 0.4, 0, 0]])
    metrics = evaluate(probs, examples, SPEC)
    assert metrics["wrong"] == [2]
    assert metrics["slices"]["label: Sports"] == {"n": 2, "accuracy": 0.5, "precision": 1.0}
    assert metrics["slices"]["label: World"] == {"n": 1, "accuracy": 1.0, "precision": 0.5}


def test_a_candidate_better_overall_but_worse_on_a_minority_is_refused():
    held = _held()
    serving_wrong = [40 + i for i in range(40)]  # 40 majority tasks missed, every minority task right
    candidate_wrong = list(range(12))  # 12 of the 40 minority tasks missed, every majority task right
    candidate = {"n": len(held), "primary": 1 - 12 / 200, "wrong": candidate_wrong}
    serving = {"n": len(held), "primary": 1 - 40 / 200, "wrong": serving_wrong}
    rule = SliceRule(min_eval=30, margin=0.05, alpha=0.05)
    refused = decide(candidate, serving, "v3", 0.01, 20, held, rule)
    assert not refused.passed and "kept v3" in refused.reason and "label: World" in refused.reason
    assert {r.name for r in refused.slices} == {"label: World", "source: forum"}
    assert refused.slices[0].candidate == 28 / 40 and refused.slices[0].serving == 1.0
    assert decide(candidate, serving, "v3", 0.01, 20).passed  # without the rule: the overall score wins
    assert decide(candidate, serving, "v3", 0.01, 20, held, SliceRule(min_eval=41)).passed  # too few to guard


def test_noise_within_the_margin_or_not_significant_passes():
    held = _held()
    # 2 minority tasks lost (5 %): not more than the margin
    assert regressions(held, [0, 1], [], 30, 0.05, 0.05) == []
    # 4 lost, 2 gained on 40: a net 5 % drop, within the margin
    assert regressions(held, [0, 1, 2, 3], [4, 5], 30, 0.05, 0.05) == []
    # 7 lost, 4 gained: a 7.5 % drop, but 7 of 11 discordant tasks is no evidence (p = 0.27)
    assert regressions(held, list(range(7)), list(range(7, 11)), 30, 0.05, 0.05) == []
    # 6 lost, none gained: a 15 % drop with p = 1/64, on the class and on the source (the same tasks)
    found = regressions(held, list(range(6)), [], 40, 0.05, 0.05)
    assert {r.name for r in found} == {"label: World", "source: forum"}
    assert all(round(r.p_value, 4) == round(1 / 64, 4) and r.candidate == 34 / 40 for r in found)


def test_the_report_lists_slices_worst_first_with_correction_rates():
    slices_v1 = {"label: World": {"n": 40, "accuracy": 0.9}, "label: Sports": {"n": 160, "accuracy": 0.8}}
    slices_v2 = {"label: World": {"n": 40, "accuracy": 0.7, "precision": 0.8},
                 "label: Sports": {"n": 160, "accuracy": 0.85, "precision": 0.9},
                 "source: forum": {"n": 40, "accuracy": 0.75}}  # fmt: skip
    versions = [{"version": "v1", "metrics": {"primary": 0.8, "slices": slices_v1}},
                {"version": "v2", "metrics": {"primary": 0.82, "slices": slices_v2}}]  # fmt: skip
    chosen = '[{"type": "choices", "value": {"choices": ["World"]}}]'
    corrections = [{"task_id": i, "prediction_model_version": "v2", "changed": i % 2 == 0, "final_result": chosen,
                    "annotated_at": "", "prediction_score": 0.5} for i in range(4)]  # fmt: skip
    data = ProjectData(5, versions, [], corrections, {}, "v2", task_fields={0: [("source", "forum")]})
    page = render(data)
    table = page.split("<h2>Slices</h2>")[1].split("</table>")[0]
    assert table.index("label: World") < table.index("source: forum") < table.index("label: Sports")
    assert "<td>label: World</td><td>40</td><td>0.700</td><td>0.800</td><td>-0.200</td><td>50% of 4</td>" in table
    assert "<td>source: forum</td><td>40</td><td>0.750</td><td></td><td></td><td>100% of 1</td>" in table
