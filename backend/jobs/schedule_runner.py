"""``hitl scheduler``: RQ's cron scheduler loaded with HITL_SCHEDULE_FILE."""

from __future__ import annotations

import logging
from pathlib import Path

from rq.cron import CronScheduler

from backend.jobs.queue import connect
from backend.settings import Settings

log = logging.getLogger(__name__)


def load_scheduler(settings: Settings) -> CronScheduler:
    path = Path(settings.schedule_file)
    if not path.exists():
        raise SystemExit(f"schedule file {path} not found: set HITL_SCHEDULE_FILE to an RQ cron config file")
    scheduler = CronScheduler(connection=connect(settings), logging_level=settings.log_level.upper())
    scheduler.load_config_from_file(str(path.resolve()))
    return scheduler


def run_scheduler(settings: Settings) -> int:
    scheduler = load_scheduler(settings)
    log.info("scheduler: %d scheduled job(s) from %s", len(scheduler.get_jobs()), settings.schedule_file)
    scheduler.start()
    return 0
