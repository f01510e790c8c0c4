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
    queue.request(7, JobKind.LABEL_ERRORS)
    queue.request(7, JobKind.FULL)
    queue.request(7, JobKind.EMBED)
    queue.request(7, JobKind.SYNC)
    assert [job.func_name.rsplit(".", 1)[1] for job in queue.slow_queue.get_jobs()] == [
        "embed_pool_job", "label_errors_job", "retrain_job"]  # fmt: skip
    assert [job.func_name.rsplit(".", 1)[1] for job in queue.queue.get_jobs()] == ["sync_job"]
    assert queue.request(7, JobKind.EMBED).status == "coalesced"  # one waiting per project


def test_a_running_mark_is_per_project_and_kind_and_expires_with_the_job(redis_server):
    settings = Settings(redis_url=redis_server.url, queue_name="running-test", job_timeout_s=120)
    connection = redis.Redis.from_url(redis_server.url)
    queue = RetrainQueue(settings, connection)
    assert not queue.running(8, JobKind.FULL)
    queue.mark_running(8, JobKind.FULL)
    assert queue.running(8, JobKind.FULL) and not queue.running(9, JobKind.FULL) and not queue.running(8, "head")
    assert 120 < connection.ttl("hitl:retrain:running:8:full") <= 180  # a dead worker's mark goes away
    queue.mark_running(8, JobKind.FULL, running=False)
    assert not queue.running(8, JobKind.FULL)
