"""Coalesced retrain requests on RQ.

At most one retrain per project waits in the queue: the first event of a burst enqueues a job
and sets a pending flag; later events only bump a counter. The job clears the flag when it starts
pulling annotations, so an event that arrives while it trains enqueues the next job and no
correction is ever left out.

The flag names the job it stands for (``"<since> <job id>"``): a request that finds a flag whose job
is gone (the enqueue failed, its enqueuer died, the job failed before it took the flag) takes the
flag over and enqueues, so a lost job never coalesces later events into nothing.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from backend.ids import JobKind, ProjectId
from backend.settings import Settings

PENDING = "hitl:retrain:pending:{project}"
JOBS = {
    JobKind.HEAD: "backend.jobs.retrain.retrain_job",
    JobKind.FULL: "backend.jobs.retrain.retrain_job",
    JobKind.SYNC: "backend.jobs.sync_job.sync_job",
    JobKind.LABEL_ERRORS: "backend.jobs.label_errors.label_errors_job",
    JobKind.PROPOSALS: "backend.jobs.proposals.proposals_job",
    JobKind.EMBED: "backend.jobs.pool_embedding.embed_pool_job",
}
JOB_NAMES = {
    JobKind.SYNC: "sync",
    JobKind.LABEL_ERRORS: "label check",
    JobKind.PROPOSALS: "proposals",
    JobKind.EMBED: "pool embedding",
}
SLOW_KINDS = (JobKind.FULL, JobKind.LABEL_ERRORS, JobKind.EMBED)  # minutes long: never ahead of a correction
LAST_EVENT = "hitl:retrain:last-event:{project}"  # when the project's last training event arrived
ALIVE = "hitl:alive:{name}"  # a worker's liveness record, refreshed by jobs/worker.py
RUNNING = "hitl:retrain:running:{project}"  # a job of this project and kind is running (fine-tunes)
DURATIONS = "hitl:retrain:last-seconds"  # hash "<project>:<kind>:<outcome>" → seconds, read by /metrics
SYNC_AFTER = "hitl:sync:after-running:{project}"  # a sync gave way to a running one: another must follow it
KEPT = "hitl:webhook:unconfirmed"  # zset project id → last event time: training events Label Studio could not confirm
MAX_KEPT = 1000  # the newest kept; a flood of made-up ids during an outage cannot grow it further
KEPT_TTL_S = 7 * 24 * 3600
ENQUEUE_GRACE_S = 30  # a flag whose job does not exist yet is an enqueue under way this long, then a lost one
WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.STARTED}  # a job that will run
# Compare-and-set: replace (or drop) the flag only where it still holds what the caller read (ARGV[1]).
_SWAP = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end"
_DROP = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


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
        # The flag also expires on its own: a job whose worker died mid-run cannot block retrains for good.
        ttl = int(self.settings.job_timeout_s * 2 + self.settings.retrain_debounce_s + 60)
        job_id = uuid.uuid4().hex  # named on the flag before it is enqueued: no moment when the flag names nothing
        mine = f"{time.time()} {job_id}"
        if not self.connection.set(key, mine, nx=True, ex=ttl):
            held = self.connection.get(key)
            if held is not None and self._stands_for_a_job(held):
                return RetrainRequest("coalesced", project_id, None)
            # the flagged job is gone: take the flag over, unless another request just did
            taken = (
                self.connection.eval(_SWAP, 1, key, held, mine, ttl)
                if held is not None
                else self.connection.set(key, mine, nx=True, ex=ttl)
            )
            if not taken:
                return RetrainRequest("coalesced", project_id, None)
        try:
            self._enqueue(kind, project_id, reason, job_id)
        except BaseException:
            self.connection.eval(_DROP, 1, key, mine)  # the next event must enqueue, not coalesce into nothing
            raise
        return RetrainRequest("queued", project_id, job_id)

    def _enqueue(self, kind: JobKind, project_id: ProjectId, reason: str, job_id: str) -> Job:
        # fine-tunes, label checks and pool embeddings never hold up a correction's seconds-long head retrain
        queue = self.slow_queue if kind in SLOW_KINDS else self.queue
        retries = self.settings.job_retries
        return queue.enqueue_call(
            JOBS[kind],
            job_id=job_id,
            at_front=kind == JobKind.EMBED,  # the queue's catch-up with a fine-tune goes before other slow work
            kwargs={"project_id": project_id, "kind": kind.value, "reason": reason},
            timeout=self.settings.job_timeout_s,
            # RQ refuses Retry(max=0): no retries is no Retry
            retry=Retry(max=retries, interval=self.settings.job_retry_intervals_s) if retries > 0 else None,
            failure_ttl=7 * 24 * 3600,
            result_ttl=24 * 3600,
            description=f"{JOB_NAMES.get(kind, 'retrain')} project {project_id} ({kind})",
        )

    def _stands_for_a_job(self, flag: bytes) -> bool:
        """Whether a pending flag still stands for a job that will run (or one being enqueued now)."""
        since, job_id = _parse_flag(flag)
        being_enqueued = since is not None and time.time() - since < ENQUEUE_GRACE_S
        if not job_id:  # a flag written before flags named their job
            return being_enqueued
        try:
            status = Job.fetch(job_id, connection=self.connection).get_status(refresh=False)
        except NoSuchJobError:
            return being_enqueued
        return status in WAITING

    def last_event(self, project_id: ProjectId) -> float | None:
        value = self.connection.get(LAST_EVENT.format(project=project_id))
        return float(value) if value else None

    def catch_up(self, project_id: ProjectId, delay_s: float) -> str:
        """A head retrain in ``delay_s`` seconds. Label Studio can send an annotation's webhook before
        the annotation is committed, so a pull right after it may miss it; this later pull does not
        (and publishes nothing when nothing is new)."""
        job = self.queue.enqueue_in(
            timedelta(seconds=delay_s),
            JOBS[JobKind.HEAD],
            kwargs={"project_id": project_id, "kind": JobKind.HEAD.value, "reason": "catch-up"},
            job_timeout=self.settings.job_timeout_s,
            failure_ttl=24 * 3600,
            result_ttl=3600,
            description=f"retrain project {project_id} (head, catch-up)",
        )
        return str(job.id)

    def record_duration(self, project_id: ProjectId, kind: JobKind | str, outcome: str, seconds: float) -> None:
        """The last retrain's duration per project, kind and outcome (published or rejected)."""
        self.connection.hset(DURATIONS, f"{project_id}:{kind}:{outcome}", round(seconds, 3))

    def durations(self) -> dict[tuple[str, str, str], float]:
        raw = self.connection.hgetall(DURATIONS)
        return {tuple(k.decode().split(":", 2)): float(v) for k, v in raw.items()}  # type: ignore[misc]

    def pending_since(self, project_id: ProjectId, kind: JobKind | str) -> float | None:
        value = self.connection.get(PENDING.format(project=f"{project_id}:{kind}"))
        return _parse_flag(value)[0] if value else None

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

    def keep_unconfirmed(self, project_id: ProjectId) -> None:
        """A training event of a project Label Studio could not confirm (unreachable, token refused):
        kept, so the scheduler asks again and requests the retrain once it can (``jobs/scheduled.py``)."""
        pipe = self.connection.pipeline()
        pipe.zadd(KEPT, {str(project_id): time.time()})
        pipe.zremrangebyrank(KEPT, 0, -MAX_KEPT - 1)
        pipe.expire(KEPT, KEPT_TTL_S)
        pipe.execute()

    def kept(self) -> list[ProjectId]:
        return [int(member) for member in self.connection.zrange(KEPT, 0, -1)]

    def forget_kept(self, project_id: ProjectId) -> None:
        self.connection.zrem(KEPT, str(project_id))

    def follow_running_sync(self, project_id: ProjectId) -> None:
        """A sync found another running for the project (on any host) and gave way: leave word that
        one must follow it, since that one may have read the project before the event this one is for."""
        ttl = int(self.settings.job_timeout_s * 2 + 60)  # outlives the running sync, even one retried
        self.connection.set(SYNC_AFTER.format(project=project_id), time.time(), ex=ttl)

    def sync_after_this_one(self, project_id: ProjectId) -> bool:
        """Called as a sync ends: whether one gave way to it (the word is taken)."""
        key = SYNC_AFTER.format(project=project_id)
        found, _ = self.connection.pipeline(transaction=True).get(key).delete(key).execute()  # GETDEL before 6.2
        return found is not None

    def take(self, project_id: ProjectId, kind: JobKind | str) -> None:
        """Called by the job as it starts reading Label Studio: later events need a new job."""
        self.connection.delete(PENDING.format(project=f"{project_id}:{kind}"))


def _parse_flag(flag: bytes) -> tuple[float | None, str]:
    """(since, job id) of a pending flag; an older flag holds only the time."""
    since, _, job_id = flag.decode(errors="replace").partition(" ")
    try:
        return float(since), job_id.strip()
    except ValueError:
        return None, ""
