"""NER through a real Label Studio: WNUT-17 sentences, span annotations, a served tagger, its queue."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from label_studio_sdk.label_interface import LabelInterface

from backend.labeling import parse_label_config
from backend.labeling.spans import from_tokens, spans_from_result, spans_result
from tests.e2e.test_queue_sync import idle, next_from_tab, predictions_of, run_sync
from tests.support.data import load_jsonl
from tests.support.services import wait_until

pytestmark = pytest.mark.e2e

CONFIG = (Path(__file__).resolve().parents[2] / "labeling_configs" / "named_entity_recognition.xml").read_text()
SPEC = parse_label_config(CONFIG)


def test_span_annotations_train_a_tagger_that_label_studio_serves(stack):
    ls = stack.ls
    rows = [r for r in load_jsonl("wnut17", "train", 200) if any(t != "O" for t in r["tags"])][:70]
    sentences = [from_tokens(r["tokens"], r["tags"]) for r in rows]
    sentences[0] = ("🎉 " + sentences[0][0], sentences[0][1])  # an emoji shifts Label Studio's UTF-16 offsets
    project = ls.create_project("WNUT-17 entities", CONFIG)
    ls.import_tasks(project, [{"text": text} for text, _ in sentences])
    ls.connect_backend(project, stack.backend_url)
    ls.ensure_webhook(project, stack.backend_url + "/webhook", {"X-Hitl-Webhook-Secret": "e2e-webhook-secret"})

    # annotators mark the entities of 50 sentences (regions as the editor writes them, in UTF-16)
    gold = {}
    tasks = stack.tasks(project)
    for task in tasks[:50]:
        text = task["data"]["text"]
        spans = next(s for t, s in sentences if t == text)
        if text.startswith("🎉"):
            spans = [type(s)(s.start + 2, s.end + 2, s.label) for s in spans]
        gold[task["id"]] = spans
        ls.create_annotation(task["id"], spans_result(SPEC, spans, text))
    wait_until(lambda: stack.registry.current(str(project)), 180, "a trained NER version")
    wait_until(lambda: idle(stack), 300, "retrains and the sync after publish")
    version = stack.registry.current(str(project))
    meta = stack.registry.meta(str(project), version)
    assert meta["spec"]["kind"] == "ner" and meta["training"]["examples"] == 50
    assert "f1" in meta["metrics"] and "per_type_f1" in meta["metrics"]

    # Label Studio stored the emoji sentence's spans in UTF-16; the worker read them back exactly
    emoji_task = next(t for t in tasks if t["data"]["text"].startswith("🎉"))
    stored = ls.sdk.tasks.get(emoji_task["id"]).annotations[0]["result"]
    assert stored[0]["value"]["start"] == gold[emoji_task["id"]][0].start + 1  # one emoji = 2 UTF-16 units
    assert spans_from_result(SPEC, stored, emoji_task["data"]["text"]) == gold[emoji_task["id"]]

    # the server pre-annotates with regions Label Studio accepts, and the sync ranks the 20 left
    body = {"project": f"{project}.0", "schema": CONFIG}
    version = stack.registry.served(str(project), version)  # the name Label Studio sees
    assert requests.post(stack.backend_url + "/setup", json=body, timeout=5).json()["model_version"] == version
    summary = run_sync(stack, project)
    assert summary["model_version"] == version and summary["scored"] == 20
    predictions = predictions_of(stack, project, version)
    assert len(predictions) == 20
    interface = LabelInterface(CONFIG)
    for prediction in predictions.values():
        assert interface.validate_prediction({"result": prediction["result"]}, return_errors=True) == []
        assert 0.0 <= prediction["score"] <= 1.0
    assert next_from_tab(ls, project)["id"] == summary["top_task_id"]
