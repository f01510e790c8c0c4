"""The whole loop on TREC-6, as an admin and an annotator would live it, against a real Label Studio."""

from __future__ import annotations

import pytest
import requests

from backend.stores.audit import AuditStore
from tests.e2e.test_queue_sync import idle, next_from_tab, predictions_of, run_sync
from tests.support.data import load_jsonl
from tests.support.services import wait_until

pytestmark = pytest.mark.e2e

LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
TREC_CONFIG = (
    '<View><Text name="question" value="$question"/><Choices name="type" toName="question">'
    + "".join(f'<Choice value="{label}"/>' for label in LABELS)
    + '</Choices><TextArea name="why" toName="question" placeholder="Why did you change it?"/></View>'
)


def answer(label: str, why: str | None = None) -> list[dict]:
    result = [{"from_name": "type", "to_name": "question", "type": "choices", "value": {"choices": [label]}}]
    if why:
        result.append({"from_name": "why", "to_name": "question", "type": "textarea", "value": {"text": [why]}})
    return result


def test_annotations_make_a_served_version_and_label_studio_serves_our_pick(stack):
    ls = stack.ls
    rows = load_jsonl("trec", "train", 150)
    # admin: load the config, import tasks, connect the backend (and its webhook with the secret)
    project = ls.create_project("TREC whole loop", TREC_CONFIG)
    ls.import_tasks(project, [{"question": r["text"], "gold": r["label"]} for r in rows])
    ls.connect_backend(project, stack.backend_url)
    ls.ensure_webhook(project, stack.backend_url + "/webhook", {"X-Hitl-Webhook-Secret": "e2e-webhook-secret"})

    # Label Studio asks the backend for predictions: cold start, no pre-annotation
    ls.sdk.actions.create(
        id="retrieve_tasks_predictions", project=project, selected_items={"all": True, "excluded": []}
    )
    tasks = wait_until(
        lambda: [t for t in stack.tasks(project) if t["predictions"]] or None, 60, "cold-start predictions"
    )
    assert {p["model_version"] for t in tasks for p in t["predictions"]} == {"cold-start"}
    assert all(p["result"] == [] for t in tasks for p in t["predictions"])

    # annotators label 40 questions (one with a rationale); every annotation is a webhook
    for i, task in enumerate(stack.tasks(project)[:40]):
        ls.create_annotation(
            task["id"], answer(task["data"]["gold"], "the question asks for a place" if i == 0 else None)
        )
    # every annotation is trained on, even one whose webhook came before Label Studio committed it
    # (the catch-up retrain pulls again a few seconds later)
    wait_until(
        lambda: (
            stack.registry.current(str(project))
            and stack.registry.meta(str(project), stack.registry.current(str(project)))["training"]["examples"] == 40
        ),
        180,
        "a version on all 40",
    )
    wait_until(lambda: idle(stack), 180, "retrains and the sync after publish")
    version = stack.registry.current(str(project))
    meta = stack.registry.meta(str(project), version)
    assert meta["training"]["examples"] == 40 and meta["spec"]["labels"] == LABELS

    # the server now answers with that version, with real pre-annotations
    body = {"project": f"{project}.0", "schema": TREC_CONFIG}
    version = stack.registry.served(str(project), version)  # the name Label Studio sees
    assert requests.post(stack.backend_url + "/setup", json=body, timeout=5).json()["model_version"] == version

    # the worker already synced after publishing; a manual sync finds the queue up to date
    summary = run_sync(stack, project)
    assert summary["model_version"] == version and summary["written"] == 0 and summary["scored"] == 110
    predictions = predictions_of(stack, project, version)
    assert len(predictions) == 110
    # every unlabeled task holds the version's prediction, pre-filled or not; the model's answer in each is recorded
    answers = AuditStore(str(stack.logs.parent / "data" / "audit.sqlite3")).shown(project)
    assert all(p["result"] == [] or p["result"][0]["value"]["choices"][0] in LABELS for p in predictions.values())
    recorded = [answers[(task, version)]["answer"][0] for task in predictions if (task, version) in answers]
    assert len(recorded) == len(predictions) and set(recorded) <= set(LABELS)
    assert next_from_tab(ls, project)["id"] == summary["top_task_id"]

    # the audit trail has every correction, with the rationale

    corrections = AuditStore(str(stack.logs.parent / "data" / "audit.sqlite3")).corrections(project)
    assert len({c["annotation_id"] for c in corrections}) == 40
    assert any(c["rationale"] == "the question asks for a place" for c in corrections)
