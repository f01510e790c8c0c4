from backend.labeling import parse_label_config
from backend.labeling.examples import Example
from backend.learning.dataset import build_dataset, split
from tests.support.payloads import MULTI_CONFIG

SPEC = parse_label_config(MULTI_CONFIG)


def region(*labels):
    return {"from_name": "tags", "to_name": "text", "type": "choices", "value": {"choices": list(labels)}}


def rationale(text):
    return {"from_name": "rationale", "to_name": "text", "type": "textarea", "value": {"text": [text]}}


def task(task_id, annotations, predictions=(), text="some text"):
    return {"id": task_id, "data": {"text": text}, "annotations": list(annotations), "predictions": list(predictions)}


def ann(ann_id, result, updated, cancelled=False, user=1, parent_prediction=None, created=None):
    return {
        "id": ann_id,
        "result": result,
        "updated_at": updated,
        "created_at": created or updated,
        "was_cancelled": cancelled,
        "completed_by": user,
        "parent_prediction": parent_prediction,
    }


def test_latest_non_cancelled_annotation_wins_and_all_are_audited():
    prediction = {
        "id": 50,
        "result": [region("World")],
        "score": 0.4,
        "model_version": "v3-x",
        "created_at": "2026-11-01T00:00:00Z",
    }
    tasks = [
        task(
            1,
            [
                ann(10, [region("Sports")], "2026-11-02T10:00:00Z", user=1, parent_prediction=50),
                ann(11, [region("Business"), rationale("it is about markets")], "2026-11-03T10:00:00Z", user=2),
                ann(12, [region("World")], "2026-11-04T10:00:00Z", cancelled=True, user=3),
            ],
            [prediction],
        ),
        task(2, [ann(20, [], "2026-11-02T10:00:00Z", cancelled=True)]),
        task(3, []),
        task(4, [ann(40, [rationale("no idea")], "2026-11-02T10:00:00Z")]),
        task(5, [ann(50, [region("Sports")], "2026-11-02T10:00:00Z")], text="   "),
    ]
    data = build_dataset(9, tasks, SPEC, max_chars=1000)
    assert data.examples == [Example("some text", ("Business",), 1, 11)]
    assert data.skipped == {
        "only cancelled annotations": 1,
        "no annotation": 1,
        "annotation sets no choice": 1,
        "unreadable task data": 1,
    }
    by_id = {c.annotation_id: c for c in data.corrections}
    assert set(by_id) == {10, 11, 40, 50}  # cancelled ones are not corrections
    assert by_id[10].prediction_model_version == "v3-x" and by_id[10].changed is True
    assert by_id[10].annotator == "1" and by_id[10].prediction_score == 0.4
    assert by_id[11].rationale == "it is about markets"
    # annotation 11 has no parent prediction: nothing was shown (issue 26: the audit guessed the newest one)
    assert by_id[11].prediction_model_version is None and by_id[11].changed is None


def test_unchanged_prediction_is_recorded_as_accepted():
    prediction = {
        "id": 7,
        "result": [region("World")],
        "score": 0.9,
        "model_version": "v1-x",
        "created_at": "2026-11-01T00:00:00Z",
    }
    data = build_dataset(
        9, [task(1, [ann(1, [region("World")], "2026-11-02T00:00:00Z", parent_prediction=7)], [prediction])], SPEC, 1000
    )
    assert data.corrections[0].changed is False


def test_split_is_stable_and_disjoint():
    examples = [Example(f"t{i}", ("World",), i) for i in range(1000)]
    train, held = split(examples, 0.15)
    _, again_held = split(list(reversed(examples)), 0.15)
    assert {e.task_id for e in held} == {e.task_id for e in again_held}
    assert not {e.task_id for e in train} & {e.task_id for e in held}
    assert 100 < len(held) < 200


def test_a_cold_start_prediction_is_not_a_pre_annotation_a_human_changed():
    """Cold start serves an empty result: the annotator had nothing to change (the report's rate)."""
    cold = {"id": 1, "model_version": "cold-start", "score": 0.0, "result": [], "created_at": "2026-11-24T09:00:00Z"}
    annotation = {"id": 9, "result": [region("World")], "created_at": "2026-11-24T10:00:00Z", "parent_prediction": 1}
    data = build_dataset(7, [task(5, [annotation], [cold])], SPEC, 10_000)
    assert data.corrections[0].prediction_model_version == "cold-start" and data.corrections[0].changed is None
