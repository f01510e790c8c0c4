"""A wrong Label Studio token is loud: a warning at start, /ready says so, and every annotation
webhook is logged and kept until Label Studio can confirm its project, then retrained.
A real HTTP server on 127.0.0.1 plays Label Studio; a real Redis holds the queue."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest
import redis
from pydantic import SecretStr

from backend.jobs.queue import KEPT, RetrainQueue
from backend.jobs.scheduled import confirm_kept
from backend.server import create_app
from backend.server.events import QueueSink
from backend.server.projects import ServedProjects
from backend.server.serve import check_label_studio
from backend.stores.labelstudio import LabelStudioClient
from tests.support.payloads import annotation_event

PROJECT = 10**6 + 30


class _LabelStudio(BaseHTTPRequestHandler):
    token: ClassVar[str] = "right"

    def do_GET(self):
        if self.headers.get("Authorization", "").split()[-1:] != [type(self).token]:
            status, body = 401, {"detail": "Invalid token."}
        elif self.path.startswith("/api/current-user/whoami"):
            status, body = 200, {"id": 1, "email": "admin@example.com"}
        elif self.path.startswith(f"/api/projects/{PROJECT}"):
            status, body = 200, {"id": PROJECT, "title": "news"}
        elif self.path.startswith("/api/ml"):
            status, body = 200, [{"id": 1, "url": "http://127.0.0.1:9090", "project": PROJECT}]
        else:
            status, body = 404, {"detail": "Not found."}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # type: ignore[no-untyped-def]
        pass


@pytest.fixture
def label_studio():
    server = HTTPServer(("127.0.0.1", 0), _LabelStudio)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_a_wrong_token_is_loud_and_no_webhook_is_dropped(label_studio, redis_server, settings, caplog):
    wrong = settings.model_copy(
        update={
            "label_studio_url": label_studio,
            "label_studio_api_key": SecretStr("wrong"),
            "redis_url": redis_server.url,
            "queue_name": "token-test",
        }
    )
    connection = redis.Redis.from_url(redis_server.url)
    connection.delete(KEPT)
    queue = RetrainQueue(wrong, connection)
    projects = ServedProjects(wrong, connection, lambda: LabelStudioClient.from_settings(wrong, 5))
    client = create_app(wrong, predictor=None, events=QueueSink(queue, None, projects)).test_client()
    caplog.set_level(logging.WARNING)

    check_label_studio(wrong)  # what `hitl serve` (and so `hitl run`) does at start
    assert "refused the token" in caplog.text and "!!!" in caplog.text
    ready = client.get("/ready")
    assert ready.status_code == 503 and "refused the token" in ready.json["label_studio"]

    caplog.clear()
    answer = client.post("/webhook", json=annotation_event(project=PROJECT)).json
    assert answer["status"] == "kept" and "refused the token" in answer["reason"]
    assert f"project {PROJECT} kept" in caplog.text  # logged, not silently dropped
    assert queue.kept() == [PROJECT]
    assert confirm_kept(wrong, queue) == {} and queue.kept() == [PROJECT]  # still refused: still kept

    fixed = wrong.model_copy(update={"label_studio_api_key": SecretStr("right")})
    assert confirm_kept(fixed, queue) == {PROJECT: "queued"} and queue.kept() == []
    assert any(job.kwargs["project_id"] == PROJECT for job in queue.queue.get_jobs())


def test_the_kept_events_are_bounded(redis_server, settings):
    queue = RetrainQueue(
        settings.model_copy(update={"redis_url": redis_server.url}), redis.Redis.from_url(redis_server.url)
    )
    queue.connection.delete(KEPT)
    for project in range(1200):
        queue.keep_unconfirmed(10**7 + project)
    kept = queue.kept()
    assert len(kept) == 1000 and 10**7 + 1199 in kept and 10**7 not in kept  # the newest kept
    queue.connection.delete(KEPT)
