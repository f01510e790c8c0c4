"""Proposals are safe whatever Label Studio's bulk-action dialog chooses (issue 28): an annotation the
action made from the model's own prediction on a proposal's task, with the label the correction
rejected, is not trained on until a person saves the task again (``jobs/proposals.held_back``)."""

from __future__ import annotations

from backend.jobs.proposals import held_back, proposal_version
from backend.labeling import parse_label_config
from tests.support.payloads import AG_CONFIG

SPEC = parse_label_config(AG_CONFIG)
PROPOSAL = {"proposal_id": 41, "label": "Sports", "wrong_label": "World", "task_ids": [1, 2, 3, 4, 5]}
MODEL, OWN = "v7-20261207000000", proposal_version(41, "Sports")


def _task(task_id: int, label: str, parent_version: str | None, lead_time: float | None):
    predictions = [{"id": 100 + task_id, "model_version": MODEL}, {"id": 200 + task_id, "model_version": OWN}]
    parent = {MODEL: 100 + task_id, OWN: 200 + task_id, None: None}[parent_version]
    annotation = {
        "id": task_id,
        "result": [{"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": [label]}}],
        "parent_prediction": parent,
        "lead_time": lead_time,
    }
    return {"id": task_id, "predictions": predictions, "annotations": [annotation]}


def test_only_the_bulk_actions_annotations_of_the_rejected_label_are_held_back():
    tasks = [
        _task(1, "World", MODEL, None),  # the dialog's first choice: the model's (rejected) label, in bulk
        _task(2, "Sports", OWN, None),  # the proposal accepted in bulk: trained on
        _task(3, "World", MODEL, 14.2),  # a person on the labeling page kept the model's label: their call
        _task(4, "World", MODEL, 3.5),  # made in bulk, then saved again by a person (the page adds its time)
        _task(5, "World", None, None),  # no parent prediction: not the bulk action
        _task(9, "World", MODEL, None),  # not a proposal's task
    ]
    assert held_back(tasks, [PROPOSAL], SPEC) == {1}
    assert held_back(tasks, [], SPEC) == set()
