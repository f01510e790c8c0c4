"""Which queue each kind of job goes to, and the running mark that keeps fine-tunes from piling up
(a real Redis)."""

from __future__ import annotations

import redis

from backend.ids import JobKind
from backend.jobs.queue import RetrainQueue
from backend.settings import Settings


def test_a_pool_embedding_goes_to_the_front_of_the_slow_queue_and_a_sync_to_the_fast_one(redis_server):
    settings = Settings(redis_url=redis_server.url, queue_name="kinds-test")
    queue = RetrainQueue(settings, redis.Redis.from_url(redis_server.url))
    project = 10**6  # no Label Studio project of the suite reaches this id (the pending flags outlive the test)
    queue.request(project, JobKind.LABEL_ERRORS)
    queue.request(project, JobKind.FULL)
    queue.request(project, JobKind.EMBED)
    queue.request(project, JobKind.SYNC)
    assert [job.func_name.rsplit(".", 1)[1] for job in queue.slow_queue.get_jobs()] == [
        "embed_pool_job",
        "label_errors_job",
        "retrain_job",
    ]
    assert [job.func_name.rsplit(".", 1)[1] for job in queue.queue.get_jobs()] == ["sync_job"]
    assert queue.request(project, JobKind.EMBED).status == "coalesced"  # one waiting per project


def test_a_running_mark_is_per_project_and_kind_and_expires_with_the_job(redis_server):
    settings = Settings(redis_url=redis_server.url, queue_name="running-test", job_timeout_s=120)
    connection = redis.Redis.from_url(redis_server.url)
    queue = RetrainQueue(settings, connection)
    project = 10**6 + 1
    assert not queue.running(project, JobKind.FULL)
    queue.mark_running(project, JobKind.FULL)
    assert queue.running(project, JobKind.FULL)
    assert not queue.running(project + 1, JobKind.FULL) and not queue.running(project, "head")
    assert 120 < connection.ttl(f"hitl:retrain:running:{project}:full") <= 180  # a dead worker's mark goes away
    queue.mark_running(project, JobKind.FULL, running=False)
    assert not queue.running(project, JobKind.FULL)
