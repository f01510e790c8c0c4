"""``hitl worker``: an RQ worker that keeps the encoder loaded between jobs.

It runs jobs in its own process (RQ's SimpleWorker) instead of forking one per job, so the
encoder and the embedding cache stay warm and a head retrain takes seconds, not a model load.
If a worker dies mid-job (``kill -9``), the next worker to start on the same host finds the job
still marked as started by a dead process and retries it at once; RQ's own heartbeat expiry
covers workers on other hosts. Nothing half-written is ever visible: the registry publishes by
rename.
"""

from __future__ import annotations

import logging
import os
import socket

import redis
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry

from backend.jobs.queue import connect
from backend.jobs.retrain import context
from backend.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings, burst: bool = False) -> int:
    connection = connect(settings)
    context()  # load the encoder before taking the first job
    queue = Queue(settings.queue_name, connection=connection)
    recovered = recover_abandoned(queue)
    if recovered:
        log.warning("re-queued %d job(s) abandoned by dead workers: %s", len(recovered), ", ".join(recovered))
    worker = SimpleWorker([queue], connection=connection, maintenance_interval=60)
    log.info("worker %s listening on queue %r", worker.name, settings.queue_name)
    worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level.upper())
    return 0


def recover_abandoned(queue: Queue) -> list[str]:
    """Re-queue at once (or fail, when out of retries) jobs whose worker process on this host is
    gone, instead of waiting for their heartbeat to expire. A dead worker is not a job error, so
    the retry does not wait out the back-off meant for errors such as Label Studio being down."""
    connection: redis.Redis = queue.connection
    registry = StartedJobRegistry(queue.name, connection=connection)
    host = socket.gethostname()
    recovered = []
    for member in connection.zrange(registry.key, 0, -1):
        job_id = registry.parse_job_id(member)
        try:
            job = Job.fetch(job_id, connection=connection)
        except NoSuchJobError:
            connection.zrem(registry.key, member)
            continue
        if job.get_status() != JobStatus.STARTED or not _worker_dead(connection, job, host):
            log.debug("job %s is not abandoned (status %s, worker %s)", job_id, job.get_status(), job.worker_name)
            continue
        connection.zrem(registry.key, member)
        if job.retries_left:
            job.retries_left -= 1
            job.save()
            queue.enqueue_job(job, at_front=True)
        else:
            job.set_status(JobStatus.FAILED)
            FailedJobRegistry(queue.name, connection=connection).add(
                job, ttl=job.failure_ttl, exc_string="the worker running this job died (no retries left)"
            )
        recovered.append(job_id)
    return recovered


def _worker_dead(connection: redis.Redis, job: Job, host: str) -> bool:
    if not job.worker_name:
        return False
    info = connection.hgetall(f"rq:worker:{job.worker_name}")
    if not info:
        return True  # the worker's key expired: it stopped sending heartbeats long ago
    if info.get(b"hostname", b"").decode() != host:
        return False  # another host's worker: RQ's heartbeat expiry decides
    try:
        os.kill(int(info.get(b"pid", b"0")), 0)
    except (ProcessLookupError, ValueError):
        return True
    except PermissionError:
        return False
    return False
