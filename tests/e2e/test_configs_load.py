"""`hitl configs load` against a real Label Studio: one command sets a project up, and twice changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.services import ROOT, hitl

pytestmark = pytest.mark.e2e

CONFIG = ROOT / "labeling_configs" / "text_classification.xml"


def load(stack, path: Path, title: str) -> dict:
    command = hitl("configs", "load", str(path), "--project", title, "--backend-url", stack.backend_url)
    out = subprocess.run(
        command, env={**os.environ, **stack.env}, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def test_load_twice_leaves_one_backend_and_one_webhook(stack, tmp_path):
    first = load(stack, CONFIG, "Configs load")
    assert first["created"] is True and first["spec"]["kind"] == "classification"
    second = load(stack, CONFIG, "Configs load")
    assert second["created"] is False and second["config_updated"] is False
    assert (second["project_id"], second["ml_backend_id"], second["webhook_id"]) == (
        first["project_id"],
        first["ml_backend_id"],
        first["webhook_id"],
    )
    project = first["project_id"]
    assert [b["url"] for b in stack.ls.ml_backends(project)] == [stack.backend_url]
    hooks = stack.ls.webhooks(project)
    assert len(hooks) == 1 and hooks[0]["headers"] == {"X-Hitl-Webhook-Secret": "e2e-webhook-secret"}
    assert stack.ls.project(project)["sampling"] == "Uncertainty sampling"

    changed = tmp_path / "changed.xml"
    changed.write_text(CONFIG.read_text().replace('<Choice value="World"/>', '<Choice value="Politics"/>'))
    third = load(stack, changed, "Configs load")
    assert third["config_updated"] is True and "Politics" in stack.ls.label_config(project)
    assert len(stack.ls.ml_backends(project)) == 1 and len(stack.ls.webhooks(project)) == 1


def test_wrong_token_wrong_url_and_a_broken_config_each_get_one_line(stack, tmp_path):
    """A wrong token once printed a 25-line traceback with the session cookie; a wrong URL 93 lines."""
    from backend.tools.bench.common import free_port

    broken = tmp_path / "broken.xml"
    broken.write_text(
        '<View><Text name="text" value="$text"/><Choices name="c" toName="nope">'
        '<Choice value="a"/><Choice value="b"/></Choices></View>'
    )
    cases = [
        ({"HITL_LABEL_STUDIO_API_KEY": "0" * 40}, CONFIG, "refused the API key (HTTP 401)"),
        ({"HITL_LABEL_STUDIO_URL": f"http://127.0.0.1:{free_port()}"}, CONFIG, "cannot reach Label Studio"),
        ({}, broken, "toName names an object tag"),
    ]
    for env, path, expected in cases:
        command = hitl("configs", "load", str(path), "--project", "Errors", "--backend-url", stack.backend_url)
        out = subprocess.run(
            command, env={**os.environ, **stack.env, **env}, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        text = out.stdout + out.stderr
        assert out.returncode != 0 and expected in text, text
        assert "Traceback" not in text and "sessionid" not in text.lower() and "set-cookie" not in text.lower()
        assert len([line for line in text.splitlines() if line.strip()]) <= 2, text
    validate = subprocess.run(
        hitl("configs", "validate", str(broken)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **stack.env},
    )
    assert validate.returncode == 1 and validate.stdout.startswith("INVALID") and "Traceback" not in validate.stderr


def test_hitl_import_sends_valid_rows_in_bulk_and_orders_the_queue_at_once(stack, tmp_path, ag_rows):
    project = stack.ls.create_project("Imported", (ROOT / "labeling_configs" / "text_classification.xml").read_text())
    rows = [{"text": r["text"], "source": "ag"} for r in ag_rows[:30]]
    rows[4], rows[8] = {"txt": "typo in the field name"}, {"text": ""}
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run(
        hitl("import", str(path), "--project", str(project), "--quiet"),
        cwd=ROOT,
        timeout=300,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    # one line per row left out, by line number (hitl import checks the whole file first)
    assert f"project {project}: 28 of 30 tasks imported, 2 left out:\n  line 5: no non-empty 'text'" in out.stdout
    assert "line 9:" in out.stdout
    tasks = stack.tasks(project)
    assert len(tasks) == 28 and {t["data"]["source"] for t in tasks} == {"ag"}
    # the queue is ordered before anyone annotates: every task has a prediction of the project's version
    detail = stack.ls.project(project)
    assert detail["model_version"] == "cold-start" and detail["sampling"] == "Uncertainty sampling"
    assert all(any(p["model_version"] == "cold-start" for p in t["predictions"]) for t in tasks)
