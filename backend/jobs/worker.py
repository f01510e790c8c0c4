"""``hitl worker``: an RQ worker that keeps the encoder loaded between jobs.

It runs jobs in its own process (RQ's SimpleWorker) instead of forking one per job, so the
encoder and the embedding cache stay warm and a head retrain takes seconds, not a model load.
If a worker dies mid-job (``kill -9``), any other worker notices within seconds (its liveness
record in Redis expires, or on the same host its process is gone) and re-queues the job; a
worker starting up checks at once. RQ's own heartbeat expiry, which a SimpleWorker does not
refresh during a long job, would take the whole job timeout. Nothing half-written is ever
visible: the registry publishes by rename. (A retrain run twice is harmless: same data, same
gate.)
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time

import redis
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.job_lifecycle import call_exception_handlers
from rq.registry import FailedJobRegistry, StartedJobRegistry

from backend.jobs.context import context
from backend.jobs.queue import ALIVE, connect
from backend.settings import Settings
from backend.stores.labelstudio import LabelStudioUnavailable

log = logging.getLogger(__name__)


ALIVE_TTL_S = 15
RECOVERY_LOCK = "hitl:recovery-lock:{queue}"


def queue_names(settings: Settings, which: str) -> list[str]:
    """``fast``: head retrains, syncs, proposals; ``slow``: fine-tunes, label checks, pool embeddings;
    ``both``: fast first."""
    names = {"fast": [settings.queue_name], "slow": [settings.slow_queue_name]}
    return names.get(which, [settings.queue_name, settings.slow_queue_name])


class QuietWorker(SimpleWorker):
    """A SimpleWorker without RQ's command channel (``send_command``: nothing here sends worker
    commands). Its pub/sub thread keeps retrying a Redis that went away, and its teardown can then
    block the worker for minutes (seen in the fault-injection test after a Redis restart), so no
    new worker could take over. Without it, a lost Redis ends ``work()`` promptly."""

    def subscribe(self) -> None:
        self.pubsub_thread = None

    def unsubscribe(self) -> None:
        return None

    def handle_exception(self, job: Job, *exc_info: object) -> None:
        """Label Studio down is an outage, not a bug: one line (RQ retries the job), no traceback."""
        if isinstance(exc_info[1], LabelStudioUnavailable):
            log.warning("job %s (%s): %s", job.id, job.description, exc_info[1])
            call_exception_handlers(self._exc_handlers, job, *exc_info)
            return
        super().handle_exception(job, *exc_info)


class HousekeepingAtDebug(logging.Filter):
    """RQ logs its registry cleaning at INFO, every 30 s per worker: noise, so DEBUG here."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Worker %s: cleaning "):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def run_worker(settings: Settings, burst: bool = False, which: str = "both") -> int:
    """Work until stopped. When Redis goes away (a restart, a failover) RQ's worker quits; this
    waits for Redis to answer again and starts a fresh one, with the encoder still loaded, so a
    restart of Redis never needs a restart of the workers."""
    connection = connect(settings)
    logging.getLogger("rq.worker").addFilter(HousekeepingAtDebug())
    context()  # load the encoder before taking the first job
    names = queue_names(settings, which)
    current = {"name": ""}  # the worker the liveness thread speaks for (a new one after each reconnect)
    keeper = threading.Thread(target=_keep_alive, args=(settings, current, names), name="liveness", daemon=True)
    while True:
        queues = [Queue(name, connection=connection) for name in names]
        # RQ's scheduler (delayed catch-up retrains) runs in a process that dies when Redis restarts;
        # the worker restarts it only in its maintenance, which runs between dequeues: a 30 s dequeue
        # wait (worker_ttl - 15) and 30 s maintenance bring it back within about a minute.
        worker = QuietWorker(queues, connection=connection, maintenance_interval=30, worker_ttl=45)
        try:
            _announce(connection, worker.name)
            current["name"] = worker.name
            for queue in queues:
                recovered = recover_abandoned(queue)
                if recovered:
                    log.warning(
                        "re-queued %d job(s) abandoned by dead workers: %s", len(recovered), ", ".join(recovered)
                    )
            if not keeper.is_alive():
                keeper.start()
            log.info("worker %s listening on %s", worker.name, ", ".join(names))
            worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level.upper())
            lost = False
        except redis.RedisError as exc:
            log.warning("worker %s lost Redis (%s: %s)", worker.name, type(exc).__name__, exc)
            lost = True
        asked_to_stop = worker._shutdown_requested_date is not None or worker._stop_requested  # SIGTERM, Ctrl-C
        if burst or asked_to_stop or (not lost and _answers(connection)):
            return 0
        _wait_for_redis(connection)


def _answers(connection: redis.Redis) -> bool:
    try:
        return bool(connection.ping())
    except redis.RedisError:
        return False


def _wait_for_redis(connection: redis.Redis, most_s: float = 30.0) -> None:
    """Until Redis answers: back-off up to ``most_s``, one log line per attempt."""
    delay = 1.0
    while True:
        try:
            connection.ping()
            log.warning("Redis answers again: starting a fresh worker")
            return
        except redis.RedisError as exc:
            log.warning("waiting for Redis (%s); next try in %.0fs", type(exc).__name__, delay)
        time.sleep(delay)
        delay = min(delay * 2, most_s)


def _announce(connection: redis.Redis, name: str) -> None:
    """Our own liveness record: survives nothing, so a missing one means a dead (or flushed) worker."""
    value = json.dumps({"host": socket.gethostname(), "pid": os.getpid()})
    connection.set(ALIVE.format(name=name), value, ex=ALIVE_TTL_S)


def _keep_alive(settings: Settings, current: dict[str, str], names: list[str]) -> None:
    """Refresh our liveness record and look for jobs abandoned by dead workers, every few seconds.
    Runs beside the job in a thread, because a SimpleWorker sends no heartbeat while a job runs."""
    connection = connect(settings)
    queues = [Queue(name, connection=connection) for name in names]
    while True:
        try:
            name = current["name"]
            _announce(connection, name)
            for queue in queues:
                if connection.set(RECOVERY_LOCK.format(queue=queue.name), name, nx=True, ex=ALIVE_TTL_S // 3):
                    recovered = recover_abandoned(queue)
                    if recovered:
                        log.warning("re-queued %d abandoned job(s): %s", len(recovered), ", ".join(recovered))
        except redis.RedisError as exc:
            log.warning("liveness update failed: %s", exc)
        time.sleep(ALIVE_TTL_S / 3)


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
    raw = connection.get(ALIVE.format(name=job.worker_name))
    if raw is None:
        return True  # no liveness refresh for ALIVE_TTL_S seconds
    info = json.loads(raw)
    if info.get("host") != host:
        return False
    try:
        os.kill(int(info.get("pid", 0)), 0)
    except (ProcessLookupError, ValueError):
        return True
    except PermissionError:
        return False
    return False
