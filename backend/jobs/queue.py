"""Coalesced retrain requests on RQ.

At most one retrain per project waits in the queue: the first event of a burst enqueues a job
and sets a pending flag; later events only bump a counter. The job clears the flag when it starts
pulling annotations, so an event that arrives while it trains enqueues the next job and no
correction is ever left out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import redis
from rq import Queue, Retry

from backend.ids import JobKind, ProjectId
from backend.settings import Settings

PENDING = "hitl:retrain:pending:{project}"
JOBS = {JobKind.HEAD: "backend.jobs.retrain.retrain_job", JobKind.FULL: "backend.jobs.retrain.retrain_job",
        JobKind.SYNC: "backend.jobs.sync_job.sync_job",
        JobKind.LABEL_ERRORS: "backend.jobs.label_errors.label_errors_job",
        JobKind.PROPOSALS: "backend.jobs.proposals.proposals_job",
        JobKind.EMBED: "backend.jobs.pool_embedding.embed_pool_job"}  # fmt: skip
JOB_NAMES = {JobKind.SYNC: "sync", JobKind.LABEL_ERRORS: "label check", JobKind.PROPOSALS: "proposals",
             JobKind.EMBED: "pool embedding"}  # fmt: skip
SLOW_KINDS = (JobKind.FULL, JobKind.LABEL_ERRORS, JobKind.EMBED)  # minutes long: never ahead of a correction
LAST_EVENT = "hitl:retrain:last-event:{project}"  # when the project's last training event arrived
ALIVE = "hitl:alive:{name}"  # a worker's liveness record, refreshed by jobs/worker.py
RUNNING = "hitl:retrain:running:{project}"  # a job of this project and kind is running (fine-tunes)
DURATIONS = "hitl:retrain:last-seconds"  # hash "<project>:<kind>:<outcome>" → seconds, read by /metrics


@dataclass(frozen=True)
class RetrainRequest:
    status: str  # "queued" or "coalesced"
    project_id: ProjectId
    job_id: str | None


def connect(settings: Settings) -> redis.Redis:
    if not settings.redis_url:
        raise RuntimeError("HITL_REDIS_URL is not set: start Redis or use `hitl run`, which embeds one")
    return redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=10)


class RetrainQueue:
    def __init__(self, settings: Settings, connection: redis.Redis | None = None) -> None:
        self.settings = settings
        self.connection = connection or connect(settings)
        self.queue = Queue(settings.queue_name, connection=self.connection)
        # Fine-tunes take minutes: their own queue, so they never hold up a seconds-long head retrain.
        self.slow_queue = Queue(settings.slow_queue_name, connection=self.connection)

    def request(self, project_id: ProjectId, kind: JobKind | str = JobKind.HEAD, reason: str = "") -> RetrainRequest:
        """Enqueue a ``head`` or ``full`` retrain, or a queue ``sync``, unless one is already pending."""
        if kind not in set(JobKind):
            raise ValueError(f"unknown job kind {kind!r}; one of {[k.value for k in JobKind]}")
        kind = JobKind(kind)
        key = PENDING.format(project=f"{project_id}:{kind}")
        if kind in (JobKind.HEAD, JobKind.FULL):  # annotations arrived (catch-up retrains look at this)
            self.connection.set(LAST_EVENT.format(project=project_id), time.time(), ex=3600)
        # The flag expires on its own so a job lost with its worker cannot block retrains forever.
        ttl = int(self.settings.job_timeout_s * 2 + self.settings.retrain_debounce_s + 60)
        if not self.connection.set(key, time.time(), nx=True, ex=ttl):
            return RetrainRequest("coalesced", project_id, None)
        # fine-tunes, label checks and pool embeddings never hold up a correction's seconds-long head retrain
        queue = self.slow_queue if kind in SLOW_KINDS else self.queue
        job = queue.enqueue_call(
            JOBS[kind],
            at_front=kind == JobKind.EMBED,  # the queue's catch-up with a fine-tune goes before other slow work
            kwargs={"project_id": project_id, "kind": kind.value, "reason": reason},
            timeout=self.settings.job_timeout_s,
            retry=Retry(max=self.settings.job_retries, interval=self.settings.job_retry_intervals_s),
            failure_ttl=7 * 24 * 3600,
            result_ttl=24 * 3600,
            description=f"{JOB_NAMES.get(kind, 'retrain')} project {project_id} ({kind})",
        )
        return RetrainRequest("queued", project_id, job.id)

    def last_event(self, project_id: ProjectId) -> float | None:
        value = self.connection.get(LAST_EVENT.format(project=project_id))
        return float(value) if value else None

    def catch_up(self, project_id: ProjectId, delay_s: float) -> str:
        """A head retrain in ``delay_s`` seconds. Label Studio can send an annotation's webhook before
        the annotation is committed, so a pull right after it may miss it; this later pull does not
        (and publishes nothing when nothing is new)."""
        job = self.queue.enqueue_in(
            timedelta(seconds=delay_s), JOBS[JobKind.HEAD],
            kwargs={"project_id": project_id, "kind": JobKind.HEAD.value, "reason": "catch-up"},
            job_timeout=self.settings.job_timeout_s, failure_ttl=24 * 3600, result_ttl=3600,
            description=f"retrain project {project_id} (head, catch-up)",
        )  # fmt: skip
        return str(job.id)

    def record_duration(self, project_id: ProjectId, kind: JobKind | str, outcome: str, seconds: float) -> None:
        """The last retrain's duration per project, kind and outcome (published or rejected)."""
        self.connection.hset(DURATIONS, f"{project_id}:{kind}:{outcome}", round(seconds, 3))

    def durations(self) -> dict[tuple[str, str, str], float]:
        raw = self.connection.hgetall(DURATIONS)
        return {tuple(k.decode().split(":", 2)): float(v) for k, v in raw.items()}  # type: ignore[misc]

    def pending_since(self, project_id: ProjectId, kind: JobKind | str) -> float | None:
        value = self.connection.get(PENDING.format(project=f"{project_id}:{kind}"))
        return float(value) if value else None

    def live_workers(self) -> int:
        """Workers whose liveness record is fresh (``jobs/worker.py`` refreshes it every few seconds)."""
        return sum(1 for _ in self.connection.scan_iter(match=ALIVE.format(name="*"), count=100))

    def running(self, project_id: ProjectId, kind: JobKind | str) -> bool:
        """Whether a job of ``kind`` for the project is running now (see ``mark_running``)."""
        return bool(self.connection.exists(RUNNING.format(project=f"{project_id}:{kind}")))

    def mark_running(self, project_id: ProjectId, kind: JobKind | str, running: bool = True) -> None:
        """Set while a job runs (it expires with the job's timeout, should its worker die)."""
        key = RUNNING.format(project=f"{project_id}:{kind}")
        if running:
            self.connection.set(key, time.time(), ex=int(self.settings.job_timeout_s) + 60)
        else:
            self.connection.delete(key)

    def take(self, project_id: ProjectId, kind: JobKind | str) -> None:
        """Called by the job as it starts reading Label Studio: later events need a new job."""
        self.connection.delete(PENDING.format(project=f"{project_id}:{kind}"))
