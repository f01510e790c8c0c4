"""Prometheus metrics at /metrics: counted in the server, and read from the audit store and Redis."""

import re

import redis

from backend.jobs.queue import RetrainQueue
from backend.server import create_app
from backend.server.events import QueueSink
from backend.stores.audit import AuditStore
from tests.support.payloads import AG_CONFIG, ls_task, predict_body
from tests.test_audit import _correction
from tests.test_server_protocol import _train


def _value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in metrics:\n{text}")


def test_metrics_count_predictions_latency_corrections_and_queue(settings, predictor, redis_server, tmp_path):
    settings = settings.model_copy(update={"redis_url": redis_server.url, "queue_name": "metrics-test"})
    audit = AuditStore(str(tmp_path / "audit.sqlite3"))
    audit.record_corrections([_correction(1, changed=True), _correction(2, changed=False), _correction(3)])
    audit.record_version(7, "v2-x", "head", True, 20, "fp", {"primary": 0.9}, {"passed": True})
    audit.record_drift_check(7, "v2-x", 200, 0.4, 0.3, False)
    audit.record_drift_check(7, "v2-x", 200, 0.001, 0.002, True)  # the latest check counts
    audit.record_drift_check(8, "v1-y", 200, 0.5, 0.6, False)
    queue = RetrainQueue(settings, redis.Redis.from_url(redis_server.url))
    queue.queue.empty()
    client = create_app(settings, predictor=predictor, events=QueueSink(queue, audit)).test_client()
    version = _train(predictor)

    tasks = [ls_task(i, {"text": "Stocks fell sharply today"}) for i in range(3)] + [{"id": 9, "data": {}}]
    assert client.post("/predict", json=predict_body(tasks, AG_CONFIG)).status_code == 200
    queue.request(424242, reason="test")  # one job waits: no worker listens on this queue (a project of its own,
    # so no pending flag left in this Redis by other tests can coalesce it away)
    queue.record_duration(7, "head", "published", 4.25)

    text = client.get("/metrics").get_data(as_text=True)
    assert _value(text, "hitl_predictions_total", model_version=version) == 3
    assert _value(text, "hitl_task_errors_total") == 1
    assert _value(text, "hitl_predict_batch_tasks_count") == 1
    assert _value(text, "hitl_request_seconds_count", endpoint="/predict", status="200") == 1
    assert _value(text, "hitl_correction_rate", project="7", model_version="v2-x") == 2 / 3
    assert _value(text, "hitl_model_versions", project="7", published="true") == 1
    assert _value(text, "hitl_queue_depth", queue="metrics-test") == 1
    assert _value(text, "hitl_drift_alarm", project="7") == 1 and _value(text, "hitl_drift_alarm", project="8") == 0
    assert _value(text, "hitl_retrain_last_seconds", project="7", kind="head", outcome="published") == 4.25
    assert re.search(r"^# TYPE hitl_request_seconds histogram$", text, re.M)
