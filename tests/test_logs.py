"""Structured logs: request ids tie a request's lines together; task text never reaches INFO logs."""

import json
import logging

from backend import logs
from backend.server import create_app
from tests.support.payloads import ls_task, predict_body
from tests.test_server_protocol import _train

SECRET_TEXT = "Confidential merger talks between Acme and Globex"


def test_json_logs_carry_the_request_id_and_no_task_text(settings, predictor, capsys):
    _train(predictor)
    logs.configure("INFO", "json")
    try:
        client = create_app(settings, predictor=predictor).test_client()
        body = predict_body([ls_task(1, {"text": SECRET_TEXT}), ls_task(2, {"text": SECRET_TEXT})])
        response = client.post("/predict", json=body, headers={"X-Request-Id": "ls-req-42"})
        assert response.headers["X-Request-Id"] == "ls-req-42"
        forged = client.post("/predict", json=body, headers={"X-Request-Id": "x" * 65})
        assert len(forged.headers["X-Request-Id"]) == 16  # too long to log verbatim: a fresh id instead
        spoof = client.post("/predict", json=body, headers={"X-Request-Id": 'a" "level": "ERROR'})
        assert spoof.headers["X-Request-Id"] != 'a" "level": "ERROR'
        logging.getLogger("backend.test").info("outside any request")
    finally:
        logs.configure("INFO", "text")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    mine = [entry for entry in lines if entry["request_id"] == "ls-req-42"]
    access = next(entry for entry in mine if entry.get("path") == "/predict")
    assert access["status"] == 200 and access["tasks"] == 2 and access["method"] == "POST"
    assert any("predicted 2 tasks" in entry["message"] for entry in mine)  # the predictor's line, same id
    assert next(e for e in lines if e["message"] == "outside any request")["request_id"] == "-"
    assert all(SECRET_TEXT not in json.dumps(entry) for entry in lines)
