"""Request bodies shaped like Label Studio 1.23 sends them.

Shapes copied from label_studio/ml/api_connector.py (``_prep_prediction_req``, ``setup``) and
tasks/serializers.py (``TaskSimpleSerializer``: every Task field but precomputed_agreement and
allow_skip, plus annotations and predictions).
"""

from __future__ import annotations

from typing import Any

AG_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="topic" toName="text" choice="single-radio">
    <Choice value="World"/>
    <Choice value="Sports"/>
    <Choice value="Business"/>
    <Choice value="Sci/Tech"/>
  </Choices>
</View>"""

MULTI_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="tags" toName="text" choice="multiple">
    <Choice value="World"/>
    <Choice value="Sports"/>
    <Choice value="Business"/>
    <Choice value="Sci/Tech"/>
  </Choices>
  <TextArea name="rationale" toName="text" placeholder="Why did you change the prediction?"/>
</View>"""

PROJECT_UID = "7.1764000000"


def ls_task(task_id: int, data: dict[str, Any], project: int = 7) -> dict[str, Any]:
    return {
        "id": task_id,
        "annotations": [],
        "predictions": [],
        "data": data,
        "meta": {},
        "created_at": "2026-11-24T10:00:00.000000Z",
        "updated_at": "2026-11-24T10:00:00.000000Z",
        "is_labeled": False,
        "overlap": 1,
        "inner_id": task_id,
        "total_annotations": 0,
        "cancelled_annotations": 0,
        "total_predictions": 0,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": project,
        "updated_by": None,
        "file_upload": None,
        "comment_authors": [],
    }


def predict_body(tasks: list[Any], config: str = AG_CONFIG, project: str = PROJECT_UID) -> dict[str, Any]:
    return {
        "tasks": tasks,
        "project": project,
        "label_config": config,
        "params": {"login": None, "password": None, "context": None},
    }


def setup_body(config: str = AG_CONFIG, project: str = PROJECT_UID) -> dict[str, Any]:
    return {
        "project": project,
        "schema": config,
        "hostname": "http://localhost:8080",
        "access_token": "0123456789abcdef",
        "extra_params": None,
    }


def annotation_event(action: str = "ANNOTATION_CREATED", project: int = 7, task: int = 1, annotation: int = 11):
    return {
        "action": action,
        "annotation": {
            "id": annotation,
            "result": [{"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": ["Sports"]}}],
            "task": task,
            "project": project,
            "completed_by": 1,
            "was_cancelled": False,
        },
        "task": {"id": task, "data": {"text": "a match"}, "project": project},
        "project": {"id": project, "title": "AG News"},
    }
