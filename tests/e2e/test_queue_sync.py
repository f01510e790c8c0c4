"""The sync against a real Label Studio: bulk-written predictions make Label Studio serve our ranking."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import requests
from rq import Queue
from rq.registry import StartedJobRegistry

from tests.support.services import ROOT, hitl, wait_until

pytestmark = pytest.mark.e2e


def choice(label: str) -> list[dict]:
    return [{"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def idle(stack) -> bool:
    return all(
        Queue(name, connection=stack.redis).count == 0 and StartedJobRegistry(name, connection=stack.redis).count == 0
        for name in ("hitl", "hitl-slow")
    )


def run_sync(stack, project: int, *extra: str) -> dict:
    command = hitl("sync", "--project", str(project), "--quiet", "--json", *extra)
    out = subprocess.run(
        command, env={**os.environ, **stack.env}, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def predictions_of(stack, project: int, version: str) -> dict[int, dict]:
    found = {}
    for task in stack.ls.unlabeled_tasks(project):
        current = [p for p in task["predictions"] if p["model_version"] == version]
        assert len(current) <= 1, f"task {task['id']} has {len(current)} predictions of {version}"
        if current:
            found[task["id"]] = current[0]
    return found


@pytest.fixture(scope="module")
def trained_project(stack, ag_rows):
    project = stack.new_project("Queue sync", ag_rows[:300])
    stack.ls.import_tasks(project, [{"text": ""}, {"text": 12345}])  # bad data: skipped, counted
    tasks = [t for t in stack.tasks(project) if t["data"].get("gold")][:40]
    for task in tasks:
        stack.ls.create_annotation(task["id"], choice(task["data"]["gold"]))
    wait_until(lambda: stack.registry.current(str(project)), 120, "a first version")
    wait_until(lambda: idle(stack), 180, "the worker to finish retraining and syncing")
    return project


def test_sync_makes_label_studio_serve_our_most_informative_task(stack, trained_project):
    project = trained_project
    summary = run_sync(stack, project)
    version = stack.registry.served(str(project))  # the name Label Studio sees (the version's family)
    assert summary["model_version"] == version
    assert summary["pool"] == 262 and summary["scored"] == 260
    assert summary["skipped"] == {"task data 'text' is empty": 1, "task data 'text' must be a string, got int": 1}

    detail = stack.ls.project(project)
    assert detail["sampling"] == "Uncertainty sampling" and detail["model_version"] == version
    predictions = predictions_of(stack, project, version)
    assert len(predictions) == 260
    lowest = min(predictions, key=lambda task_id: (predictions[task_id]["score"], task_id))
    assert summary["top_task_id"] == lowest
    assert stack.ls.next_task(project)["id"] == lowest  # Label Studio agrees

    # the top of the queue alternates clusters, and Label Studio follows our order
    (first, first_cluster, _), (second, second_cluster, _) = summary["top"][:2]
    assert first == lowest and first_cluster != second_cluster
    stack.ls.create_annotation(lowest, choice(stack.ls.next_task(project)["data"]["gold"]))
    assert stack.ls.next_task(project)["id"] == second


def test_rerun_skips_unchanged_tasks_and_converges(stack, trained_project):
    wait_until(lambda: idle(stack), 180, "the worker to go idle")
    first = run_sync(stack, trained_project)
    again = run_sync(stack, trained_project)
    assert again["written"] == 0 and again["up_to_date"] == again["scored"]
    assert again["top_task_id"] == first["top_task_id"]
    version = stack.registry.served(str(trained_project))
    assert len(predictions_of(stack, trained_project, version)) == again["scored"]  # no duplicates


def test_admin_view_sorted_by_score_exists(stack, trained_project):
    views = [v for v in (view.model_dump() for view in stack.ls.sdk.views.list(project=trained_project))]
    sorted_views = [v for v in views if (v.get("data") or {}).get("ordering") == ["tasks:predictions_score"]]
    assert len(sorted_views) == 1


def test_label_studio_fetches_predictions_from_the_backend(stack, trained_project):
    # Label Studio's own path: the Data Manager action makes it call our /predict for the selected tasks
    fresh = stack.ls.create_project("Fetch predictions", stack.ls.label_config(trained_project))
    stack.ls.import_tasks(fresh, [{"text": "The striker scored twice in the final."}, {"text": "Oil prices fell."}])
    stack.ls.connect_backend(fresh, stack.backend_url)
    stack.ls.sdk.actions.create(id="retrieve_tasks_predictions", project=fresh,
                                selected_items={"all": True, "excluded": []})  # fmt: skip
    tasks = wait_until(lambda: [t for t in stack.tasks(fresh) if t["predictions"]] or None, 60, "predictions")
    assert len(tasks) == 2
    assert all(t["predictions"][0]["model_version"] == "cold-start" for t in tasks)  # new project: cold start
    assert requests.get(stack.backend_url + "/health", timeout=2).json()["status"] == "UP"
