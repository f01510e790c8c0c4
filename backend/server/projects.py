"""Which Label Studio projects this backend serves: the ones Label Studio confirms.

A webhook names a project id; before it may enqueue work, Label Studio must confirm that the
project exists and has an ML backend connected. The answer is cached in Redis (keys expire), and
look-ups of ids not seen before are rate-limited, so a flood of webhooks over random ids costs a
bounded number of Label Studio calls and leaves no job, no schedule entry and no lasting key.
A project Label Studio has confirmed is remembered (until it says no), so a flood that spends the
look-up budget never drops a real project's webhook when its cached confirmation expires.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from backend.stores.labelstudio import LabelStudioNotConfigured, LabelStudioTokenRefused
from backend.stores.registry import Registry

log = logging.getLogger(__name__)

KNOWN = "hitl:project:{project}:served"  # "1" or "0", with a TTL
LOOKUPS = "hitl:project-lookups:{minute}"  # look-ups of uncached ids in this minute
CONFIRMED = "hitl:projects:confirmed"  # hash: project id → when Label Studio last confirmed it (real projects only)


@dataclass(frozen=True)
class Verdict:
    served: bool
    reason: str
    unconfirmed: bool = False  # Label Studio could not answer: keep the event, ask again later


class ServedProjects:
    """Answers "does this backend serve project N?" from Redis, asking Label Studio on a miss."""

    def __init__(self, settings: Any, connection: redis.Redis, label_studio: Callable[[], Any]) -> None:
        self.settings = settings
        self.connection = connection
        self.label_studio = label_studio  # a factory, so a server without Label Studio still starts

    def known(self, project_id: int) -> bool:
        """Confirmed recently (from the cache only, never a look-up)."""
        return self.connection.get(KNOWN.format(project=project_id)) == b"1"

    def check(self, project_id: int) -> Verdict:
        cached = self.connection.get(KNOWN.format(project=project_id))
        if cached is not None:
            served = cached == b"1"
            return Verdict(served, "confirmed by Label Studio" if served else "not a project served here (cached)")
        if not self._may_look_up():
            if self.connection.hexists(CONFIRMED, str(project_id)):  # a flood must not drop a real project
                return Verdict(True, "confirmed by Label Studio before (look-ups this minute spent)")
            return Verdict(False, "too many unknown project ids this minute (HITL_PROJECT_LOOKUPS_PER_MINUTE)")
        try:
            answer, why = self.label_studio().serves(project_id), "Label Studio unreachable"
        except LabelStudioNotConfigured:
            return Verdict(
                False,
                "Label Studio is not configured: set HITL_LABEL_STUDIO_URL and "
                "HITL_LABEL_STUDIO_API_KEY so annotations can be pulled",
            )
        except LabelStudioTokenRefused as exc:
            answer, why = None, str(exc)
        if answer is None:  # Label Studio cannot answer: a project we already have versions of keeps learning
            if project_id in Registry.from_settings(self.settings).projects():
                return Verdict(True, f"{why}; a project with versions here")
            return Verdict(False, f"{why}; kept until Label Studio confirms the project", unconfirmed=True)
        ttl = self.settings.project_confirm_ttl_s if answer else self.settings.project_reject_ttl_s
        self.connection.set(KNOWN.format(project=project_id), b"1" if answer else b"0", ex=ttl)
        if answer:
            self.connection.hset(CONFIRMED, str(project_id), time.time())
            return Verdict(True, "confirmed by Label Studio")
        self.connection.hdel(CONFIRMED, str(project_id))  # deleted, or its ML backend disconnected
        return Verdict(False, "Label Studio has no such project with an ML backend connected")

    def _may_look_up(self) -> bool:
        key = LOOKUPS.format(minute=int(time.time() // 60))
        count = self.connection.incr(key)
        if count == 1:
            self.connection.expire(key, 120)
        return count <= self.settings.project_lookups_per_minute
