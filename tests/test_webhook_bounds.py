"""Whatever a webhook carries, what it leaves behind is bounded: the audit store, the log and the
answer never hold an unbounded string (ten 5 MiB events once grew the audit DB by 50 MiB)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from backend.jobs.queue import RetrainRequest
from backend.server import create_app
from backend.server.events import QueueSink
from backend.stores.audit import AuditStore
from tests.support.payloads import annotation_event

HUGE = "A" * (5 * 1024 * 1024)


class _Queue:
    def request(self, project_id, kind="head", reason=""):  # type: ignore[no-untyped-def]
        return RetrainRequest("queued", project_id, "job-1")


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("audit.sqlite3*"))


def test_a_5_mib_action_or_field_leaves_nothing_unbounded(settings, caplog):
    audit = AuditStore.from_settings(settings)
    client = create_app(settings, predictor=None, events=QueueSink(_Queue(), audit)).test_client()
    client.post("/webhook", json=annotation_event(project=7))  # the store exists and holds one row
    before = _size(settings.data_dir)
    caplog.set_level(logging.DEBUG)
    bodies = [
        {"action": HUGE, "project": {"id": 7}},
        {"action": "ANNOTATION_CREATED\n" + HUGE, "project": {"id": 7}},
        {"action": "ANNOTATION_CREATED", "project": {"id": HUGE}},
        {"action": "ANNOTATION_CREATED", "project": {"id": 10**4000}},
        {"action": "ANNOTATION_CREATED", "project": HUGE},
    ]
    for body in bodies * 2:
        answer = client.post("/webhook", json=body)
        assert answer.status_code == 400, answer.json
        assert len(answer.get_data()) < 300  # the refused value is quoted shortened
    unknown = {"action": "NOT_A_LABEL_STUDIO_ACTION", "project": {"id": 7}}
    assert client.post("/webhook", json=unknown).status_code == 400
    # a real action with huge other fields: accepted, and only bounded fields are kept
    ids = [{"id": i} for i in range(100_000)] + [{"id": 2**70}, {"id": HUGE}]
    event = {
        **annotation_event(project=7),
        "action": "ANNOTATIONS_DELETED",
        "annotations": ids,
        "task": {"id": 1, "data": {"text": HUGE}},
    }
    assert client.post("/webhook", json=event).json["status"] == "queued"
    rows = audit.events(7)
    assert [r["action"] for r in rows] == ["ANNOTATION_CREATED", "ANNOTATIONS_DELETED"]
    assert len(rows[-1]["annotation_ids"]) < 10_000  # at most 1,000 ids
    assert _size(settings.data_dir) - before < 512 * 1024
    assert max(len(r.getMessage()) for r in caplog.records) < 2000
    assert not [r for r in caplog.records if "\n" in r.getMessage()]


def test_the_webhook_secret_and_its_rotation_are_documented():
    text = (Path(__file__).resolve().parents[1] / "docs" / "operations" / "hardening.md").read_text()
    assert "GET /api/webhooks" in text and "hitl configs load" in text and "HITL_WEBHOOK_SECRET" in text
    assert os.path.exists(Path(__file__).resolve().parents[1] / "docs" / "operations" / "hardening.md")
