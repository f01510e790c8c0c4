"""A pending flag never outlives the job it stands for: a failed enqueue, a lost job or a job that
failed before taking the flag must not coalesce later requests into nothing (a real Redis)."""

from __future__ import annotations

import time

import pytest
import redis

from backend.ids import JobKind
from backend.jobs.queue import PENDING, RetrainQueue
from backend.server import create_app
from backend.server.events import QueueSink
from backend.settings import Settings
from tests.support.payloads import annotation_event


def _queue(redis_server, name: str, **settings) -> RetrainQueue:  # type: ignore[no-untyped-def]
    queue = RetrainQueue(
        Settings(redis_url=redis_server.url, queue_name=name, **settings), redis.Redis.from_url(redis_server.url)
    )
    queue.connection.delete(
        *[PENDING.format(project=f"{p}:{k}") for p in range(10**6 + 10, 10**6 + 20) for k in JobKind]
    )
    return queue


def test_a_failed_enqueue_leaves_no_flag_and_the_next_webhook_queues_a_job(redis_server, settings, monkeypatch):
    queue = _queue(redis_server, "recovery-webhook")
    project = 10**6 + 10
    client = create_app(settings, predictor=None, events=QueueSink(queue)).test_client()
    real = queue.queue.enqueue_call

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise redis.ConnectionError("Redis went away mid-enqueue")

    monkeypatch.setattr(queue.queue, "enqueue_call", refuse)
    assert client.post("/webhook", json=annotation_event(project=project)).status_code == 503
    monkeypatch.setattr(queue.queue, "enqueue_call", real)
    answer = client.post("/webhook", json=annotation_event(project=project)).json
    assert answer["status"] == "queued" and answer["job_id"] in queue.queue.job_ids
    # and the flag names that job: the next event coalesces into it
    assert client.post("/webhook", json=annotation_event(project=project)).json["status"] == "coalesced"


@pytest.mark.parametrize("flag", ["{old} no-such-job", "{old}", "{old} "])
def test_a_flag_whose_job_is_gone_is_taken_over(redis_server, flag):
    """The enqueuer died between flag and enqueue, or the job vanished: the flag stands for nothing."""
    queue = _queue(redis_server, "recovery-stale")
    project = 10**6 + 11
    key = PENDING.format(project=f"{project}:head")
    queue.connection.set(key, flag.format(old=time.time() - 3600), ex=7262)
    request = queue.request(project)
    assert request.status == "queued" and request.job_id in queue.queue.job_ids
    assert queue.connection.get(key).decode().endswith(f" {request.job_id}")  # the flag names its job
    assert queue.pending_since(project, JobKind.HEAD) == pytest.approx(time.time(), abs=5)


def test_a_flag_of_a_job_that_failed_before_taking_it_is_taken_over(redis_server):
    queue = _queue(redis_server, "recovery-failed")
    project = 10**6 + 12
    first = queue.request(project, JobKind.SYNC)
    assert queue.request(project, JobKind.SYNC).status == "coalesced"  # its job waits: one is enough
    job = queue.queue.fetch_job(first.job_id)
    job.set_status("failed")  # e.g. the worker could not import it; it never reached take()
    second = queue.request(project, JobKind.SYNC)
    assert second.status == "queued" and second.job_id != first.job_id


def test_an_enqueue_under_way_is_coalesced_into(redis_server):
    """A flag written a moment ago whose job is not in Redis yet: another request is enqueuing it."""
    queue = _queue(redis_server, "recovery-racing")
    project = 10**6 + 13
    queue.connection.set(PENDING.format(project=f"{project}:head"), f"{time.time()} not-yet-enqueued", ex=7262)
    assert queue.request(project).status == "coalesced"


def test_no_retries_is_supported(redis_server):
    """HITL_JOB_RETRIES=0 passes the settings; RQ refuses Retry(max=0), so no retries must mean no Retry."""
    queue = _queue(redis_server, "recovery-no-retries", job_retries=0)
    request = queue.request(10**6 + 14)
    assert request.status == "queued"
    assert queue.queue.fetch_job(request.job_id).retries_left is None
