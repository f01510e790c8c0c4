"""Slices: per-class and per-field held-out scores, and a gate that refuses a candidate which makes
a guarded slice significantly worse even when its overall score improves."""

import numpy as np

from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.dataset import build_dataset
from backend.learning.gate import SliceRule, decide, evaluate
from backend.learning.slices import regressions, slice_scores
from backend.oversight.collect import ProjectData
from backend.oversight.report import render
from tests.support.payloads import AG_CONFIG

SPEC = parse_label_config(AG_CONFIG)


def _held(n_minority: int = 40, n_majority: int = 160) -> list[Example]:
    minority = [Example(f"m{i}", ("World",), i, slices=(("source", "forum"),)) for i in range(n_minority)]
    majority = [Example(f"s{i}", ("Sports",), 1000 + i, slices=(("source", "news"),)) for i in range(n_majority)]
    return minority + majority


def test_field_values_reach_examples_and_scores_per_slice():
    tasks = [
        {
            "id": i,
            "data": {"text": f"t{i}", "source": src, "meta": {"x": 1}},
            "annotations": [
                {
                    "id": 100 + i,
                    "result": [
                        {"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
                    ],
                }
            ],
        }
        for i, (src, label) in enumerate([("forum", "World"), ("news", "Sports"), ("news", "World")])
    ]
    examples = build_dataset(1, tasks, SPEC, 1000, ["source", "meta", "missing"]).examples
    assert [ex.slices for ex in examples] == [(("source", "forum"),), (("source", "news"),), (("source", "news"),)]
    scores = slice_scores(examples, wrong=[2])  # the third task (news, World) was missed
    assert scores["source=news"] == {"n": 2, "accuracy": 0.5}
    assert scores["class: World"] == {"n": 2, "accuracy": 0.5}
    assert scores["source=forum"]["accuracy"] == scores["class: Sports"]["accuracy"] == 1.0


def test_evaluate_reports_recall_and_precision_per_class():
    examples = [Example("a", ("World",)), Example("b", ("Sports",)), Example("c", ("Sports",))]
    probs = np.array([[0.9, 0.1, 0, 0], [0.2, 0.8, 0, 0], [0.6, 0.4, 0, 0]])
    metrics = evaluate(probs, examples, SPEC)
    assert metrics["wrong"] == [2]
    assert metrics["slices"]["class: Sports"] == {"n": 2, "accuracy": 0.5, "precision": 1.0}
    assert metrics["slices"]["class: World"] == {"n": 1, "accuracy": 1.0, "precision": 0.5}


def test_a_candidate_better_overall_but_worse_on_a_minority_is_refused():
    held = _held()
    serving_wrong = [40 + i for i in range(40)]  # 40 majority tasks missed, every minority task right
    candidate_wrong = list(range(12))  # 12 of the 40 minority tasks missed, every majority task right
    candidate = {"n": len(held), "primary": 1 - 12 / 200, "wrong": candidate_wrong}
    serving = {"n": len(held), "primary": 1 - 40 / 200, "wrong": serving_wrong}
    rule = SliceRule(min_eval=30, margin=0.05, alpha=0.05)
    refused = decide(candidate, serving, "v3", 0.01, 20, held, rule)
    assert not refused.passed and "kept v3" in refused.reason and "class: World" in refused.reason
    assert {r.name for r in refused.slices} == {"class: World", "source=forum"}
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
    # 6 lost, none gained: a 15 % drop with p = 1/64, but 4 slices are guarded: 1/64 >= 0.05 / 4 (Holm)
    assert regressions(held, list(range(6)), [], 40, 0.05, 0.05) == []
    # 8 lost: p = 1/256 on the class and on the source (the same tasks), below 0.05 / 4 and 0.05 / 3
    found = regressions(held, list(range(8)), [], 40, 0.05, 0.05)
    assert {r.name for r in found} == {"class: World", "source=forum"}
    assert all(r.p_value == 1 / 256 and r.candidate == 32 / 40 for r in found)


def test_the_report_lists_slices_worst_first_with_correction_rates():
    slices_v1 = {"class: World": {"n": 40, "accuracy": 0.9}, "class: Sports": {"n": 160, "accuracy": 0.8}}
    slices_v2 = {
        "class: World": {"n": 40, "accuracy": 0.7, "precision": 0.8},
        "class: Sports": {"n": 160, "accuracy": 0.85, "precision": 0.9},
        "source=forum": {"n": 40, "accuracy": 0.75},
    }
    versions = [
        {"version": "v1", "metrics": {"primary": 0.8, "slices": slices_v1}},
        {"version": "v2", "metrics": {"primary": 0.82, "slices": slices_v2}},
    ]
    chosen = '[{"type": "choices", "value": {"choices": ["World"]}}]'
    corrections = [
        {
            "task_id": i,
            "prediction_model_version": "v2",
            "changed": i % 2 == 0,
            "final_result": chosen,
            "annotated_at": "",
            "prediction_score": 0.5,
        }
        for i in range(4)
    ]
    data = ProjectData(5, versions, [], corrections, {}, "v2", task_fields={0: [("source", "forum")]})
    page = render(data)
    table = page.split("<h2>Slices</h2>")[1].split("</table>")[0]
    assert table.index("class: World") < table.index("source=forum") < table.index("class: Sports")
    assert "<td>class: World</td><td>40</td><td>0.700</td><td>0.800</td><td>-0.200</td><td>50% of 4</td>" in table
    assert "<td>source=forum</td><td>40</td><td>0.750</td><td></td><td></td><td>100% of 1</td>" in table


def test_a_field_with_a_value_per_task_keeps_only_its_largest_slices():
    from backend.learning.slices import MAX_VALUES, members

    examples = [Example(f"t{i}", ("World",), i, slices=(("ticket", str(i)), ("source", "web"))) for i in range(120)]
    examples += [Example("dup", ("World",), 500 + i, slices=(("ticket", "7"),)) for i in range(3)]
    names = members(examples)
    tickets = [name for name in names if name.startswith("ticket=")]
    assert len(tickets) == MAX_VALUES and len(names["ticket=7"]) == 4  # the largest value first
    assert len(names["source=web"]) == 120 and len(names["class: World"]) == 123
