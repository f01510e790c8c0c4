"""Webhooks → coalesced RQ jobs → a real worker pulls from a real Label Studio → gated versions."""

from __future__ import annotations

import time

import pytest
import requests
from rq import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry

from backend.jobs.queue import RetrainQueue
from backend.settings import Settings
from backend.stores.audit import AuditStore
from tests.support.payloads import AG_CONFIG, predict_body
from tests.support.services import wait_until

pytestmark = pytest.mark.e2e


def choice(label: str) -> list[dict]:
    return [{"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def annotate(stack, tasks: list[dict]) -> list[int]:
    return [stack.ls.create_annotation(t["id"], choice(t["data"]["gold"])) for t in tasks]


def covered(stack, project_id: int) -> set[int]:
    current = stack.registry.current(str(project_id))
    if current is None:
        return set()
    return set(stack.registry.meta(str(project_id), current)["training"]["task_ids"])


def wait_for_version_covering(stack, project_id: int, task_ids: set[int], timeout_s: float = 120) -> str:
    wait_until(lambda: task_ids <= covered(stack, project_id), timeout_s, f"a version covering {len(task_ids)} tasks")
    return stack.registry.current(str(project_id))


def audit(stack) -> AuditStore:
    return AuditStore(str(stack.logs.parent / "data" / "audit.sqlite3"))


@pytest.fixture(scope="module")
def project(stack, ag_rows):
    return stack.new_project("Retrain loop", ag_rows[:120])


def test_burst_of_annotations_coalesces_and_the_new_version_is_served(stack, project):
    tasks = stack.tasks(project)[:40]
    annotate(stack, tasks)  # 40 webhooks in a burst
    ids = {t["id"] for t in tasks}
    version = wait_for_version_covering(stack, project, ids)

    events = [e for e in audit(stack).events(project) if e["action"] == "ANNOTATION_CREATED"]
    assert len(events) == 40
    queued = [e for e in events if e["outcome"] == "queued"]
    assert 1 <= len(queued) <= 6, f"{len(queued)} jobs for 40 events"

    meta = stack.registry.meta(str(project), version)
    assert meta["training"]["examples"] == 40
    assert meta["gate"]["passed"] is True
    assert 0.05 < meta["calibration"]["temperature"] < 20  # temperature-scaled on held-out annotations
    assert "threshold" in meta["routing"]
    assert meta["head"] == {"l2": 1e-3, "heldout_log_loss": {}}  # < 50 held-out annotations: the default penalty
    # the server answers with the new version without a restart, and Label Studio sees it too
    body = predict_body([{"id": 1, "data": {"text": "The striker scored twice."}}], project=f"{project}.0")
    answer = requests.post(stack.backend_url + "/predict", json=body, timeout=30).json()
    assert answer["results"][0]["model_version"] == stack.registry.served(str(project), version)
    # the model's answer (pre-filled in result only where the version is sure enough: docs/annotator.md)
    assert answer["results"][0]["hitl_answer"][0]["value"]["choices"][0] in {"World", "Sports", "Business", "Sci/Tech"}
    corrections = audit(stack).corrections(project)
    assert {c["task_id"] for c in corrections} >= ids
    assert all(c["annotator"] for c in corrections)


def test_redis_flushed_between_events_loses_no_annotation(stack, project):
    stack.redis.flushall()
    tasks = stack.tasks(project)[40:50]
    annotate(stack, tasks)
    expected = {t["id"] for t in stack.tasks(project) if t["annotations"]}
    assert len(expected) == 50
    wait_for_version_covering(stack, project, expected)


def test_bad_secret_is_refused_and_enqueues_nothing(stack, project):
    queue = Queue(Settings().queue_name, connection=stack.redis)
    # the earlier tests' jobs drain first: a worker taking one would lower the count while we watch
    wait_until(lambda: queue.count == 0 and StartedJobRegistry(queue=queue).count == 0, 300, "an idle queue")
    before = queue.count
    event = {"action": "ANNOTATION_CREATED", "project": {"id": project}, "annotation": {"id": 1}}
    wrong = requests.post(stack.backend_url + "/webhook", json=event, headers={"X-Hitl-Webhook-Secret": "nope"})
    missing = requests.post(stack.backend_url + "/webhook", json=event)
    assert wrong.status_code == 401 and missing.status_code == 401
    malformed = requests.post(
        stack.backend_url + "/webhook",
        data="{oops",
        headers={"X-Hitl-Webhook-Secret": "e2e-webhook-secret", "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400 and "JSON" in malformed.json()["error"]
    assert queue.count == before


def test_label_studio_train_call_becomes_a_coalesced_retrain(stack, project):
    tasks = stack.tasks(project)[50:54]
    annotate(stack, tasks)
    # Label Studio's own trigger: POST /train with every annotated task in the body; the body is not trusted
    poison = 10**9  # no task of this Label Studio has that id
    body = {
        "annotations": [{"id": poison, "data": {"text": "poison"}}],
        "project": f"{project}.0",
        "label_config": AG_CONFIG,
        "params": {},
    }
    answer = requests.post(
        stack.backend_url + "/train", json=body, headers={"X-Hitl-Webhook-Secret": "e2e-webhook-secret"}
    )
    assert answer.status_code == 200 and answer.json()["status"] in {"queued", "coalesced"}
    version = wait_for_version_covering(stack, project, {t["id"] for t in tasks})
    assert poison not in stack.registry.meta(str(project), version)["training"]["task_ids"]


def test_worker_killed_mid_training_is_retried_and_nothing_partial_is_served(stack, project):
    worker = stack.workers[0]
    expected = {t["id"] for t in stack.tasks(project) if t["annotations"]}
    before = stack.registry.versions(str(project))
    queue = RetrainQueue(Settings(redis_url=stack.env["HITL_REDIS_URL"], retrain_debounce_s=0), stack.redis)
    queue.request(project, kind="full", reason="test: fine-tune")
    started = StartedJobRegistry(queue.slow_queue.name, connection=stack.redis)
    wait_until(lambda: started.count > 0, 60, "the fine-tune to start")
    time.sleep(2.0)  # inside training
    worker.kill9()
    # nothing published by the dead worker (a head retrain of earlier events may still land meanwhile)
    new = [v for v in stack.registry.versions(str(project)) if v not in before]
    assert all(stack.registry.meta(str(project), v)["training"]["kind"] != "full" for v in new)
    stack.add_worker()  # finds the abandoned job and retries it
    wait_until(
        lambda: (
            len(stack.registry.versions(str(project))) > len(before)
            and stack.registry.meta(str(project), stack.registry.current(str(project)))["training"]["kind"] == "full"
        ),
        300,
        "the retried fine-tune to publish",
    )
    version = stack.registry.current(str(project))
    assert expected <= covered(stack, project)
    assert (stack.registry.version_dir(str(project), version) / "encoder" / "model.safetensors").exists()
    assert not list((stack.registry.root / str(project)).glob(".staging-*"))
    body = predict_body([{"id": 1, "data": {"text": "Shares rallied."}}], project=f"{project}.0")
    answer = requests.post(stack.backend_url + "/predict", json=body, timeout=60).json()
    assert answer["results"][0]["model_version"] == version == stack.registry.served(str(project))  # a new family


def test_label_studio_unreachable_fails_after_retries_and_keeps_serving_version(stack, project):
    from backend.tools.bench.common import free_port

    serving = stack.registry.current(str(project))
    dead = f"http://127.0.0.1:{free_port()}"
    worker = stack.add_worker(
        HITL_LABEL_STUDIO_URL=dead,
        HITL_QUEUE_NAME="unreachable",
        HITL_JOB_RETRIES="2",
        HITL_JOB_RETRY_INTERVALS_S="[1, 1]",
    )
    settings = Settings(
        redis_url=stack.env["HITL_REDIS_URL"],
        queue_name="unreachable",
        job_retries=2,
        job_retry_intervals_s=[1, 1],
        retrain_debounce_s=0,
    )
    request = RetrainQueue(settings, stack.redis).request(project)
    failed = FailedJobRegistry("unreachable", connection=stack.redis)
    wait_until(lambda: request.job_id in failed.get_job_ids(), 180, "the job to fail after its retries")
    job = Queue("unreachable", connection=stack.redis).fetch_job(request.job_id)
    assert job.retries_left == 0
    assert "Connect" in (job.latest_result().exc_string or "")
    assert stack.registry.current(str(project)) == serving
    worker.stop()


def test_unsupported_project_config_ends_the_job_without_retries(stack):
    from rq.job import Job

    rating = '<View><Text name="t" value="$text"/><Rating name="stars" toName="t"/></View>'
    project = stack.ls.create_project("Ratings are not served", AG_CONFIG)
    stack.ls.connect_backend(project, stack.backend_url)  # a project Label Studio confirms we serve ...
    stack.ls.update_label_config(project, rating)  # ... until its admin switches to an unsupported config
    event = {"action": "ANNOTATION_CREATED", "project": {"id": project}, "annotation": {"id": 1}}
    answer = requests.post(
        stack.backend_url + "/webhook", json=event, headers={"X-Hitl-Webhook-Secret": "e2e-webhook-secret"}, timeout=10
    ).json()
    job = Job.fetch(answer["job_id"], connection=stack.redis)
    wait_until(lambda: job.get_status(refresh=True) == "finished", 60, "the job to finish")
    result = job.return_value()
    assert result["published"] is False and '<Rating name="stars"> is not supported' in result["reason"]
    assert job.retries_left == 3  # nothing to retry
