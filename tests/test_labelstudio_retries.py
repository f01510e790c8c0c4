"""Transient Label Studio failures are retried; a real HTTP server on 127.0.0.1 plays a flaky Label Studio."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest
from label_studio_sdk.core.api_error import ApiError

from backend.stores.labelstudio import LabelStudioClient


class _Flaky(BaseHTTPRequestHandler):
    answers: ClassVar[list[int]] = []
    seen = 0

    def do_POST(self):
        type(self).seen += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status = type(self).answers.pop(0) if type(self).answers else 201
        body = json.dumps({"created": 1} if status < 400 else {"detail": "boom"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # what a failed import left: nothing (the tasks hold no prediction), so it is sent again
        body = json.dumps({"tasks": [], "total": 0, "total_annotations": 0, "total_predictions": 0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky():
    server = HTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Flaky.seen = 0
    yield server
    server.shutdown()


def test_5xx_is_retried_until_it_succeeds(flaky, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    _Flaky.answers = [502, 503]
    client = LabelStudioClient(f"http://127.0.0.1:{flaky.server_port}", "token")
    assert client.import_predictions(1, [{"task": 1, "result": [], "score": 0.5, "model_version": "v"}]) == 1
    assert _Flaky.seen == 3


def test_4xx_is_not_retried(flaky, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    _Flaky.answers = [400]
    client = LabelStudioClient(f"http://127.0.0.1:{flaky.server_port}", "token")
    with pytest.raises(ApiError):
        client.import_predictions(1, [{"task": 1, "result": [], "score": 0.5, "model_version": "v"}])
    assert _Flaky.seen == 1


def test_gives_up_after_the_last_attempt(flaky, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    _Flaky.answers = [500] * 100
    client = LabelStudioClient(f"http://127.0.0.1:{flaky.server_port}", "token")
    with pytest.raises(ApiError):
        client.import_predictions(1, [{"task": 1, "result": [], "score": 0.5, "model_version": "v"}])
    # four attempts of ours, each with the SDK's own retries of a 5xx underneath
    assert _Flaky.seen >= 4 and _Flaky.seen % 4 == 0 and _Flaky.answers
