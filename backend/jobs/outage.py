"""Label Studio unreachable from the workers, kept in Redis so ``/ready`` can say it, and since when.

A job that cannot reach Label Studio fails with one line (RQ retries it); the first such failure
sets the mark, a job that reaches Label Studio again clears it, and it expires by itself a while
after the last failure, so a mark left by a job out of retries cannot outlive the outage for long.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import redis

from backend.jobs.queue import connect
from backend.settings import Settings
from backend.stores.labelstudio import LabelStudioUnavailable, unavailable_as_one_line

MARK = "hitl:label-studio:unreachable"
KEEP_S = 60  # beyond the longest retry interval: the mark stays through the whole back-off


@contextlib.contextmanager
def reaching_label_studio(settings: Settings) -> Iterator[None]:
    """Label Studio's failures as one line (``unavailable_as_one_line``), and the outage mark kept."""
    url = settings.label_studio_url or "?"
    try:
        with unavailable_as_one_line(url):
            yield
    except LabelStudioUnavailable:
        if settings.redis_url:
            mark_unreachable(connect(settings), url, max(settings.job_retry_intervals_s or [0]) + KEEP_S)
        raise
    if settings.redis_url:
        with contextlib.suppress(redis.RedisError):
            connect(settings).delete(MARK)


def mark_unreachable(connection: redis.Redis, url: str, ttl_s: float) -> None:
    """The first failure's time stays; every failure pushes the expiry back. Redis away: no mark."""
    with contextlib.suppress(redis.RedisError):
        connection.set(MARK, f"{time.time():.3f} {url}", nx=True)
        connection.expire(MARK, int(ttl_s))


def unreachable_since(connection: redis.Redis) -> tuple[float, str] | None:
    """(when the workers first could not reach it, its URL), or None while they can."""
    value = connection.get(MARK)
    if not value:
        return None
    since, _, url = value.decode().partition(" ")
    return float(since), url
