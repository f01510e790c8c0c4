"""``hitl scheduler``: RQ's cron scheduler loaded with HITL_SCHEDULE_FILE, run on every host and
enqueuing on one. RQ's scheduler has no leader of its own: each host's would enqueue every job,
so the one holding a lease in Redis enqueues and the others only keep time; a leader that dies
stops renewing, and another host takes over within LEASE_S."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from rq.cron import CronScheduler

from backend.jobs.queue import connect
from backend.settings import Settings

log = logging.getLogger(__name__)

LEASE_S = 150  # longer than the scheduler's longest sleep (60 s), so a live leader always renews it
# renew the lease only while it is still ours: a leader that slept past it must not extend another's
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class FleetScheduler(CronScheduler):
    def __init__(self, *args: object, lease_key: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lease_key = lease_key
        self.leading = False

    def leads(self) -> bool:
        """Take the lease when it is free, renew it when it is ours."""
        held = bool(self.connection.set(self.lease_key, self.name, nx=True, ex=LEASE_S)) or bool(
            self.connection.eval(_RENEW, 1, self.lease_key, self.name, LEASE_S)
        )
        if held != self.leading:
            log.info("scheduler %s: %s", self.name, "leads: enqueues the schedule" if held else "follows")
        self.leading = held
        return held

    def enqueue_jobs(self) -> list:  # type: ignore[override]
        if self.leads():
            return super().enqueue_jobs()
        at = datetime.now(UTC)
        for job in self.get_jobs():  # the leader enqueues it: move on to the next run time
            if job.should_run():
                job.set_enqueue_time(at)
        return []

    def register_death(self) -> None:
        self.connection.eval(_RELEASE, 1, self.lease_key, self.name)
        super().register_death()


def load_scheduler(settings: Settings) -> CronScheduler:
    path = Path(settings.schedule_file)
    if not path.exists():
        raise SystemExit(f"schedule file {path} not found: set HITL_SCHEDULE_FILE to an RQ cron config file")
    scheduler = FleetScheduler(
        connection=connect(settings),
        logging_level=settings.log_level.upper(),
        lease_key=f"hitl:{settings.queue_name}:scheduler-lease",
    )
    scheduler.load_config_from_file(str(path.resolve()))
    return scheduler


def run_scheduler(settings: Settings) -> int:
    scheduler = load_scheduler(settings)
    log.info("scheduler: %d scheduled job(s) from %s", len(scheduler.get_jobs()), settings.schedule_file)
    scheduler.start()
    return 0
