"""What the server works with besides the predictor, named and typed in one place.

The webhook sink turns events into retrains; where Redis is configured it is a ``QueueSink``, whose
job queue and audit store ``/ready``, ``/metrics``, the dashboard and the drift inputs read too.
Without Redis there is neither: webhooks are logged, nothing retrains.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backend.server.events import EventSink, LoggingSink, QueueSink
from backend.settings import Settings

if TYPE_CHECKING:
    from backend.jobs.queue import RetrainQueue
    from backend.stores.audit import AuditStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Collaborators:
    events: EventSink
    queue: RetrainQueue | None = None  # None: no Redis, so no retrains, no queue metrics, no drift inputs
    audit: AuditStore | None = None  # None: metrics leave out the audit's figures; the dashboard opens its own

    @classmethod
    def of(cls, events: EventSink) -> Collaborators:
        """A given sink's collaborators: a ``QueueSink`` brings its queue and audit store."""
        if isinstance(events, QueueSink):
            return cls(events, events.queue, events.audit)
        return cls(events)

    @classmethod
    def from_settings(cls, settings: Settings) -> Collaborators:
        """The server's own: a QueueSink on HITL_REDIS_URL, or a LoggingSink without it."""
        if not settings.redis_url:
            log.warning("HITL_REDIS_URL is not set: webhook events are logged, not turned into retrains")
            return cls(LoggingSink())
        from backend.jobs.queue import RetrainQueue
        from backend.server.projects import ServedProjects
        from backend.stores.audit import AuditStore
        from backend.stores.labelstudio import LabelStudioClient

        queue = RetrainQueue(settings)
        projects = ServedProjects(settings, queue.connection, lambda: LabelStudioClient.from_settings(settings, 10))
        return cls.of(QueueSink(queue, AuditStore.from_settings(settings), projects))
